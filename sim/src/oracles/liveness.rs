//! Rule (liveness): after the fault phase the cluster converges: every task of the
//! scenario ends in a terminal state that the framework has seen before the run ends. Only a task
//! whose agent rebooted may end LOST without its own terminal update from the agent.
//! Tasks of a framework that is gone for good are exempt: one that tore itself down, whose
//! scheduler left for good, or that the master told it was removed (its failover timeout
//! ran out); nobody is left to hear their end (docs/lifecycle-rules.md rule 12). The
//! teardown and failover oracles check that their executors are gone instead. A task of
//! a framework that is still there and that does not end is still flagged.
//!
//! L24 of `docs/task-lifecycle.md`: a task that is still genuinely running when the
//! run ends has converged too: its framework last heard TASK_RUNNING, an executor
//! process of it is alive on the simulated process table at the end, in the machine's
//! last boot, and the task's command could not have ended yet (the process started
//! less than the command's run time before the end). Judged from the process table and
//! the scenario's commands, never from the agent's log.

use std::collections::BTreeMap;

use revenant::domain::task_state::is_terminal;
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
        crate::observations::tasks_for_oracles(scenario, observations.seed)
            .into_iter()
            .map(|(task, _)| task.task_id)
            .chain(observations.submitted.iter().cloned())
            .collect();
    let still_running = still_running(scenario, observations, end);
    for task in all.iter().filter(|t| !observations.framework_gone(t)) {
        match last.get(task.as_str()) {
            Some(state) if is_terminal(*state) => {}
            Some(TaskState::TaskRunning) if still_running.contains(task.as_str()) => {}
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

/// The tasks still genuinely running at `end` (L24): an executor process of the task
/// alive at the end, started in the machine's last boot, less than the task's command
/// run time (the sum of its `sleep`s) before the end.
fn still_running(
    scenario: &Scenario,
    observations: &Observations,
    end: std::time::Duration,
) -> std::collections::BTreeSet<String> {
    let last_boot = observations
        .history
        .processes
        .iter()
        .map(|p| p.boot)
        .max()
        .unwrap_or(0);
    crate::observations::tasks_for_oracles(scenario, observations.seed)
        .into_iter()
        .filter_map(|(task, _)| {
            let run_time = command_run_time(task.command.as_ref()?.value.as_str());
            let executor = if task.executor_id.is_empty() {
                task.task_id.clone()
            } else {
                task.executor_id.clone()
            };
            observations
                .history
                .processes
                .iter()
                .any(|p| {
                    p.executor_id == executor
                        && p.boot == last_boot
                        && p.ended.is_none()
                        && !p.hung
                        && p.started + run_time > end
                })
                .then_some(task.task_id)
        })
        .collect()
}

/// How long a simulated task command runs: the sum of its `sleep`s (as the simulated
/// task runner reads it, `crate::seams::SimTaskRunner`).
fn command_run_time(command: &str) -> std::time::Duration {
    command
        .split(';')
        // Only a part starting with `sleep` can match: a large task's padding of
        // megabytes is not split into words (docs/recovery-latency.md P39).
        .filter(|part| part.trim_start().starts_with("sleep"))
        .filter_map(
            |part| match part.split_whitespace().collect::<Vec<_>>()[..] {
                ["sleep", seconds] => seconds.parse::<f64>().ok(),
                _ => None,
            },
        )
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(std::time::Duration::from_secs_f64)
        .sum()
}
