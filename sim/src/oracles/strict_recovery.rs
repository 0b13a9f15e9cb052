//! Rule: strict recovery of a crash state the filesystem model allows never fails (a
//! failure there is a bug in the checkpoint protocol); only injected corruption may make
//! it fail. Non-strict recovery never fails on corruption.

use super::Violation;
use crate::observations::{AgentOutcome, Observations};
use crate::scenario::Scenario;

/// Checks the rule.
pub fn check(scenario: &Scenario, observations: &Observations) -> Vec<Violation> {
    // docs/recovery-rules.md R46: an agent directory an operator removed under its
    // `latest` link stops recovery, strict or not.
    let expected = scenario.expect.as_ref().is_some_and(|e| e.recovery_fails)
        || observations
            .fault_kinds
            .contains(&crate::scenario::FaultKind::DeleteAgentDir);
    observations
        .agent_exits
        .iter()
        .filter_map(|(time, _, outcome)| match outcome {
            AgentOutcome::Failed(message)
                if !(expected || observations.corruption_injected && scenario.agent.strict) =>
            {
                Some(Violation {
                    time: *time,
                    oracle: "strict_recovery",
                    message: format!("the agent failed without injected corruption: {message}"),
                })
            }
            _ => None,
        })
        .collect()
}
