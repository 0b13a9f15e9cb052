//! Rule (docs/lifecycle-rules.md rule 10, "nothing left behind"): when the run ends, after
//! the liveness phase, with an agent running, no executor process is alive whose every
//! task has ended as far as its framework knows. An executor left with nothing to run
//! (its task finished, failed or was killed, or it never registered) must be gone:
//! destroyed by the agent or exited on its own. Judged from the simulated process table
//! (executors alive at the end) and what the framework heard, not from the agent's log.
//! Tasks of torn-down frameworks are left to the teardown oracle.

use std::collections::BTreeMap;

use revenant::agent::status_updates::is_terminal;
use revenant::proto::TaskState;

use super::Violation;
use crate::cluster::Observations;
use crate::scenario::Scenario;

/// Checks the rule.
pub fn check(scenario: &Scenario, observations: &Observations) -> Vec<Violation> {
    if !observations.agent_running_at_end
        || scenario
            .expect
            .as_ref()
            .is_some_and(|e| e.agent_exits == Some(true))
    {
        return Vec::new();
    }
    // The first terminal state the framework saw for each task (later stale updates do
    // not undo it; see the liveness oracle).
    let mut last: BTreeMap<&str, TaskState> = BTreeMap::new();
    for seen in &observations.seen {
        if !last
            .get(seen.task.as_str())
            .is_some_and(|s| is_terminal(*s))
        {
            last.insert(seen.task.as_str(), seen.state);
        }
    }
    let end = std::time::Duration::from_secs_f64(scenario.duration_s);
    let mut out = Vec::new();
    // Command executors are named after their task.
    for executor in &observations.live_executors_at_end {
        if observations.framework_gone(executor) {
            continue;
        }
        if let Some(state) = last.get(executor.as_str()).filter(|s| is_terminal(**s)) {
            out.push(Violation {
                time: end,
                oracle: "left_behind",
                message: format!(
                    "executor {executor} is alive at the end though its task ended {}",
                    state.as_str_name()
                ),
            });
        }
    }
    out
}
