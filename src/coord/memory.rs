//! An in-memory ZooKeeper behind the coordination seam: one shared tree of znodes and
//! any number of sessions on it, with ZooKeeper's semantics for what the masters use:
//! ephemeral sequential nodes (one sequence counter per parent), one-shot watches,
//! versioned writes, multi-op fences, and sessions that the owner of the model suspends
//! (a partition shorter than the timeout), resumes, or expires (the server removes the
//! session's ephemerals and fires the watches on them). Deterministic: ordered maps,
//! no I/O, no clock. The unit tests of the contender and the registry store run on it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use super::{CoordError, CoordEvent, Coordination, Member, SessionState, MEMBER_PREFIX};

#[derive(Clone, Debug)]
struct Node {
    data: Vec<u8>,
    version: i32,
    /// The session owning an ephemeral node.
    owner: Option<u64>,
    /// Sequence counter for sequential children.
    next_sequence: u64,
}

#[derive(Default)]
struct Tree {
    nodes: BTreeMap<String, Node>,
    /// (path, session) pairs with a pending one-shot node watch.
    watches: BTreeSet<(String, u64)>,
    /// (path, session) pairs with a pending one-shot watch on the node's children.
    child_watches: BTreeSet<(String, u64)>,
    events: BTreeMap<u64, Vec<CoordEvent>>,
    states: BTreeMap<u64, SessionState>,
    next_session: u64,
}

/// The shared tree of a model ensemble.
#[derive(Clone, Default)]
pub struct MemoryZk {
    tree: Rc<RefCell<Tree>>,
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

impl Tree {
    /// `path` changed or went: its node watches fire.
    fn fire(&mut self, path: &str) {
        let event = CoordEvent::NodeChanged(path.to_owned());
        take_watches(&mut self.watches, &mut self.events, path, event);
    }

    /// A child of `path` was created or deleted: its child watches fire.
    fn fire_children(&mut self, path: &str) {
        let event = CoordEvent::ChildrenChanged(path.to_owned());
        take_watches(&mut self.child_watches, &mut self.events, path, event);
    }
}

/// Removes the one-shot watches on `path` from `watches` and queues `event` for each
/// session that held one, in session order.
fn take_watches(
    watches: &mut BTreeSet<(String, u64)>,
    events: &mut BTreeMap<u64, Vec<CoordEvent>>,
    path: &str,
    event: CoordEvent,
) {
    let due: Vec<(String, u64)> = watches.iter().filter(|(p, _)| p == path).cloned().collect();
    for key in due {
        watches.remove(&key);
        events.entry(key.1).or_default().push(event.clone());
    }
}

impl MemoryZk {
    /// An empty ensemble (only `/`).
    pub fn new() -> MemoryZk {
        let zk = MemoryZk::default();
        zk.tree.borrow_mut().nodes.insert(
            "/".into(),
            Node {
                data: Vec::new(),
                version: 0,
                owner: None,
                next_sequence: 0,
            },
        );
        zk
    }

    /// A new session on it, connected.
    pub fn session(&self) -> MemorySession {
        let mut tree = self.tree.borrow_mut();
        tree.next_session += 1;
        let id = tree.next_session;
        tree.states.insert(id, SessionState::Connected);
        MemorySession {
            zk: self.clone(),
            id: RefCell::new(id),
            generation: RefCell::new(1),
        }
    }

    /// The children names of `path`.
    pub fn children_of(&self, path: &str) -> Vec<String> {
        let tree = self.tree.borrow();
        let prefix = format!("{path}/");
        tree.nodes
            .keys()
            .filter_map(|p| p.strip_prefix(&prefix))
            .filter(|rest| !rest.contains('/'))
            .map(str::to_owned)
            .collect()
    }

    /// Opens a session on the server side and returns its id (a model ZooKeeper host
    /// serving clients over a network calls this when a client says hello).
    pub fn open_session(&self) -> u64 {
        let mut tree = self.tree.borrow_mut();
        tree.next_session += 1;
        let id = tree.next_session;
        tree.states.insert(id, SessionState::Connected);
        id
    }

    /// Whether session `id` is alive on the server (not expired, not unknown).
    pub fn session_live(&self, id: u64) -> bool {
        self.tree.borrow().states.get(&id) == Some(&SessionState::Connected)
    }

