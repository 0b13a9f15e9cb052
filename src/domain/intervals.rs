//! The agent's protocol intervals that other parties reason about (docs/design.md D61):
//! the master's flag checks compare its timeouts with the registration back-off cap, and
//! the simulator's oracles and fault draws with the status update retry schedule.

use std::time::Duration;

/// The cap of the agent's registration retry interval (docs/recovery-rules.md R13).
pub const REGISTER_RETRY_INTERVAL_MAX: Duration = Duration::from_secs(60);

/// The first retry interval of an unacknowledged status update.
pub const RETRY_INTERVAL_MIN: Duration = Duration::from_secs(10);

/// The largest retry interval of an unacknowledged status update.
pub const RETRY_INTERVAL_MAX: Duration = Duration::from_secs(600);
