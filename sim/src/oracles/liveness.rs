//! Rule (liveness): after the fault phase the cluster converges: every task of the
//! scenario ends in a terminal state that the framework has seen before the run ends. Only a task
//! whose agent rebooted may end LOST without its own terminal update from the agent.
//! Tasks of a framework that is gone for good are exempt: one that tore itself down, whose
//! scheduler left for good, or that the master told it was removed (its failover timeout
//! ran out); nobody is left to hear their end (docs/lifecycle-rules.md rule 12). The
//! teardown and failover oracles check that their executors are gone instead. A task of
//! a framework that is still there and that does not end is still flagged.

use std::collections::BTreeMap;

use revenant::agent::status_updates::is_terminal;
use revenant::proto::TaskState;

use super::Violation;
use crate::observations::Observations;
use crate::scenario::Scenario;

/// Checks the rule.
pub fn check(scenario: &Scenario, observations: &Observations) -> Vec<Violation> {
    if scenario
        .expect
        .as_ref()
        .is_some_and(|e| e.agent_exits == Some(true))
    {
        // The agent exits on purpose (cleanup, strict failure): nothing converges.
        return Vec::new();
    }
    // The framework knows a task's fate once it has seen a terminal state for it, from
    // the agent's stream or from the master; a stale stream update arriving after a
    // master's answer (see the terminal oracle) does not undo that.
    let mut last: BTreeMap<&str, TaskState> = BTreeMap::new();
    for seen in &observations.seen {
        let known_terminal = last
            .get(seen.task.as_str())
            .is_some_and(|s| is_terminal(*s));
        if !known_terminal {
            last.insert(seen.task.as_str(), seen.state);
        }
    }
    let end = std::time::Duration::from_secs_f64(scenario.duration_s);
    let mut out = Vec::new();
    // Every task of the scenario counts, submitted or not: a task the framework never
    // managed to submit is a liveness failure too.
    let all: std::collections::BTreeSet<String> =
        crate::observations::tasks_for(scenario, observations.seed)
            .into_iter()
            .map(|(task, _)| task.task_id)
            .chain(observations.submitted.iter().cloned())
            .collect();
    for task in all.iter().filter(|t| !observations.framework_gone(t)) {
        match last.get(task.as_str()) {
            Some(state) if is_terminal(*state) => {}
            Some(state) => out.push(Violation {
                time: end,
                oracle: "liveness",
                message: format!(
                    "task {task} ended the run in {} (not terminal)",
                    state.as_str_name()
                ),
            }),
            None => out.push(Violation {
                time: end,
                oracle: "liveness",
                message: format!("task {task} was never heard of"),
            }),
        }
    }
    out
}
