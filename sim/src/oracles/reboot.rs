//! Rule: after a reboot no executor of the old boot is reconnected and the agent does
//! not recover its old agent state (seed 000: a changed boot id means the agent state is
//! not recovered); it registers as a new agent. The old boot's tasks must end in a
//! terminal state the framework sees (checked by the liveness oracle).

use std::collections::BTreeSet;

use super::Violation;
use crate::cluster::{agent_of_host, Observations};
use crate::trace::TraceEvent;

/// Checks the rule, for each agent process of the machine (a reboot stops them all).
pub fn check(trace: &[TraceEvent], observations: &Observations) -> Vec<Violation> {
    let mut out = Vec::new();
    if observations.reboots.is_empty() {
        return out;
    }
    let agents: BTreeSet<u32> = observations
        .agent_starts
        .iter()
        .map(|(_, agent, _)| *agent)
        .collect();
    // The first incarnation of each agent after each reboot must not recover the old
    // agent.
    for reboot in &observations.reboots {
        for agent in &agents {
            let mut starts = observations
                .agent_starts
                .iter()
                .filter(|(_, index, _)| index == agent)
                .map(|(t, _, _)| *t);
            let Some(start) = starts.find(|t| t > reboot) else {
                continue;
            };
            let next_reboot = observations.reboots.iter().find(|r| **r > start).copied();
            let next_start = starts.find(|t| *t > start);
            for event in trace {
                if event.time < start
                    || next_start.is_some_and(|n| event.time >= n)
                    || next_reboot.is_some_and(|n| event.time >= n)
                {
                    continue;
                }
                if agent_of_host(&event.host) == Some(*agent)
                    && event.role == "agent"
                    && (event.message == "recovered agent"
                        || event.message.starts_with("executor alive"))
                {
                    out.push(Violation {
                        time: event.time,
                        oracle: "reboot",
                        message: format!(
                            "after the reboot at {:.1}s the agent {}",
                            reboot.as_secs_f64(),
                            event.line()
                        ),
                    });
                }
            }
        }
    }
    out
}
