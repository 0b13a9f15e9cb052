//! Rule L22 of `docs/task-lifecycle.md`: a checkpoint the agent completed and acted on
//! before a power loss survives it. The evidence is gathered outside the agent by
//! `crate::durability`: what the outside world heard (an update forwarded to the master
//! or acknowledged to the executor, resources reported in a re-registration), and, at
//! each power loss, the simulated disk just before the cut and what the cut left.

use super::Violation;
use crate::observations::Observations;

/// Checks the rule.
pub fn check(observations: &Observations) -> Vec<Violation> {
    observations
        .durability_losses
        .iter()
        .map(|loss| Violation {
            time: loss.time,
            oracle: "durability",
            message: format!("{} (L22)", loss.what),
        })
        .collect()
}
