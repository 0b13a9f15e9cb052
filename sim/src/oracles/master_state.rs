//! Rules L25, L26 and L27 of `docs/task-lifecycle.md`: what the leading master reports
//! at the end of the run (its `/state`, taken by `crate::master_reports`) agrees with what
//! the frameworks heard (the history, recorded on the frameworks' side of the wire):
//! - L25: an agent the frameworks heard removed (a master's TASK_LOST with reason
//!   AGENT_REMOVED naming it) is listed, if at all, as removed: never re-admitted under
//!   its old id;
//! - L26: a task whose framework heard a terminal state is not listed in a non-terminal
//!   state;
//! - L27: every task listed was submitted by a framework.
//!
//! Only reports of a master that says it leads are judged; a run that ends with no
//! leader is not judged here (the liveness rules cover it).

use std::collections::{BTreeMap, BTreeSet};

use revenant::agent::status_updates::is_terminal;
use revenant::proto::TaskState;

use super::Violation;
use crate::history::Source;
use crate::observations::Observations;

/// The reason the master gives a task it reports lost with its removed agent.
const AGENT_REMOVED: &str = "REASON_AGENT_REMOVED";

/// Checks the rules.
pub fn check(observations: &Observations) -> Vec<Violation> {
    let mut out = Vec::new();
    let deliveries = &observations.history.deliveries;
    // L25: the agents the frameworks heard removed, with when they first heard it.
    let mut removed: BTreeMap<&str, std::time::Duration> = BTreeMap::new();
    // L26: the tasks whose framework heard a terminal state: the first one heard.
    let mut ended: BTreeMap<&str, (std::time::Duration, TaskState)> = BTreeMap::new();
    for delivery in deliveries {
        if delivery.source == Source::Master
            && delivery.state == TaskState::TaskLost
            && delivery.reason == AGENT_REMOVED
            && !delivery.agent_id.is_empty()
        {
            removed
                .entry(delivery.agent_id.as_str())
                .or_insert(delivery.time);
        }
        if is_terminal(delivery.state) {
            ended
                .entry(delivery.task.as_str())
                .or_insert((delivery.time, delivery.state));
        }
    }
    for (master, (time, report)) in &observations.master_reports {
        if !report.leading {
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
            if agent.phase != "removed" {
                if let Some(heard) = removed.get(agent.id.as_str()) {
                    push(format!(
                        "agent {} ({}) is {}, but the frameworks heard it removed at {:.3} s (L25)",
                        agent.id,
                        agent.address,
                        agent.phase,
                        heard.as_secs_f64()
                    ));
                }
            }
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
