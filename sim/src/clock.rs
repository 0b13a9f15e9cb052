//! The driver's simulated time, for what happens outside any host (`crate::trace`
//! re-exports it), below the fault log the simulated filesystem writes to
//! (docs/design.md D62).

use std::time::Duration;

thread_local! {
    /// The driver's notion of simulated time, for events emitted outside any host.
    pub static DRIVER_TIME: std::cell::Cell<Duration> = const { std::cell::Cell::new(Duration::ZERO) };
}
