//! Rule L19 of `docs/task-lifecycle.md`: resources recovered equal resources
//! checkpointed, each agent process of the machine on its own, where "checkpointed"
//! means what `resources.info` held on the simulated disk (read by the simulator, not
//! taken from the agent's log) when the agent start began: every start that completes
//! recovery recovers exactly that (`resources.info` is recovered even after a reboot),
//! and a start that recovers nothing while the disk held resources is a loss. So a
//! death after the new file was renamed into place (a legal state) is judged by what
//! the disk then holds, and a death before the rename by the old file.
//!
//! And once the master holds a view of the agent's checkpointed resources (a dynamic
//! reservation set it), the agent's disk ends the run holding exactly that view,
//! provided an agent runs at the end: the master re-sends its view whenever the agent
//! re-registers, so a lost CheckpointResources is repaired.
//!
//! Without `--strict` (docs/recovery-rules.md R41), a start whose recovery's read of
//! `resources.info` the disk failed (a fault the simulated filesystem says it fired on
//! that file, `crate::fault_log`, between the start and its end of recovery) may
//! complete without the checkpointed resources: non-strict recovery counts the error
//! and goes on. Every other start is judged as above, and resources such a start does
//! recover must still equal the disk's.

use std::collections::BTreeSet;
use std::time::Duration;

use super::Violation;
use crate::decision::Decision;
use crate::fault_log::Fired;
use crate::fs_op::Op;
use crate::observations::{agent_of_host, agent_work_dir, Observations};
use crate::trace::TraceEvent;

/// The ids agent process `agent` registered under.
fn ids_of(trace: &[TraceEvent], agent: u32) -> BTreeSet<&str> {
    trace
        .iter()
        .filter(|e| agent_of_host(&e.host) == Some(agent))
        .filter(|e| e.is(Decision::RegisteredWithMaster) || e.is(Decision::ReregisteredWithMaster))
        .filter_map(|e| e.field("agent"))
        .collect()
}

/// The master's last view of agent process `agent`'s checkpointed resources (time,
/// resources), if it holds one: its view of the id the agent process registered under
/// last. A view of an earlier id died with it: a removed agent's dynamic reservations
/// are not the new agent's, which starts from its `--resources`.
pub fn master_view(trace: &[TraceEvent], agent: u32) -> Option<(Duration, &str)> {
    let ids = ids_of(trace, agent);
    let last_id = trace
        .iter()
        .rev()
        .filter(|e| agent_of_host(&e.host) == Some(agent))
        .filter(|e| e.is(Decision::RegisteredWithMaster) || e.is(Decision::ReregisteredWithMaster))
        .find_map(|e| e.field("agent"));
    let ids: BTreeSet<&str> = ids.into_iter().filter(|id| Some(*id) == last_id).collect();
    let view = trace.iter().rev().find(|e| {
        (e.is(Decision::MasterReservedResources) || e.is(Decision::MasterResentResources))
            && e.field("agent").is_some_and(|id| ids.contains(id))
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

/// Checks that agent process `agent`'s disk ended with the master's view.
fn check_master_view(
    trace: &[TraceEvent],
    observations: &Observations,
    agent: u32,
    end: Duration,
) -> Vec<Violation> {
    let Some((_, view)) = master_view(trace, agent) else {
        return Vec::new();
    };
    if !observations.agent_running_at_end {
        return Vec::new();
    }
    let on_disk = observations
        .history
        .final_resources
        .get(&agent)
        .cloned()
        .flatten()
        .unwrap_or_default();
    if on_disk == view {
        return Vec::new();
    }
    vec![Violation {
        time: end,
        oracle: "resources",
        message: format!(
            "the agent's disk ended with checkpointed resources {}, the master's view is {view}",
            if on_disk.is_empty() { "none" } else { &on_disk }
        ),
    }]
}

/// Checks the rule, for each agent process of the agent machine on its own; `strict`
/// is the agent's `--strict`, `fired` the disk faults that fired in the run.
pub fn check(
    trace: &[TraceEvent],
    observations: &Observations,
    strict: bool,
    fired: &[Fired],
) -> Vec<Violation> {
    let agents: BTreeSet<u32> = observations
        .history
        .agent_starts
        .iter()
        .map(|s| s.agent)
        .collect();
    let end = trace.last().map(|e| e.time).unwrap_or_default();
    let mut out = Vec::new();
    for agent in agents {
        out.extend(check_master_view(trace, observations, agent, end));
        // R41: the reads of this agent's resources.info the disk failed, when.
        let resources_info = agent_work_dir(agent).join("meta/resources/resources.info");
        let unreadable: Vec<Duration> = fired
            .iter()
            .filter(|f| !strict && f.op == Op::Read && f.path == resources_info)
            .map(|f| f.time)
            .collect();
        out.extend(check_agent(trace, observations, agent, &unreadable));
    }
    out.sort_by_key(|v| v.time);
    out
}

/// `unreadable`: when non-strict recovery's reads of `resources.info` failed (R41).
fn check_agent(
    trace: &[TraceEvent],
    observations: &Observations,
    agent: u32,
    unreadable: &[Duration],
) -> Vec<Violation> {
    let starts: Vec<&crate::history::AgentStart> = observations
        .history
        .agent_starts
        .iter()
        .filter(|s| s.agent == agent)
        .collect();
    let mut out = Vec::new();
    for (index, start) in starts.iter().enumerate() {
        let next = starts.get(index + 1).map(|s| s.time);
        let mine = trace.iter().filter(|e| {
            agent_of_host(&e.host) == Some(agent)
                && e.time >= start.time
                && next.is_none_or(|n| e.time < n)
        });
        let expected = start.resources_on_disk.clone().filter(|r| !r.is_empty());
        let mut recovered: Option<&str> = None;
        for event in mine {
            if event.is(Decision::RecoveredCheckpointedResources) {
                let got = event.field("resources").unwrap_or_default();
                recovered = Some(got);
                match &expected {
                    Some(expected) if expected != got => out.push(Violation {
                        time: event.time,
                        oracle: "resources",
                        message: format!(
                            "recovered resources {got}, the disk held {expected} at the start"
                        ),
                    }),
                    None => out.push(Violation {
                        time: event.time,
                        oracle: "resources",
                        message: format!(
                            "recovered resources {got} that the disk did not hold at the start"
                        ),
                    }),
                    _ => {}
                }
            }
            // Recovery ends when the agent says so: a start that never got that far
            // (it died first) is not judged.
            if event.is(Decision::RecoveryComplete) {
                let skipped = unreadable
                    .iter()
                    .any(|at| *at >= start.time && *at <= event.time);
                if let (None, Some(expected), false) = (recovered, &expected, skipped) {
                    out.push(Violation {
                        time: event.time,
                        oracle: "resources",
                        message: format!(
                            "{}: recovery completed without the checkpointed resources {expected} the disk held",
                            crate::observations::agent_trace_host(agent)
                        ),
                    });
                }
                break;
            }
        }
    }
    out
}