    /// The server expires session `id`: its ephemerals go, the watches on them fire,
    /// its own watches are dropped. Returns the ephemeral nodes removed.
    pub fn expire_session(&self, id: u64) -> Vec<String> {
        let mut tree = self.tree.borrow_mut();
        let owned: Vec<String> = tree
            .nodes
            .iter()
            .filter(|(_, n)| n.owner == Some(id))
            .map(|(p, _)| p.clone())
            .collect();
        for path in &owned {
            tree.nodes.remove(path);
            tree.fire(path);
            tree.fire_children(parent(path));
        }
        tree.watches.retain(|(_, session)| *session != id);
        tree.child_watches.retain(|(_, session)| *session != id);
        tree.states.insert(id, SessionState::Expired);
        owned
    }

    /// The watch notifications queued for session `id` (the server sends them).
    pub fn take_events(&self, id: u64) -> Vec<CoordEvent> {
        self.tree
            .borrow_mut()
            .events
            .remove(&id)
            .unwrap_or_default()
    }

    /// A handle acting as session `id` (which the server opened already).
    pub fn attach(&self, id: u64) -> MemorySession {
        MemorySession {
            zk: self.clone(),
            id: RefCell::new(id),
            generation: RefCell::new(1),
        }
    }

    /// A node's data, version and owning session (for an ephemeral), read by the model's
    /// owner (no session needed).
    pub fn node(&self, path: &str) -> Option<(Vec<u8>, i32, Option<u64>)> {
        self.tree
            .borrow()
            .nodes
            .get(path)
            .map(|n| (n.data.clone(), n.version, n.owner))
    }

    /// The pending watches, as (path, session id).
    pub fn watches(&self) -> Vec<(String, u64)> {
        self.tree.borrow().watches.iter().cloned().collect()
    }
}

/// One client's session on a [`MemoryZk`]. After an expiry it opens a new session on
/// the next call of [`MemorySession::reconnect`], as the real client does.
pub struct MemorySession {
    zk: MemoryZk,
    id: RefCell<u64>,
    generation: RefCell<u64>,
}

impl MemorySession {
    /// This session's id on the server.
    pub fn id(&self) -> u64 {
        *self.id.borrow()
    }

    fn set_state(&self, state: SessionState) {
        let mut tree = self.zk.tree.borrow_mut();
        let id = self.id();
        tree.states.insert(id, state);
        tree.events
            .entry(id)
            .or_default()
            .push(CoordEvent::Session(state));
    }

    /// The connection is lost (a partition): the session lives on at the server.
    pub fn suspend(&self) {
        self.set_state(SessionState::Suspended);
    }

    /// The connection is back within the session timeout.
    pub fn resume(&self) {
        self.set_state(SessionState::Connected);
    }

    /// The server expires the session: its ephemerals go, watches on them fire.
    pub fn expire(&self) {
        let id = self.id();
        self.zk.expire_session(id);
        self.zk
            .tree
            .borrow_mut()
            .events
            .entry(id)
            .or_default()
            .push(CoordEvent::Session(SessionState::Expired));
    }

    /// After an expiry: a new session (new id, next generation), connected.
    pub fn reconnect(&self) {
        let mut tree = self.zk.tree.borrow_mut();
        tree.next_session += 1;
        let id = tree.next_session;
        tree.states.insert(id, SessionState::Connected);
        let old = self.id();
        let pending = tree.events.remove(&old).unwrap_or_default();
        tree.events.insert(id, pending);
        drop(tree);
        *self.id.borrow_mut() = id;
        *self.generation.borrow_mut() += 1;
    }

    fn live(&self) -> Result<(), CoordError> {
        if self.session_alive() {
            Ok(())
        } else {
            Err(CoordError::NoSession("memory".into()))
        }
    }
}

impl Coordination for MemorySession {
    fn session_state(&self) -> SessionState {
        self.zk
            .tree
            .borrow()
            .states
            .get(&self.id())
            .copied()
            .unwrap_or(SessionState::Expired)
    }

    fn session_generation(&self) -> u64 {
        *self.generation.borrow()
    }

