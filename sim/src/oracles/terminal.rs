//! Rule: no task leaves a terminal state.
//!
//! The framework hears about a task from two sources, and the rule holds for each:
//! - the agent's status update stream (updates with a uuid), delivered in order: once it
//!   carried a terminal state, it never carries a non-terminal one;
//! - the master's own answers (reconciliation, duplicate submissions, lost agents;
//!   updates without a uuid): once the framework has seen a terminal state for a task
//!   from any source, no master answer reports it non-terminal.
//!
//! A master answer may run ahead of the agent's stream (the stream then replays older
//! states in order): Mesos documents that race for reconciliation, and it is not a
//! violation.

use std::collections::BTreeMap;

use revenant::agent::status_updates::is_terminal;

use super::Violation;
use crate::cluster::Observations;

/// Checks the rule.
pub fn check(observations: &Observations) -> Vec<Violation> {
    let mut stream_terminal: BTreeMap<&str, &str> = BTreeMap::new();
    let mut any_terminal: BTreeMap<&str, &str> = BTreeMap::new();
    let mut out = Vec::new();
    for seen in &observations.seen {
        let task = seen.task.as_str();
        let name = seen.state.as_str_name();
        let terminal = is_terminal(seen.state);
        if seen.uuid.is_some() {
            if let Some(first) = stream_terminal.get(task) {
                if !terminal {
                    out.push(Violation {
                        time: seen.time,
                        oracle: "terminal",
                        message: format!("the agent reported task {task} {name} after {first}"),
                    });
                }
            } else if terminal {
                stream_terminal.insert(task, name);
            }
        } else if let Some(first) = any_terminal.get(task) {
            if !terminal {
                out.push(Violation {
                    time: seen.time,
                    oracle: "terminal",
                    message: format!("the master reported task {task} {name} after {first}"),
                });
            }
        }
        if terminal {
            any_terminal.entry(task).or_insert(name);
        }
    }
    out
}
