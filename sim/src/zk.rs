//! ZooKeeper in the simulator (docs/zookeeper.md Z11–Z16).
//!
//! A host `zk` in the turmoil cluster serves one ZooKeeper "ensemble" whose tree is the
//! model of `revenant::coord::memory` (ordered maps: ephemeral sequential znodes with a
//! counter per parent, one-shot watches, versioned and fenced writes). The tree lives
//! outside the host's process, as a real ensemble's data lives on its disks: the host
//! can crash and come back with it (Z13).
//!
//! Masters reach it through [`SimZk`], an implementation of the very coordination seam
//! the real client (`revenant::coord::real_zk`) implements, so that the same contender and
//! registry store run here and in production. Over simulated TCP a client opens a
//! session (`hello`), keeps it alive with a ping every quarter of its timeout, and
//! receives the watch notifications the server pushes. The server expires a session
//! that it has not heard from for its whole timeout (removing its ephemerals and firing
//! the watches on them); the client calls its session `Suspended` as soon as no ping
//! was answered within two thirds of the timeout, and drops its connection to try
//! again, so a master stops leading before the server expires it (Z4, Z12). The seam's
//! operations are synchronous, as the real client's are (it blocks its caller); here
//! they take effect on the tree at once, but only when the client holds a confirmed
//! session, the host is up and no partition separates the two hosts; otherwise they
//! fail as a lost connection would (Z11).
//!
//! The same module keeps the evidence of the two ZooKeeper oracles (Z15, Z16), taken
//! from the wire (every frame a master writes) and from the tree, outside the code
//! under test.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use prost::Message;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::time::Instant;
use tracing::{info, Instrument};

use revenant::coord::memory::MemoryZk;
use revenant::coord::{
    member_sequence, CoordError, CoordEvent, Coordination, Member, SessionState, ZkUrl,
};
use revenant::proto::envelope::Body;

use crate::oracles::Violation;

/// The ZooKeeper host's name in the simulated network.
pub const ZK_HOST: &str = "zk";
/// Its client port.
pub const ZK_PORT: u16 = 2181;
/// The group masters join in the simulator.
pub const ZK_URL: &str = "zk://zk:2181/revenant";
/// Bounds the server puts on a session timeout (tickTime 2 s: 2 to 20 ticks).
const TIMEOUT_MIN: Duration = Duration::from_secs(4);
const TIMEOUT_MAX: Duration = Duration::from_secs(40);
/// How often the server looks for sessions to expire and flushes watch notifications.
const SERVER_TICK: Duration = Duration::from_millis(50);

thread_local! {
    static WORLD: RefCell<Option<Rc<ZkWorld>>> = const { RefCell::new(None) };
}

/// The ensemble of one run, and the oracles' evidence.
pub struct ZkWorld {
    /// The znodes (durable across the host's crashes).
    pub tree: MemoryZk,
    url: ZkUrl,
    up: Cell<bool>,
    /// Master hosts partitioned from the ZooKeeper host.
    cut: RefCell<BTreeSet<String>>,
    sessions: RefCell<BTreeMap<u64, ServerSession>>,
    /// The session each master host's running process holds now, and its client's
    /// state (the client library is part of the simulated world, not of the code
    /// under test).
    current: RefCell<BTreeMap<String, (u64, Rc<ClientState>)>>,
    /// Master hosts whose next write's answer is lost (`zk_lose_reply`, Z22).
    /// With the operation it is limited to (`join`, `create`, `set`), if any.
    lose_reply: RefCell<BTreeMap<String, Option<String>>>,
    /// Sessions the server ended out of band (`zk_expire`), not by their timeout.
    forced: RefCell<BTreeSet<u64>>,
    /// Agent ids a master acknowledged (AgentRegistered), with when.
    acknowledged: RefCell<BTreeMap<String, Duration>>,
    /// The registry version last checked against them.
    checked_version: Cell<i32>,
    violations: RefCell<Vec<Violation>>,
}

struct ServerSession {
    host: String,
    timeout: Duration,
    last_heard: Instant,
    /// The connection serving it now (only that one sends its notifications).
    connection: u64,
}

