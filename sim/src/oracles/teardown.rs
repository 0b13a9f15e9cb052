//! Rule: a framework that was torn down is shut down on the agent. Once the master has
//! confirmed a teardown (the scheduler heard FrameworkRemoved), no executor of the
//! framework's tasks may still be alive when the run ends, provided an agent runs then
//! (an agent that stays down cannot be told; its executors give up after
//! `recovery_timeout`, which the recovery_timeout oracle checks). The agent is told at
//! once if it is connected, and when it re-registers otherwise; it asks each executor to
//! shut down and kills it after the grace period.

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
    let end = std::time::Duration::from_secs_f64(scenario.duration_s);
    let mut out = Vec::new();
    let mut reported = std::collections::BTreeSet::new();
    for (task, _) in crate::observations::tasks_for_oracles(scenario, observations.seed) {
        let framework = crate::observations::framework_of(scenario, &task.task_id);
        if !observations.removed_frameworks.contains(&framework) {
            continue;
        }
        // The executor the framework named, or a command executor named after the task.
        let executor = if task.executor_id.is_empty() {
            &task.task_id
        } else {
            &task.executor_id
        };
        if observations.live_executors_at_end.contains(executor)
            && reported.insert(executor.clone())
        {
            out.push(Violation {
                time: end,
                oracle: "teardown",
                message: format!(
                    "executor {executor} of framework {framework}, torn down at {:?}, is still alive at the end",
                    observations.torn_down.get(&framework).copied().unwrap_or_default()
                ),
            });
        }
    }
    out
}
