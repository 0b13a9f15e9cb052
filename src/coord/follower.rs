//! The clients' leader detector (docs/zookeeper.md Z17–Z21): agents, frameworks and the
//! CLI commands given `--master zk://…` watch the masters' group and follow its lowest
//! member, the leader, as it changes.
//!
//! [`GroupFollower`] is polled, like the master's contender: it lists the group with a
//! one-shot child watch, reads the lowest member's `MasterInfo`, and lists again (arming
//! the watch again) whenever the watch fired, the session changed state, or its user
//! lost its master. It never names a leader with a lower epoch than one it named before.
//! What it finds is published in a [`LeaderSource`], which the agent's master link and
//! the framework driver read without I/O on every tick: [`LocalLeader`] when the
//! follower runs on the same thread (the simulator), [`SharedLeader`] when it runs on a
//! thread of its own beside the real client (`real_zk::spawn_follower`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use prost::Message;
use tracing::{info, warn};

use super::{member_sequence, CoordError, Coordination, ZkUrl};
use crate::proto::MasterInfo;

/// The leader a group names: its address and its leadership epoch (its member's
/// sequence plus one, docs/zookeeper.md Z6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leader {
    /// Where clients connect to it.
    pub address: String,
    /// Its epoch.
    pub epoch: u64,
}

/// Where a client reads the leader that its follower last found (no I/O).
pub trait LeaderSource {
    /// The leader, if the group names one.
    fn leader(&self) -> Option<Leader>;
    /// The client lost its master: list the group again now (docs/zookeeper.md Z18).
    fn reread(&self);
}

/// A [`LeaderSource`] the agent's and the framework's settings can hold.
#[derive(Clone)]
pub struct LeaderHandle(pub Rc<dyn LeaderSource>);

impl std::fmt::Debug for LeaderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LeaderHandle({:?})", self.0.leader())
    }
}

/// A leader published on the follower's own thread.
#[derive(Clone, Default)]
pub struct LocalLeader {
    leader: Rc<RefCell<Option<Leader>>>,
    reread: Rc<Cell<bool>>,
}

impl LocalLeader {
    /// Publishes what the follower found.
    pub fn publish(&self, leader: Option<Leader>) {
        *self.leader.borrow_mut() = leader;
    }
    /// Whether the client asked for a new listing since the last call.
    pub fn take_reread(&self) -> bool {
        self.reread.replace(false)
    }
}

impl LeaderSource for LocalLeader {
    fn leader(&self) -> Option<Leader> {
        self.leader.borrow().clone()
    }
    fn reread(&self) {
        self.reread.set(true);
    }
}

/// A leader published by a follower on another thread.
#[derive(Clone, Default)]
pub struct SharedLeader {
    inner: Arc<Mutex<(Option<Leader>, bool)>>,
}

impl SharedLeader {
    fn lock(&self) -> std::sync::MutexGuard<'_, (Option<Leader>, bool)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// Publishes what the follower found.
    pub fn publish(&self, leader: Option<Leader>) {
        self.lock().0 = leader;
    }
    /// Whether the client asked for a new listing since the last call.
    pub fn take_reread(&self) -> bool {
        std::mem::take(&mut self.lock().1)
    }
}

impl LeaderSource for SharedLeader {
    fn leader(&self) -> Option<Leader> {
        self.lock().0.clone()
    }
    fn reread(&self) {
        self.lock().1 = true;
    }
}

/// Follows the leader of a masters' group (docs/zookeeper.md Z17–Z20).
pub struct GroupFollower {
    coord: Rc<dyn Coordination>,
    url: ZkUrl,
    group: String,
    leader: Option<Leader>,
    /// The highest epoch named so far (Z19).
    highest: u64,
    /// The group must be listed again (and the watch armed again).
    dirty: bool,
    generation: u64,
    last_error: Option<String>,
}

impl GroupFollower {
    /// A follower of the group of `url` through `coord` (a session of its own).
    pub fn new(coord: Rc<dyn Coordination>, url: &ZkUrl) -> GroupFollower {
        GroupFollower {
            coord,
            url: url.clone(),
            group: url.members_path(),
            leader: None,
            highest: 0,
            dirty: true,
            generation: 0,
            last_error: None,
        }
    }

    /// Lists the group again at the next [`GroupFollower::maintain`] (Z18).
    pub fn reread(&mut self) {
        self.dirty = true;
    }

    /// Handles what the watches and the session reported, lists the group when it must,
    /// and returns the leader as far as it knows.
    pub fn maintain(&mut self) -> Option<Leader> {
        if !self.coord.poll_events().is_empty() {
            // A child watch fired, or the session changed state (a new session has no
            // watches; a resumed one may have missed a change): list again (Z18).
            self.dirty = true;
        }
        let generation = self.coord.session_generation();
        if generation != self.generation {
            self.generation = generation;
            self.dirty = true;
        }
        if self.dirty && self.coord.session_alive() {
            match self.read() {
                Ok(()) => self.last_error = None,
                Err(error) => {
                    let text = error.to_string();
                    if self.last_error.as_ref() != Some(&text) {
                        warn!(group = %self.url, error = %text, "cannot list the masters' group; trying again");
                    }
                    self.last_error = Some(text);
                }
            }
        }
        self.leader.clone()
    }

    fn read(&mut self) -> Result<(), CoordError> {
        let names = match self.coord.watch_children(&self.group) {
            Ok(names) => names,
            Err(CoordError::NoNode(_)) => {
                // No master ever ran here: wait for the group to be created (Z17).
                if self.coord.watch_node(&self.group)? {
                    return Ok(()); // created meanwhile: the watch fired; list again
                }
                self.dirty = false;
                self.forget("the group does not exist");
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        self.dirty = false;
        let mut members: Vec<(u64, String)> = names
            .into_iter()
            .filter_map(|name| member_sequence(&name).map(|seq| (seq, name)))
            .collect();
        members.sort();
        let Some((sequence, name)) = members.into_iter().next() else {
            self.forget("the group is empty");
            return Ok(());
        };
        let Some((data, _)) = self.coord.get(&format!("{}/{name}", self.group))? else {
            // Gone between the listing and the read: the child watch fired already.
            return Ok(());
        };
        let address = match MasterInfo::decode(data.as_slice()) {
            Ok(info) if !info.address.is_empty() => info.address,
            _ => {
                warn!(member = %name, "a member of the masters' group holds no master address: ignored");
                return Ok(());
            }
        };
        let epoch = sequence + 1;
        if epoch < self.highest {
            // Z19: sequences only grow, so this is an older view (a lagging server).
            warn!(epoch, highest = self.highest, %address, "the masters' group names a leader older than one already seen: ignored");
            return Ok(());
        }
        let leader = Leader { address, epoch };
        if self.leader.as_ref() != Some(&leader) {
            info!(leader = %leader.address, epoch, "the masters' group names a leader");
        }
        self.highest = epoch;
        self.leader = Some(leader);
        Ok(())
    }

    fn forget(&mut self, why: &str) {
        if self.leader.take().is_some() {
            info!(group = %self.url, why, "the masters' group names no leader");
        }
    }
}