/// Starts the ZooKeeper model of a run (before the hosts are built).
pub fn begin() -> Rc<ZkWorld> {
    let world = Rc::new(ZkWorld {
        tree: MemoryZk::new(),
        url: ZkUrl::parse(ZK_URL).expect("the simulator's ZooKeeper URL is well formed"),
        up: Cell::new(false),
        cut: RefCell::new(BTreeSet::new()),
        sessions: RefCell::new(BTreeMap::new()),
        current: RefCell::new(BTreeMap::new()),
        forced: RefCell::new(BTreeSet::new()),
        lose_reply: RefCell::new(BTreeMap::new()),
        acknowledged: RefCell::new(BTreeMap::new()),
        checked_version: Cell::new(-1),
        violations: RefCell::new(Vec::new()),
    });
    WORLD.with(|w| *w.borrow_mut() = Some(world.clone()));
    world
}

/// Ends the run's model: the violations it saw, with the final registry check (Z16).
pub fn finish() -> Vec<Violation> {
    let Some(world) = WORLD.with(|w| w.borrow_mut().take()) else {
        return Vec::new();
    };
    world.check_registry(true);
    world.violations.take()
}

/// Forgets any model left by a run that did not finish (a panic).
pub fn clear() {
    WORLD.with(|w| w.borrow_mut().take());
}

fn world() -> Option<Rc<ZkWorld>> {
    WORLD.with(|w| w.borrow().clone())
}

/// Whether this run has a ZooKeeper (the wire observer costs nothing otherwise).
pub fn active() -> bool {
    WORLD.with(|w| w.borrow().is_some())
}

fn elapsed() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

impl ZkWorld {
    fn reachable(&self, host: &str) -> bool {
        self.up.get() && !self.cut.borrow().contains(host)
    }

    /// The host crashed (Z13): nothing answers until it starts again.
    pub fn down(&self) {
        self.up.set(false);
    }

    /// A master host is cut from ZooKeeper, or joined again.
    pub fn set_cut(&self, host: &str, cut: bool) {
        if cut {
            self.cut.borrow_mut().insert(host.to_owned());
        } else {
            self.cut.borrow_mut().remove(host);
        }
    }

    /// The next write `host`'s master sends is applied, and its answer lost with the
    /// connection (Z22).
    /// `operation` limits it to one kind of write.
    pub fn lose_next_reply(&self, host: &str, operation: Option<String>) {
        self.lose_reply
            .borrow_mut()
            .insert(host.to_owned(), operation);
    }

    /// Expires, on the server, the session that `host`'s master holds now (Z14); says
    /// whether there was one.
    pub fn expire_host(&self, host: &str) -> bool {
        let Some(id) = self.current.borrow().get(host).map(|(id, _)| *id) else {
            return false;
        };
        if !self.tree.session_live(id) {
            return false;
        }
        self.forced.borrow_mut().insert(id);
        self.expire(id, "forced");
        true
    }

    fn expire(&self, id: u64, why: &str) {
        let removed = self.tree.expire_session(id);
        let host = self
            .sessions
            .borrow()
            .get(&id)
            .map(|s| s.host.clone())
            .unwrap_or_default();
        info!(target: "revenant_sim", session = id, master = %host, why, removed = ?removed, "zookeeper expired a session");
    }

