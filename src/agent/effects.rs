//! What the agent's decisions ask the world to do (docs/design.md D45-D48). A decision
//! (the master link's `link.rs`, the executors' `admission.rs`, garbage collection's
//! `gc_schedule.rs`) takes the event and `now`, changes its own state and returns a list
//! of [`Effect`]s; the agent's driver (`perform.rs`) carries them out, in order, before
//! it does anything else.

use std::path::PathBuf;

use tokio::time::Instant;

use crate::os::ProcessId;
use crate::proto::envelope::Body;
use crate::wire::ConnectionId;

/// One thing for the driver to do (docs/design.md D46).
#[derive(Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // effects are moved once; boxing buys nothing
pub(super) enum Effect {
    /// Send the registration, or the re-registration, that the agent's state makes
    /// (built by the driver from the frameworks, executors and tasks it holds: D47).
    Register,
    /// Queue `body` on the master connection (held until the batch is durable under
    /// group commit; nothing if there is no master connection).
    ToMaster(Body),
    /// Give up the master connection and look for a master again, after the back-off.
    Reconnect,
    /// Queue `body` on connection `to` (an executor's; held as [`Effect::ToMaster`]).
    Send {
        /// The connection.
        to: ConnectionId,
        /// The message.
        body: Body,
    },
    /// Close a connection now (its peer sees it closed).
    Close {
        /// The connection.
        connection: ConnectionId,
    },
    /// Kill a process (SIGKILL), alive or not.
    Kill {
        /// The process.
        process: ProcessId,
    },
    /// Remove a directory tree (garbage collection); should that fail, schedule it
    /// again for `retry_at`.
    RemoveDir {
        /// The directory.
        path: PathBuf,
        /// When to try again after a failure.
        retry_at: Instant,
    },
}
