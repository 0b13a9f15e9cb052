//! Rules L1, L2, L3, L4 and L5 of `docs/task-lifecycle.md`, judged from the updates the
//! frameworks received (the history, not the agent's log):
//! - L1: once a task's stream delivered a terminal update, it delivers nothing
//!   non-terminal;
//! - L2: a task's stream carries one terminal update: after it, only retries of it
//!   (same uuid); a second terminal update, same state or not, is a violation;
//! - L3: no master report takes a task back from a terminal state, whatever source
//!   reported that state;
//! - L4: a master's reconciliation answer may run ahead of the stream (not a violation);
//! - L5: after a master's TASK_LOST with reason AGENT_REMOVED, no update of the task's
//!   stream reaches the framework (the removed agent's messages are refused).

use std::collections::{BTreeMap, BTreeSet};

use revenant::domain::task_state::is_terminal;
use revenant::ids::Uuid;
use revenant::proto::TaskState;

use super::Violation;
use crate::history::Source;
use crate::observations::Observations;

/// The reason the master gives a task it reports lost with its removed agent.
const AGENT_REMOVED: &str = "REASON_AGENT_REMOVED";

/// Checks the rules.
pub fn check(observations: &Observations) -> Vec<Violation> {
    let mut stream_terminal: BTreeMap<&str, (Uuid, TaskState)> = BTreeMap::new();
    let mut any_terminal: BTreeMap<&str, &str> = BTreeMap::new();
    let mut lost_with_agent: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    let mut push = |time, message: String| {
        out.push(Violation {
            time,
            oracle: "terminal",
            message,
        })
    };
    for seen in &observations.history.deliveries {
        let task = seen.task.as_str();
        let name = seen.state.as_str_name();
        let terminal = is_terminal(seen.state);
        match (seen.source, seen.uuid) {
            (Source::Agent, Some(uuid)) => {
                if lost_with_agent.contains(task) {
                    push(
                        seen.time,
                        format!(
                            "the framework received task {task} {name} from agent {} after the master reported it TASK_LOST with its removed agent (L5)",
                            seen.agent_id
                        ),
                    );
                }
                match stream_terminal.get(task) {
                    Some((_, first)) if !terminal => push(
                        seen.time,
                        format!(
                            "the agent reported task {task} {name} after {} (L1)",
                            first.as_str_name()
                        ),
                    ),
                    Some((first_uuid, first)) if *first_uuid != uuid => push(
                        seen.time,
                        format!(
                            "the agent reported task {task} terminal twice: {} then {name} (uuid {uuid}) (L2)",
                            first.as_str_name()
                        ),
                    ),
                    Some(_) => {}
                    None if terminal => {
                        stream_terminal.insert(task, (uuid, seen.state));
                    }
                    None => {}
                }
            }
            _ => {
                if let Some(first) = any_terminal.get(task) {
                    if !terminal {
                        push(
                            seen.time,
                            format!("the master reported task {task} {name} after {first} (L3)"),
                        );
                    }
                }
                if seen.state == TaskState::TaskLost && seen.reason == AGENT_REMOVED {
                    lost_with_agent.insert(task);
                }
            }
        }
        if terminal {
            any_terminal.entry(task).or_insert(name);
        }
    }
    out
}
