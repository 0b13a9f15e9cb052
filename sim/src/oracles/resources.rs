//! Rule: resources recovered equal resources checkpointed (each agent process of the
//! machine its own). Every agent start after the
//! agent checkpointed its reserved resources recovers exactly those (`resources.info` is
//! recovered even after a reboot, seed 000), and a start that recovers nothing after a
//! checkpoint is a loss.

use std::collections::BTreeSet;

use super::Violation;
use crate::cluster::agent_of_host;
use crate::trace::TraceEvent;

/// Checks the rule, for each agent process of the agent machine on its own.
pub fn check(trace: &[TraceEvent]) -> Vec<Violation> {
    let agents: BTreeSet<u32> = trace
        .iter()
        .filter_map(|e| agent_of_host(&e.host))
        .collect();
    let mut out = Vec::new();
    for agent in agents {
        out.extend(check_agent(trace, agent));
    }
    out.sort_by_key(|v| v.time);
    out
}

fn check_agent(trace: &[TraceEvent], agent: u32) -> Vec<Violation> {
    let mut checkpointed: Option<&str> = None;
    let mut recovered_since_start: Option<bool> = None;
    let mut out = Vec::new();
    for event in trace
        .iter()
        .filter(|e| agent_of_host(&e.host) == Some(agent))
    {
        match (event.role.as_str(), event.message.as_str()) {
            ("sim", "agent process starting") => {
                // An incarnation that died before finishing recovery is not judged.
                recovered_since_start = Some(false);
            }
            ("agent", "recovered checkpointed resources") => {
                recovered_since_start = Some(true);
                let got = event.field("resources").unwrap_or_default();
                match checkpointed {
                    Some(expected) if expected != got => out.push(Violation {
                        time: event.time,
                        oracle: "resources",
                        message: format!("recovered resources {got}, checkpointed {expected}"),
                    }),
                    None => out.push(Violation {
                        time: event.time,
                        oracle: "resources",
                        message: format!("recovered resources {got} that were never checkpointed"),
                    }),
                    _ => {}
                }
            }
            ("agent", "recovering state") => {}
            ("agent", "checkpointed resources") => checkpointed = event.field("resources"),
            // Recovery ends when the agent says so: a start that never got that far
            // (it died first) is not judged.
            ("agent", "recovery complete") => {
                if let (Some(false), Some(expected)) = (recovered_since_start, checkpointed) {
                    out.push(Violation {
                        time: event.time,
                        oracle: "resources",
                        message: format!(
                            "recovery completed without the checkpointed resources {expected}"
                        ),
                    });
                }
                recovered_since_start = None;
            }
            _ => {}
        }
    }
    out
}
