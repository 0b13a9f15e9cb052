//! Rule: resources recovered equal resources checkpointed (each agent process of the
//! machine on its own). Every agent start after the
//! agent checkpointed its reserved resources recovers exactly those (`resources.info` is
//! recovered even after a reboot, seed 000), and a start that recovers nothing after a
//! checkpoint is a loss. And once the master holds a view of the agent's checkpointed
//! resources (a dynamic reservation set it), the agent ends the run having checkpointed
//! exactly that view, provided an agent runs at the end: the master re-sends its view
//! whenever the agent re-registers, so a lost CheckpointResources is repaired.

use std::collections::BTreeSet;

use super::Violation;
use crate::cluster::{agent_of_host, Observations};
use crate::trace::TraceEvent;

/// The ids agent process `agent` registered under.
fn ids_of(trace: &[TraceEvent], agent: u32) -> BTreeSet<&str> {
    trace
        .iter()
        .filter(|e| agent_of_host(&e.host) == Some(agent) && e.role == "agent")
        .filter(|e| {
            e.message == "registered with master" || e.message == "re-registered with master"
        })
        .filter_map(|e| e.field("agent"))
        .collect()
}

/// The master's last view of agent process `agent`'s checkpointed resources (time,
/// resources), if it holds one: its view of the id the agent process registered under
/// last. A view of an earlier id died with it: a removed agent's dynamic reservations
/// are not the new agent's, which starts from its `--resources`.
pub fn master_view(trace: &[TraceEvent], agent: u32) -> Option<(std::time::Duration, &str)> {
    let ids = ids_of(trace, agent);
    let last_id = trace
        .iter()
        .rev()
        .filter(|e| agent_of_host(&e.host) == Some(agent) && e.role == "agent")
        .filter(|e| {
            e.message == "registered with master" || e.message == "re-registered with master"
        })
        .find_map(|e| e.field("agent"));
    let ids: BTreeSet<&str> = ids.into_iter().filter(|id| Some(*id) == last_id).collect();
    let view = trace.iter().rev().find(|e| {
        e.role == "master"
            && e.field("agent").is_some_and(|id| ids.contains(id))
            && (e.message.starts_with("reserved resources")
                || e.message.starts_with(
                    "re-sending the master's view of the agent's checkpointed resources",
                ))
    })?;
    // A master that crashed after it took the view, and that no master re-sent since,
    // took the view with it (reservations live in the agent's checkpoint, not in the
    // masters' registry): the agent may have missed it with the master's connection.
    let crashed_since = trace.iter().any(|e| {
        e.time >= view.time
            && e.message == "fault injected"
            && e.field("fault")
                .is_some_and(|f| f.starts_with(&format!("{} crashed", view.host)))
    });
    if crashed_since {
        return None;
    }
    Some((view.time, view.field("resources")?))
}

/// Checks that agent process `agent` ended with the master's view checkpointed.
fn check_master_view(
    trace: &[TraceEvent],
    observations: &Observations,
    agent: u32,
) -> Vec<Violation> {
    let Some((since, view)) = master_view(trace, agent) else {
        return Vec::new();
    };
    if !observations.agent_running_at_end {
        return Vec::new();
    }
    let last = trace
        .iter()
        .rev()
        .filter(|e| agent_of_host(&e.host) == Some(agent) && e.role == "agent")
        .find(|e| e.message.starts_with("checkpointed resources"));
    match last.and_then(|e| e.field("resources")) {
        Some(got) if got == view => Vec::new(),
        got => vec![Violation {
            time: last.map(|e| e.time).unwrap_or(since),
            oracle: "resources",
            message: format!(
                "the agent ended with checkpointed resources {}, the master's view is {view}",
                got.unwrap_or("none")
            ),
        }],
    }
}

/// Checks the rule, for each agent process of the agent machine on its own.
pub fn check(trace: &[TraceEvent], observations: &Observations) -> Vec<Violation> {
    let agents: BTreeSet<u32> = trace
        .iter()
        .filter_map(|e| agent_of_host(&e.host))
        .collect();
    let mut out = Vec::new();
    for agent in agents {
        out.extend(check_agent(trace, observations, agent));
    }
    out.sort_by_key(|v| v.time);
    out
}

fn check_agent(trace: &[TraceEvent], observations: &Observations, agent: u32) -> Vec<Violation> {
    let mut checkpointed: Option<&str> = None;
    let mut recovered_since_start: Option<bool> = None;
    let mut out = check_master_view(trace, observations, agent);
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
