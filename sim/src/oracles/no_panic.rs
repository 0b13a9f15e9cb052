//! Rule L20 of `docs/task-lifecycle.md`: nothing panics: not the agent (strict or not,
//! whatever is on disk), and no other task of any host: a connection's writer, a
//! master, a framework, an executor. The simulator's panic hook records every panic of
//! the run's thread (tokio and turmoil catch a spawned task's panic; the hook sees it
//! first), so a panic in a task nobody joins fails the run too.

use super::Violation;
use crate::observations::{AgentOutcome, Observations};

/// Checks the rule.
pub fn check(observations: &Observations) -> Vec<Violation> {
    let mut out: Vec<Violation> = observations
        .history
        .panics
        .iter()
        .map(|(time, message)| Violation {
            time: *time,
            oracle: "no_panic",
            message: format!("a task panicked: {message}"),
        })
        .collect();
    // An agent's panic is also seen as its outcome (kept for a panic the hook could not
    // attribute to this run, e.g. one raised while the history was not recording).
    if out.is_empty() {
        out.extend(observations.agent_exits.iter().filter_map(
            |(time, _, outcome)| match outcome {
                AgentOutcome::Panicked(message) => Some(Violation {
                    time: *time,
                    oracle: "no_panic",
                    message: format!("the agent panicked: {message}"),
                }),
                _ => None,
            },
        ));
    }
    out
}
