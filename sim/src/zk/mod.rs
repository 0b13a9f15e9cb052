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
//! The same module (`evidence`) keeps the evidence of the two ZooKeeper oracles (Z15, Z16), taken
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

use crate::violation::Violation;

mod client;
mod evidence;
mod process;
mod server;

use client::ClientState;
pub use client::SimZk;
pub use evidence::observe_written;
pub use process::{current, following, master_process};
pub use server::server_host;

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
}
