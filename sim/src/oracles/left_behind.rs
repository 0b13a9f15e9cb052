//! Rule (docs/lifecycle-rules.md rule 10, "nothing left behind"): when the run ends, after
//! the liveness phase, with an agent running, no executor process is alive whose every
//! task has ended as far as its framework knows. An executor left with nothing to run
//! (its task finished, failed or was killed, or it never registered) must be gone:
//! destroyed by the agent or exited on its own. Judged from the simulated process table
//! (executors alive at the end) and what the framework heard, not from the agent's log.
//! Tasks of torn-down frameworks are left to the teardown oracle.

use std::collections::BTreeMap;

use revenant::domain::task_state::is_terminal;
use revenant::proto::TaskState;

use super::Violation;
use crate::observations::Observations;
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
    // The tasks of each executor id: those that named it, or the one a command executor
    // is named after (docs/lifecycle-rules.md rule 14).
    let mut tasks_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (task, executor) in crate::observations::executors_of_tasks(scenario, observations.seed) {
        tasks_of.entry(executor).or_default().push(task);
    }
    for executor in &observations.live_executors_at_end {
        let Some(tasks) = tasks_of.get(executor) else {
            continue;
        };
        // Tasks of a framework gone for good (docs/lifecycle-rules.md rule 12) are not
        // judged here: the failover oracle judges their executors.
        if tasks.iter().any(|t| observations.framework_gone(t)) {
            continue;
        }
        let ended: Vec<String> = tasks
            .iter()
            .filter_map(|t| {
                last.get(t.as_str())
                    .filter(|s| is_terminal(**s))
                    .map(|s| format!("{t} {}", s.as_str_name()))
            })
            .collect();
        if ended.len() == tasks.len() {
            out.push(Violation {
                time: end,
                oracle: "left_behind",
                message: format!(
                    "executor {executor} is alive at the end though its task(s) ended: {}",
                    ended.join(", ")
                ),
            });
        }
    }
    out
}
