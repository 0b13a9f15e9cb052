//! Rule: nothing panics: not the agent (strict or not, whatever is on disk), not any
//! other host.

use super::Violation;
use crate::cluster::{AgentOutcome, Observations};

/// Checks the rule.
pub fn check(observations: &Observations) -> Vec<Violation> {
    observations
        .agent_exits
        .iter()
        .filter_map(|(time, _, outcome)| match outcome {
            AgentOutcome::Panicked(message) => Some(Violation {
                time: *time,
                oracle: "no_panic",
                message: format!("the agent panicked: {message}"),
            }),
            _ => None,
        })
        .collect()
}
