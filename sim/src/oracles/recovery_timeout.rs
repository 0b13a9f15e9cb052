//! Rule: an executor whose agent stayed away past `recovery_timeout` has exited (sampled
//! during the run by the driver, with a few seconds of grace for the executor's tick).

use super::Violation;
use crate::observations::Observations;

/// Checks the rule.
pub fn check(observations: &Observations) -> Vec<Violation> {
    observations
        .overstaying_executors
        .iter()
        .map(|(time, executors)| Violation {
            time: *time,
            oracle: "recovery_timeout",
            message: format!("executor(s) {executors} still running after the agent stayed away past recovery_timeout"),
        })
        .collect()
}