    fn session_timeout(&self) -> Duration {
        Duration::from_secs(10)
    }

    fn poll_events(&self) -> Vec<CoordEvent> {
        self.zk
            .tree
            .borrow_mut()
            .events
            .remove(&self.id())
            .unwrap_or_default()
    }

    fn ensure_path(&self, path: &str) -> Result<(), CoordError> {
        self.live()?;
        let mut at = String::new();
        for part in path.split('/').skip(1) {
            at.push('/');
            at.push_str(part);
            if !self.zk.tree.borrow().nodes.contains_key(&at) {
                self.create(&at, &[])?;
            }
        }
        Ok(())
    }

    fn join(&self, group: &str, data: &[u8]) -> Result<Member, CoordError> {
        self.live()?;
        let mut tree = self.zk.tree.borrow_mut();
        let Some(parent_node) = tree.nodes.get_mut(group) else {
            return Err(CoordError::NoNode(group.to_owned()));
        };
        let sequence = parent_node.next_sequence;
        parent_node.next_sequence += 1;
        let path = format!("{group}/{MEMBER_PREFIX}{sequence:010}");
        tree.nodes.insert(
            path.clone(),
            Node {
                data: data.to_vec(),
                version: 0,
                owner: Some(self.id()),
                next_sequence: 0,
            },
        );
        tree.fire(&path);
        tree.fire_children(group);
        Ok(Member { path, sequence })
    }

    fn children(&self, path: &str) -> Result<Vec<String>, CoordError> {
        self.live()?;
        if !self.zk.tree.borrow().nodes.contains_key(path) {
            return Err(CoordError::NoNode(path.to_owned()));
        }
        Ok(self.zk.children_of(path))
    }

    fn watch_node(&self, path: &str) -> Result<bool, CoordError> {
        self.live()?;
        let mut tree = self.zk.tree.borrow_mut();
        let id = self.id();
        tree.watches.insert((path.to_owned(), id));
        Ok(tree.nodes.contains_key(path))
    }

    fn watch_children(&self, path: &str) -> Result<Vec<String>, CoordError> {
        self.live()?;
        if !self.zk.tree.borrow().nodes.contains_key(path) {
            return Err(CoordError::NoNode(path.to_owned()));
        }
        let id = self.id();
        self.zk
            .tree
            .borrow_mut()
            .child_watches
            .insert((path.to_owned(), id));
        Ok(self.zk.children_of(path))
    }

    fn get(&self, path: &str) -> Result<Option<(Vec<u8>, i32)>, CoordError> {
        self.live()?;
        Ok(self
            .zk
            .tree
            .borrow()
            .nodes
            .get(path)
            .map(|n| (n.data.clone(), n.version)))
    }

    fn create(&self, path: &str, data: &[u8]) -> Result<i32, CoordError> {
        self.live()?;
        let mut tree = self.zk.tree.borrow_mut();
        if tree.nodes.contains_key(path) {
            return Err(CoordError::NodeExists(path.to_owned()));
        }
        if !tree.nodes.contains_key(parent(path)) {
            return Err(CoordError::NoNode(parent(path).to_owned()));
        }
        tree.nodes.insert(
            path.to_owned(),
            Node {
                data: data.to_vec(),
                version: 0,
                owner: None,
                next_sequence: 0,
            },
        );
        tree.fire(path);
        tree.fire_children(parent(path));
        Ok(0)
    }

    fn set(
        &self,
        path: &str,
        data: &[u8],
        version: i32,
        fence: Option<&str>,
    ) -> Result<i32, CoordError> {
        self.live()?;
        let mut tree = self.zk.tree.borrow_mut();
        if let Some(fence) = fence {
            if !tree.nodes.contains_key(fence) {
                return Err(CoordError::NoSession(format!(
                    "memory (member node '{fence}' is gone)"
                )));
            }
        }
        let Some(node) = tree.nodes.get_mut(path) else {
            return Err(CoordError::NoNode(path.to_owned()));
        };
        if node.version != version {
            return Err(CoordError::BadVersion(path.to_owned()));
        }
        node.data = data.to_vec();
        node.version += 1;
        let next = node.version;
        tree.fire(path);
        Ok(next)
    }
}
