//! The coordination seam: what masters (and the clients that look for them) need from a
//! coordination service such as ZooKeeper (docs/zookeeper.md).
//!
//! The seam is synchronous and polled, like the master's [`crate::detector::Detector`]:
//! a master asks it on every tick. Watches are one-shot, as in ZooKeeper; what they
//! report, and every change of the session's state, is queued and handed out by
//! [`Coordination::poll_events`]. [`Coordination::session_alive`] is answered without
//! I/O and turns false as soon as the session may be lost (docs/zookeeper.md Z4), so a
//! leader stops acting at once rather than when the server expires it.
//!
//! Implementations: [`real_zk::ZkCoordination`] speaks to a real ZooKeeper ensemble;
//! [`memory::MemorySession`] is the model the unit tests and the simulator run on.
//! [`follower::GroupFollower`] is the clients' side: it watches the group and names the
//! leader as it changes.

pub mod contender;
pub mod follower;
pub mod real_zk;
pub mod registry_store;
pub mod url;

use std::time::Duration;

pub use contender::ZkContender;
pub use registry_store::CoordRegistryStore;
pub use url::ZkUrl;

/// A session's state as this process last learnt it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SessionState {
    /// Not yet connected, or connected no more but not known to be expired: ephemeral
    /// nodes may still exist on the server, but nothing this session owns may be relied
    /// on (docs/zookeeper.md Z4).
    Suspended,
    /// Connected and confirmed recently.
    Connected,
    /// The session ended (expired, closed, or refused): its ephemeral nodes are gone or
    /// will be. A new session follows; it has a new [`Coordination::session_generation`].
    Expired,
}

/// What a watch or the session reported.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CoordEvent {
    /// The session changed state.
    Session(SessionState),
    /// A watched node was created, changed or deleted.
    NodeChanged(String),
    /// A watched node's children changed.
    ChildrenChanged(String),
}

/// A failed operation; every variant names the node or the ensemble.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CoordError {
    /// The node does not exist.
    #[error("znode '{0}' does not exist")]
    NoNode(String),
    /// The node exists already.
    #[error("znode '{0}' exists already")]
    NodeExists(String),
    /// A versioned write found another version: someone else wrote since.
    #[error("znode '{0}' was changed by another writer (version check failed)")]
    BadVersion(String),
    /// This session may not write: it is not connected, or its fence node is gone.
    #[error("no live session with ZooKeeper at {0}")]
    NoSession(String),
    /// Anything else (timeouts, connection loss), with the operation and node.
    #[error("ZooKeeper at {ensemble}: {operation} '{path}': {message}")]
    Failed {
        /// The ensemble's hosts.
        ensemble: String,
        /// What was attempted.
        operation: &'static str,
        /// On which node.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// A member of a group: an ephemeral sequential node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The node's full path.
    pub path: String,
    /// Its sequence number (ZooKeeper's, per parent node).
    pub sequence: u64,
}

/// The prefix of a member node's name (docs/zookeeper.md Z2).
pub const MEMBER_PREFIX: &str = "member_";

/// The sequence number of a member node's name (`member_0000000007` → 7).
pub fn member_sequence(name: &str) -> Option<u64> {
    name.strip_prefix(MEMBER_PREFIX)?.parse().ok()
}

/// The coordination service, as one session of it.
pub trait Coordination {
    /// The current session's state (no I/O). `Connected` only while the session was
    /// confirmed alive within the last two thirds of its timeout.
    fn session_state(&self) -> SessionState;
    /// Whether the session is connected and recently confirmed (no I/O).
    fn session_alive(&self) -> bool {
        self.session_state() == SessionState::Connected
    }
    /// Counts sessions: a new session (after an expiry) has a higher number.
    fn session_generation(&self) -> u64;
    /// The negotiated session timeout.
    fn session_timeout(&self) -> Duration;
    /// The events queued since the last call, oldest first.
    fn poll_events(&self) -> Vec<CoordEvent>;
    /// Creates `path` and its missing ancestors as persistent nodes (`mkdir -p`).
    fn ensure_path(&self, path: &str) -> Result<(), CoordError>;
    /// Joins the group under `group` as an ephemeral sequential node holding `data`.
    fn join(&self, group: &str, data: &[u8]) -> Result<Member, CoordError>;
    /// The children of `path` (names, not paths), unsorted.
    fn children(&self, path: &str) -> Result<Vec<String>, CoordError>;
    /// Sets a one-shot watch on `path` (created, changed or deleted); says whether it
    /// exists now.
    fn watch_node(&self, path: &str) -> Result<bool, CoordError>;
    /// The children of `path` (names, unsorted), and a one-shot watch on them: the next
    /// child created or deleted (or `path` deleted) queues
    /// [`CoordEvent::ChildrenChanged`] (docs/zookeeper.md Z17).
    fn watch_children(&self, path: &str) -> Result<Vec<String>, CoordError>;
    /// A node's data and version, or `None` if it does not exist.
    fn get(&self, path: &str) -> Result<Option<(Vec<u8>, i32)>, CoordError>;
    /// Creates a persistent node; its version is 0.
    fn create(&self, path: &str, data: &[u8]) -> Result<i32, CoordError>;
    /// Writes `data` to `path` if its version is still `version` and, when `fence` is
    /// given, only if that node (this session's member node) still exists, in one
    /// atomic step (docs/zookeeper.md Z7). Returns the new version.
    fn set(
        &self,
        path: &str,
        data: &[u8],
        version: i32,
        fence: Option<&str>,
    ) -> Result<i32, CoordError>;
}

pub mod memory;

#[cfg(test)]
mod tests;