    fn expire_due(&self) {
        if !self.up.get() {
            return;
        }
        let now = Instant::now();
        let due: Vec<u64> = self
            .sessions
            .borrow()
            .iter()
            .filter(|(id, s)| {
                self.tree.session_live(**id) && now.duration_since(s.last_heard) > s.timeout
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.expire(id, "timeout");
        }
    }

    /// The lowest member of the masters' group and its owning session.
    fn leader_session(&self) -> Option<u64> {
        let group = self.url.members_path();
        let lowest = self
            .tree
            .children_of(&group)
            .into_iter()
            .filter_map(|name| member_sequence(&name).map(|seq| (seq, name)))
            .min()?;
        self.tree
            .node(&format!("{group}/{}", lowest.1))
            .and_then(|(_, _, owner)| owner)
    }

    /// The master host whose session holds the lowest member, if any.
    pub fn leader_host(&self) -> Option<String> {
        let id = self.leader_session()?;
        self.sessions.borrow().get(&id).map(|s| s.host.clone())
    }

    fn registry_agents(&self) -> (i32, BTreeSet<String>) {
        match self.tree.node(&self.url.registry_path()) {
            Some((data, version, _)) => {
                let registry =
                    revenant::proto::Registry::decode(data.as_slice()).unwrap_or_default();
                let ids = registry
                    .agents
                    .iter()
                    .filter_map(|a| a.info.as_ref().map(|i| i.id.clone()))
                    .collect();
                (version, ids)
            }
            None => (-1, BTreeSet::new()),
        }
    }

    /// Z16: every agent id a leader acknowledged is in the registry node.
    fn check_registry(&self, force: bool) {
        let (version, ids) = self.registry_agents();
        if !force && version == self.checked_version.get() {
            return;
        }
        self.checked_version.set(version);
        for (agent, at) in self.acknowledged.borrow().iter() {
            if !ids.contains(agent) {
                self.violations.borrow_mut().push(Violation {
                    time: elapsed(),
                    oracle: "zk_registry",
                    message: format!(
                        "agent {agent}, acknowledged by a leader at {:.3}s, is missing from the registry node {} (version {version})",
                        at.as_secs_f64(),
                        self.url.registry_path()
                    ),
                });
            }
        }
    }

    /// Z15 and Z16 at the instant `master` writes `frame` to `peer`.
    fn observe(&self, master: &str, peer: &str, frame: &[u8]) {
        let Some(body) = revenant::proto::Envelope::decode(frame)
            .ok()
            .and_then(|e| e.body)
        else {
            return;
        };
        if matches!(body, Body::NotLeader(_)) {
            return;
        }
        let kind = revenant::wire::kind(&body);
        let current = self.current.borrow().get(master).cloned();
        let why = match &current {
            None => Some("holds no ZooKeeper session".to_owned()),
            // A decision taken at this very instant, before the client heard, is not
            // one taken without a session.
            Some((_, client)) if client.lost_since().is_some_and(|at| at < Instant::now()) => {
                Some(format!(
                    "whose ZooKeeper client has held no confirmed session since {:.3}s",
                    client
                        .lost_since()
                        .map(|at| elapsed()
                            .saturating_sub(Instant::now().duration_since(at))
                            .as_secs_f64())
                        .unwrap_or_default()
                ))
            }
            // Ended by the server out of band while the client was connected: the
            // client cannot know before the server's notice reaches it (Z14, Z15).
            Some((id, _)) if self.forced.borrow().contains(id) => None,
            Some((id, _)) if !self.tree.session_live(*id) => Some(format!(
                "whose ZooKeeper session {id} expired at its timeout"
            )),
            Some((id, _)) if self.leader_session() != Some(*id) => Some(format!(
                "whose session {id} does not hold the lowest member (the leader is {})",
                self.leader_host().unwrap_or_else(|| "nobody".into())
            )),
            Some(_) => None,
        };
        if let Some(why) = why {
            self.violations.borrow_mut().push(Violation {
                time: elapsed(),
                oracle: "zk_one_leader",
                message: format!("{master}, {why}, sent the leader-only message {kind} to {peer}"),
            });
        }
        let acknowledged = match &body {
            Body::AgentRegistered(m) => Some(m.agent_id.clone()),
            Body::AgentReregistered(m) => Some(m.agent_id.clone()),
            _ => None,
        };
        if let Some(agent) = acknowledged.filter(|a| !a.is_empty()) {
            self.acknowledged
                .borrow_mut()
                .entry(agent)
                .or_insert_with(elapsed);
            self.check_registry(true);
        }
    }
}

/// A master process wrote `bytes` to a connection: the wire observer (see
/// [`crate::drops::FilteredStream`]) hands over each whole frame.
pub fn observe_written(local: &str, peer: &str, frame: &[u8]) {
    if !local.starts_with("master") || peer == ZK_HOST {
        return;
    }
    if let Some(world) = world() {
        world.observe(local, peer, frame);
    }
}

/// The ZooKeeper host's software: listens, serves sessions, expires them.
pub fn server_host(world: Rc<ZkWorld>) -> impl Future<Output = turmoil::Result> {
    let span = crate::trace::host_span(ZK_HOST);
    async move {
        // A restarted server gives every session a whole timeout again, as a new
        // ZooKeeper leader does (Z13).
        let now = Instant::now();
        for session in world.sessions.borrow_mut().values_mut() {
            session.last_heard = now;
        }
        world.up.set(true);
        info!(target: "revenant_sim", "zookeeper serving");
        let listener = turmoil::net::TcpListener::bind(("0.0.0.0", ZK_PORT)).await?;
        let ticker = world.clone();
        tokio::task::spawn_local(async move {
            loop {
                tokio::time::sleep(SERVER_TICK).await;
                ticker.expire_due();
                ticker.check_registry(false);
            }
        });
        let mut connections = 0u64;
        loop {
            let (stream, peer) = listener.accept().await?;
            connections += 1;
            let host = turmoil::reverse_lookup(peer.ip()).unwrap_or_else(|| peer.ip().to_string());
            tokio::task::spawn_local(serve(world.clone(), stream, host, connections));
        }
    }
    .instrument(span)
}

async fn serve(world: Rc<ZkWorld>, stream: turmoil::net::TcpStream, host: String, connection: u64) {
    let (reader, mut writer) = tokio::io::split(stream);
    let mut lines = BufReader::new(reader).lines();
    let mut session = 0u64;
    loop {
        let line = tokio::select! {
            biased;
            line = lines.next_line() => line,
            _ = tokio::time::sleep(SERVER_TICK) => {
                // The server closes the connection of a session it ended (Z12).
                if session != 0 && !world.tree.session_live(session) {
                    let _ = writer.write_all(b"expired\n").await;
                    return;
                }
                // Watch notifications, from the connection now serving the session.
                let serving = world.sessions.borrow().get(&session).is_some_and(|s| s.connection == connection);
                if session != 0 && serving {
                    let mut out = String::new();
                    for event in world.tree.take_events(session) {
                        match event {
                            CoordEvent::NodeChanged(path) => out.push_str(&format!("watch {path}\n")),
                            CoordEvent::ChildrenChanged(path) => out.push_str(&format!("children {path}\n")),
                            CoordEvent::Session(_) => {}
                        }
                    }
                    if !out.is_empty() && writer.write_all(out.as_bytes()).await.is_err() {
                        return;
                    }
                }
                continue;
            }
        };
        let Ok(Some(line)) = line else {
            return;
        };
        let mut words = line.split_whitespace();
        let reply = match words.next() {
            Some("hello") => {
                let asked: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                let timeout_ms: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(10_000);
                let timeout = Duration::from_millis(timeout_ms).clamp(TIMEOUT_MIN, TIMEOUT_MAX);
                if asked != 0 && !world.tree.session_live(asked) {
                    "expired\n".to_owned()
                } else {
                    session = if asked == 0 {
                        world.tree.open_session()
                    } else {
                        asked
                    };
                    let mut sessions = world.sessions.borrow_mut();
                    let entry = sessions.entry(session).or_insert(ServerSession {
                        host: host.clone(),
                        timeout,
                        last_heard: Instant::now(),
                        connection,
                    });
                    entry.last_heard = Instant::now();
                    entry.connection = connection;
                    format!("session {session} {}\n", entry.timeout.as_millis())
                }
            }
            Some("ping") => {
                if session != 0 && world.tree.session_live(session) {
                    if let Some(s) = world.sessions.borrow_mut().get_mut(&session) {
                        s.last_heard = Instant::now();
                    }
                    "pong\n".to_owned()
                } else {
                    "expired\n".to_owned()
                }
            }
            _ => return,
        };
        if writer.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

struct ClientState {
    session: Cell<u64>,
    generation: Cell<u64>,
    connected: Cell<bool>,
    /// When the last answered ping (or the hello) was sent.
    confirmed: Cell<Option<Instant>>,
    timeout: Cell<Duration>,
    events: RefCell<Vec<CoordEvent>>,
    /// When the connection was last lost.
    lost_at: Cell<Option<Instant>>,
    /// The connection broke under a request (Z22): the session task drops it and
    /// connects again.
    broken: Cell<bool>,
}

impl ClientState {
    fn lose(&self) {
        self.connected.set(false);
        self.lost_at.set(Some(Instant::now()));
    }

    /// Since when the client has not held a confirmed session (`None`: it holds one).
    fn lost_since(&self) -> Option<Instant> {
        if self.session.get() == 0 || !self.connected.get() {
            return Some(self.lost_at.get().unwrap_or_else(Instant::now));
        }
        let stale = self.confirmed.get()? + self.timeout.get() * 2 / 3;
        (Instant::now() >= stale).then_some(stale)
    }

    /// The session's state as the client library knows it (Z4, Z12).
    fn state(&self) -> SessionState {
        if self.session.get() == 0 || !self.connected.get() {
            return SessionState::Suspended;
        }
        let fresh = self
            .confirmed
            .get()
            .is_some_and(|at| Instant::now().duration_since(at) < self.timeout.get() * 2 / 3);
        if fresh {
            SessionState::Connected
        } else {
            SessionState::Suspended
        }
    }
}

/// One master process's ZooKeeper client: the coordination seam over the simulated
/// network. Its session task runs on the master's host and dies with it.
pub struct SimZk {
    world: Rc<ZkWorld>,
    host: String,
    state: Rc<ClientState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SimZk {
    fn drop(&mut self) {
        // The process is gone: no more pings; the server expires the session in time.
        self.task.abort();
    }
}

impl SimZk {
    /// Starts the client of master `host`, asking for `timeout`.
    pub fn start(world: Rc<ZkWorld>, host: &str, timeout: Duration) -> SimZk {
        SimZk::start_as(world, host, timeout, true)
    }

    /// Starts the client of a process that is not a master (an agent's or a framework's
    /// leader detector, Z17): the oracles do not count its session as a master's.
    pub fn start_client(world: Rc<ZkWorld>, host: &str, timeout: Duration) -> SimZk {
        SimZk::start_as(world, host, timeout, false)
    }

    fn start_as(world: Rc<ZkWorld>, host: &str, timeout: Duration, master: bool) -> SimZk {
        let state = Rc::new(ClientState {
            session: Cell::new(0),
            generation: Cell::new(0),
            connected: Cell::new(false),
            confirmed: Cell::new(None),
            timeout: Cell::new(timeout),
            events: RefCell::new(Vec::new()),
            lost_at: Cell::new(None),
            broken: Cell::new(false),
        });
        let task = tokio::task::spawn_local(
            session_task(
                world.clone(),
                host.to_owned(),
                timeout,
                state.clone(),
                master,
            )
            .instrument(tracing::Span::current()),
        );
        SimZk {
            world,
            host: host.to_owned(),
            state,
            task,
        }
    }

    fn usable(&self) -> Result<u64, CoordError> {
        let id = self.state.session.get();
        if !self.session_alive() || !self.world.tree.session_live(id) {
            return Err(CoordError::NoSession(ZK_URL.into()));
        }
        if !self.world.reachable(&self.host) {
            return Err(CoordError::Failed {
                ensemble: format!("{ZK_HOST}:{ZK_PORT}"),
                operation: "request",
                path: String::new(),
                message: "connection loss".into(),
            });
        }
        Ok(id)
    }

    fn with<T>(
        &self,
        op: impl FnOnce(&revenant::coord::memory::MemorySession) -> Result<T, CoordError>,
    ) -> Result<T, CoordError> {
        let id = self.usable()?;
        op(&self.world.tree.attach(id))
    }

    /// A write: as [`SimZk::with`], but when its answer is to be lost (Z22) the server
    /// applies it and the client hears only that its connection broke.
    fn write<T>(
        &self,
        operation: &'static str,
        path: &str,
        op: impl FnOnce(&revenant::coord::memory::MemorySession) -> Result<T, CoordError>,
    ) -> Result<T, CoordError> {
        let result = self.with(op)?;
        let due = match self.world.lose_reply.borrow().get(&self.host) {
            Some(only) => only.as_deref().is_none_or(|only| only == operation),
            None => false,
        };
        if !due {
            return Ok(result);
        }
        self.world.lose_reply.borrow_mut().remove(&self.host);
        info!(target: "revenant_sim", master = %self.host, operation, path, "zookeeper applied a write whose answer was lost");
        self.state.lose();
        self.state.broken.set(true);
        push(&self.state, CoordEvent::Session(SessionState::Suspended));
        Err(CoordError::Failed {
            ensemble: format!("{ZK_HOST}:{ZK_PORT}"),
            operation,
            path: path.to_owned(),
            message: "connection loss".into(),
        })
    }
}

fn push(state: &ClientState, event: CoordEvent) {
    state.events.borrow_mut().push(event);
}

async fn session_task(
    world: Rc<ZkWorld>,
    host: String,
    timeout: Duration,
    state: Rc<ClientState>,
    master: bool,
) {
    loop {
        let connect = turmoil::net::TcpStream::connect((ZK_HOST, ZK_PORT));
        let stream = match tokio::time::timeout(Duration::from_secs(1), connect).await {
            Ok(Ok(stream)) => stream,
            _ => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let (reader, mut writer) = tokio::io::split(stream);
        let mut lines = BufReader::new(reader).lines();
        let hello_at = Instant::now();
        let hello = format!("hello {} {}\n", state.session.get(), timeout.as_millis());
        if writer.write_all(hello.as_bytes()).await.is_err() {
            continue;
        }
        let answer = tokio::time::timeout(timeout * 2 / 3, lines.next_line()).await;
        let Ok(Ok(Some(answer))) = answer else {
            continue;
        };
        let mut words = answer.split_whitespace();
        match words.next() {
            Some("session") => {
                let id: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                if let Some(ms) = words.next().and_then(|w| w.parse().ok()) {
                    state.timeout.set(Duration::from_millis(ms));
                }
                if id != state.session.get() {
                    state.session.set(id);
                    state.generation.set(state.generation.get() + 1);
                    info!(target: "revenant_sim", session = id, "zookeeper client: new session");
                }
                if master {
                    world
                        .current
                        .borrow_mut()
                        .insert(host.clone(), (id, state.clone()));
                }
                state.confirmed.set(Some(hello_at));
                state.broken.set(false);
                state.connected.set(true);
                push(&state, CoordEvent::Session(SessionState::Connected));
            }
            Some("expired") => {
                info!(target: "revenant_sim", session = state.session.get(), "zookeeper client: session expired");
                state.session.set(0);
                state.lose();
                push(&state, CoordEvent::Session(SessionState::Expired));
                continue;
            }
            _ => continue,
        }
        let session_timeout = state.timeout.get();
        let interval = session_timeout / 4;
        let patience = session_timeout * 2 / 3;
        let mut sent: VecDeque<Instant> = VecDeque::new();
        let mut next_ping = Instant::now() + interval;
        loop {
            if state.broken.replace(false) {
                break;
            }
            let confirmed = state.confirmed.get().unwrap_or(hello_at);
            let deadline = confirmed + patience;
            if Instant::now() >= deadline {
                // No answer within two thirds of the timeout: the connection is lost
                // as far as this client knows (Z4, Z12); try again.
                info!(target: "revenant_sim", session = state.session.get(), "zookeeper client: connection lost");
                state.lose();
                push(&state, CoordEvent::Session(SessionState::Suspended));
                break;
            }
            let line = tokio::select! {
                biased;
                line = lines.next_line() => Some(line),
                _ = tokio::time::sleep_until(next_ping.min(deadline)) => None,
            };
            match line {
                None => {
                    if Instant::now() >= next_ping {
                        sent.push_back(Instant::now());
                        next_ping += interval;
                        if writer.write_all(b"ping\n").await.is_err() {
                            state.lose();
                            push(&state, CoordEvent::Session(SessionState::Suspended));
                            break;
                        }
                    }
                }
                Some(Ok(Some(line))) => {
                    if line == "pong" {
                        if let Some(at) = sent.pop_front() {
                            state.confirmed.set(Some(at));
                        }
                    } else if line == "expired" {
                        info!(target: "revenant_sim", session = state.session.get(), "zookeeper client: session expired");
                        state.session.set(0);
                        state.lose();
                        push(&state, CoordEvent::Session(SessionState::Expired));
                        break;
                    } else if let Some(path) = line.strip_prefix("watch ") {
                        push(&state, CoordEvent::NodeChanged(path.to_owned()));
                    } else if let Some(path) = line.strip_prefix("children ") {
                        push(&state, CoordEvent::ChildrenChanged(path.to_owned()));
                    }
                }
                Some(_) => {
                    state.lose();
                    push(&state, CoordEvent::Session(SessionState::Suspended));
                    break;
                }
            }
        }
    }
}

impl Coordination for SimZk {
    fn session_state(&self) -> SessionState {
        self.state.state()
    }

    fn session_generation(&self) -> u64 {
        self.state.generation.get()
    }

    fn session_timeout(&self) -> Duration {
        self.state.timeout.get()
    }

    fn poll_events(&self) -> Vec<CoordEvent> {
        std::mem::take(&mut *self.state.events.borrow_mut())
    }

    fn ensure_path(&self, path: &str) -> Result<(), CoordError> {
        self.with(|s| s.ensure_path(path))
    }

    fn join(&self, group: &str, data: &[u8]) -> Result<Member, CoordError> {
        self.write("join", group, |s| s.join(group, data))
    }

    fn children(&self, path: &str) -> Result<Vec<String>, CoordError> {
        self.with(|s| s.children(path))
    }

    fn watch_node(&self, path: &str) -> Result<bool, CoordError> {
        self.with(|s| s.watch_node(path))
    }

    fn watch_children(&self, path: &str) -> Result<Vec<String>, CoordError> {
        self.with(|s| s.watch_children(path))
    }

    fn get(&self, path: &str) -> Result<Option<(Vec<u8>, i32)>, CoordError> {
        self.with(|s| s.get(path))
    }

    fn create(&self, path: &str, data: &[u8]) -> Result<i32, CoordError> {
        self.write("create", path, |s| s.create(path, data))
    }

    fn set(
        &self,
        path: &str,
        data: &[u8],
        version: i32,
        fence: Option<&str>,
    ) -> Result<i32, CoordError> {
        self.write("set", path, |s| s.set(path, data, version, fence))
    }
}

/// A master process on ZooKeeper (Z11): connects, then runs the master with the
/// contender and the fenced registry store of `revenant::coord`, as `revenant master
/// --zk` does. A master whose registry write failed exits (Z7); its supervisor starts
/// it again, as a new contender with a new session.
pub async fn master_process(
    env: revenant::os::Env,
    config: revenant::master::MasterConfig,
    session_timeout: Duration,
    host: String,
) -> std::io::Result<()> {
    use revenant::coord::{CoordRegistryStore, ZkContender};
    let Some(world) = world() else {
        return Err(std::io::Error::other("no ZooKeeper in this run"));
    };
    let url = world.url.clone();
    loop {
        let coord = Rc::new(SimZk::start(world.clone(), &host, session_timeout));
        // Z5: connect before listening (a supervisor would restart a master that gave
        // up, so waiting here is the same).
        let info = revenant::proto::MasterInfo {
            address: config.listen.clone(),
            incarnation: env.random.next_u64(),
        };
        let contender = ZkContender::new(coord.clone(), env.clock.clone(), &url, &info)
            .with_breakage(config.breakage);
        let registry = loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if !coord.session_alive() || coord.ensure_path(&url.members_path()).is_err() {
                continue;
            }
            // Read without a member node: nothing is claimed until elected (Z8).
            let store =
                CoordRegistryStore::new(coord.clone(), url.registry_path(), contender.member())
                    .with_breakage(config.breakage);
            if let Ok(registry) = revenant::registry::Registry::in_store(Box::new(store)) {
                break registry;
            }
        };
        let result = revenant::master::run_with_registry(
            env.clone(),
            config.clone(),
            Box::new(contender),
            registry,
        )
        .await;
        world.current.borrow_mut().remove(&host);
        match result {
            Ok(()) => return Ok(()),
            Err(error) => {
                info!(target: "revenant_sim", master = %host, %error, "master on ZooKeeper stopped; its supervisor starts it again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The ZooKeeper model of this run, if any (for the driver's faults).
pub fn current() -> Option<Rc<ZkWorld>> {
    world()
}

/// The session timeout an agent's or a framework's leader detector asks for (the real
/// binaries' default, `revenant::coord::real_zk::SESSION_TIMEOUT_DEFAULT`).
const CLIENT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a detector handles what its watches reported.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Aborts a task when dropped: the detector dies with the process it serves.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs a client process (an agent, a framework) on `host`: when this run has a
/// ZooKeeper, with a leader detector on a session of its own that follows the masters'
/// group, as the binaries given `--master zk://…` do (Z17); otherwise with none.
pub async fn following<F, Fut>(host: &str, run: F) -> Fut::Output
where
    F: FnOnce(Option<revenant::coord::follower::LeaderHandle>) -> Fut,
    Fut: Future,
{
    use revenant::coord::follower::{GroupFollower, LeaderHandle, LocalLeader};
    let Some(world) = world() else {
        return run(None).await;
    };
    let coord = Rc::new(SimZk::start_client(
        world.clone(),
        host,
        CLIENT_SESSION_TIMEOUT,
    ));
    let source = LocalLeader::default();
    let published = source.clone();
    let url = world.url.clone();
    let _detector = AbortOnDrop(tokio::task::spawn_local(
        async move {
            let mut follower = GroupFollower::new(coord, &url);
            loop {
                if published.take_reread() {
                    follower.reread();
                }
                published.publish(follower.maintain());
                tokio::time::sleep(FOLLOW_POLL).await;
            }
        }
        .instrument(tracing::Span::current()),
    ));
    run(Some(LeaderHandle(Rc::new(source)))).await
}
