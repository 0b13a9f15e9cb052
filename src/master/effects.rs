//! What the master's core asks the world to do, and what it is told of the world
//! (docs/design.md D37-D41). The core's handlers take an event, the time and the
//! leadership as it stands, change the master's state and return a list of [`Effect`]s;
//! the driver (`driver.rs`) performs them, in order, before it waits for the next event.

use tokio::time::Instant;

use crate::http::Response;
use crate::proto::envelope::Body;
use crate::registry::RegistryWrite;
use crate::wire::ConnectionId;

/// One thing for the driver to do (docs/design.md D38).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // effects are moved once; boxing buys nothing
pub enum Effect {
    /// Queue `body` on connection `to` (nothing if the connection is gone).
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
    /// Make a registry change durable; should that fail, do nothing more and stop the
    /// master (docs/design.md D77).
    Record(RegistryWrite),
    /// Answer the HTTP request that arrived on `connection`.
    Respond {
        /// The connection.
        connection: ConnectionId,
        /// The answer.
        response: Response,
    },
}

/// The time an event is handled at (docs/design.md D39): read once by the driver, so a
/// handler sees one instant however long it takes.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    /// The monotonic clock, for timeouts.
    pub at: Instant,
    /// Wall-clock seconds since the UNIX epoch, for status update timestamps.
    pub wall_seconds: f64,
}

/// What the leader detector says at the moment an event is handled (docs/design.md
/// D39): the core reads leadership from here, never from the detector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leadership {
    /// Whether this master leads at this instant.
    pub leading: bool,
    /// The leader's address as far as this master knows (empty if unknown).
    pub leader: String,
    /// This master's leadership epoch (docs/zookeeper.md Z6).
    pub epoch: u64,
}

impl Leadership {
    /// What `detector` says now (reads only: no I/O, docs/design.md D39).
    pub fn of(detector: &dyn crate::detector::Detector) -> Leadership {
        Leadership {
            leading: detector.leading(),
            leader: detector.leader(),
            epoch: detector.epoch(),
        }
    }
}
