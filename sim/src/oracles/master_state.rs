//! Rules L25, L26 and L27 of `docs/task-lifecycle.md`: what the leading masters report
//! (their `/state`, taken at every tick by `crate::master_reports`) agrees with what the
//! frameworks heard (the history, recorded on the frameworks' side of the wire):
//! - L25: an agent a leading master listed removed is never listed connected or
//!   disconnected again (judged over every tick's report, not only the last);
//! - L26: a task whose framework heard a terminal state is not listed in a non-terminal
//!   state;
//! - L27: every task listed was submitted by a framework.
//!
//! Only reports of a master that says it leads are judged; a run that ends with no
//! leader is not judged here (the liveness rules cover it).

use std::collections::{BTreeMap, BTreeSet};

use revenant::domain::task_state::is_terminal;
use revenant::proto::TaskState;

use super::Violation;
use crate::observations::Observations;
use crate::scenario::Scenario;

/// Checks the rules.
pub fn check(scenario: &Scenario, observations: &Observations) -> Vec<Violation> {
    let end = std::time::Duration::from_secs_f64(scenario.duration_s.max(0.0));
    let mut out = Vec::new();
    let deliveries = &observations.history.deliveries;
    // L26: the tasks whose framework heard a terminal state: the first one heard.
    let mut ended: BTreeMap<&str, (std::time::Duration, TaskState)> = BTreeMap::new();
    for delivery in deliveries {
        if is_terminal(delivery.state) {
            ended
                .entry(delivery.task.as_str())
                .or_insert((delivery.time, delivery.state));
        }
    }
    // L25: once a leading master listed an agent removed, no leading master lists it
    // connected or disconnected again.
    let mut removed: BTreeMap<&str, (std::time::Duration, &str)> = BTreeMap::new();
    for (time, master, agent, phase) in &observations.master_agent_phases {
        if phase == "removed" {
            removed
                .entry(agent.as_str())
                .or_insert((*time, master.as_str()));
        } else if let Some((at, by)) = removed.get(agent.as_str()) {
            out.push(Violation {
                time: *time,
                oracle: "master_state",
                message: format!(
                    "{master} lists agent {agent} {phase} at {:.3} s, but {by} had removed it at {:.3} s: a removed agent was admitted again under its old id (L25)",
                    time.as_secs_f64(),
                    at.as_secs_f64()
                ),
            });
        }
    }
    for (master, (time, report)) in &observations.master_reports {
        // The end of the run: a master's last report from its final second (a master
        // that died earlier said nothing at the end).
        if !report.leading || *time + std::time::Duration::from_secs(1) < end {
            continue;
        }
        let mut push = |message: String| {
            out.push(Violation {
                time: *time,
                oracle: "master_state",
                message: format!("{master} reports at the end: {message}"),
            })
        };
        for agent in &report.agents {
            for task in &agent.tasks {
                let state = TaskState::from_str_name(&task.state).unwrap_or_default();
                if is_terminal(state) {
                    continue;
                }
                if let Some((heard, first)) = ended.get(task.id.as_str()) {
                    push(format!(
                        "task {} is {} on agent {} ({}), but its framework heard it {} at {:.3} s (L26)",
                        task.id,
                        task.state,
                        agent.id,
                        agent.phase,
                        first.as_str_name(),
                        heard.as_secs_f64()
                    ));
                }
            }
        }
        let listed: BTreeSet<&str> = report
            .agents
            .iter()
            .flat_map(|a| a.tasks.iter().map(|t| t.id.as_str()))
            .chain(
                report
                    .completed_frameworks
                    .iter()
                    .flat_map(|f| f.tasks.iter().map(|t| t.id.as_str())),
            )
            .chain(report.orphan_tasks.iter().map(|t| t.id.as_str()))
            .collect();
        for task in listed {
            if !observations.submitted.contains(task) {
                push(format!(
                    "task {task} is listed, but no framework submitted it (L27)"
                ));
            }
        }
    }
    out
}
