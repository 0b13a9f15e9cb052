//! Rule: no task leaves a terminal state. Once the framework has seen a terminal state
//! for a task, every later update it sees for that task is terminal too (retries of the
//! same terminal update are fine; a RUNNING after FINISHED is not).

use std::collections::BTreeMap;

use revenant::agent::status_updates::is_terminal;

use super::Violation;
use crate::cluster::Observations;

/// Checks the rule.
pub fn check(observations: &Observations) -> Vec<Violation> {
    let mut terminal_at: BTreeMap<&str, &str> = BTreeMap::new();
    let mut out = Vec::new();
    for seen in &observations.seen {
        match terminal_at.get(seen.task.as_str()) {
            Some(first) if !is_terminal(seen.state) => {
                out.push(Violation {
                    time: seen.time,
                    oracle: "terminal",
                    message: format!("task {} was reported {} after {}", seen.task, seen.state.as_str_name(), first),
                });
            }
            Some(_) => {}
            None if is_terminal(seen.state) => {
                terminal_at.insert(seen.task.as_str(), seen.state.as_str_name());
            }
            None => {}
        }
    }
    out
}
