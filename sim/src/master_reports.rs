//! What the masters report at the end of a run: in the run's final second the driver asks
//! every master for its `/state` (through `revenant::observe`, which sends no message and
//! logs nothing, so the run is the same run), and keeps each master's latest answer with
//! its time in the observations. The `master_state` oracle judges them
//! (docs/task-lifecycle.md L25 to L27).

use std::cell::RefCell;
use std::time::Duration;

use crate::observations::Observations;

/// How long before the end of the run the masters start reporting (each reports at its
/// tick, every 250 ms, so every live master reports several times in it).
pub const WINDOW: Duration = Duration::from_secs(1);

/// Called by the driver after each step, at simulated time `now`: in the final
/// [`WINDOW`] of a run of `duration`, asks the masters for their reports and keeps the
/// latest of each.
pub fn after_step(observations: &RefCell<Observations>, now: Duration, duration: Duration) {
    if now + WINDOW < duration {
        return;
    }
    if !revenant::observe::master_states_wanted() {
        revenant::observe::want_master_states(true);
        return;
    }
    let reports = revenant::observe::take_master_states();
    if reports.is_empty() {
        return;
    }
    let mut observations = observations.borrow_mut();
    for (master, state) in reports {
        observations.master_reports.insert(master, (now, state));
    }
}
