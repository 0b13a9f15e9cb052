//! Rule L18 of `docs/task-lifecycle.md`: after a reboot, no incarnation of an agent
//! before the next reboot recovers the old agent. Every incarnation counts, not only the
//! first: an agent stopped before its first registration after the reboot must not
//! recover the pre-reboot agent at its next start. Judged two ways:
//! - from the master's side: no agent id the master admitted before the reboot is
//!   admitted again (registered or re-registered) after it;
//! - from the agent's decisions: no incarnation after the reboot recovers an agent id
//!   of before the reboot (recovering the new boot's own agent after a crash is
//!   right). An old executor adopted is L15 (the history oracle).
//!
//! The old boot's tasks must end in a terminal state the framework sees (L16, the
//! liveness oracle).

use std::collections::BTreeSet;

use super::Violation;
use crate::decision::Decision;
use crate::observations::{agent_of_host, Observations};
use crate::trace::TraceEvent;

/// Checks the rule, for each agent process of the machine (a reboot stops them all).
pub fn check(trace: &[TraceEvent], observations: &Observations) -> Vec<Violation> {
    let mut out = Vec::new();
    for (index, reboot) in observations.reboots.iter().enumerate() {
        let next_reboot = observations.reboots.get(index + 1).copied();
        // The first agent start after the reboot: registrations the master logs from
        // then on come from the new boot.
        let Some(first_start) = observations
            .agent_starts
            .iter()
            .map(|(t, _, _)| *t)
            .find(|t| t > reboot)
        else {
            continue;
        };
        let in_window =
            |e: &&TraceEvent| e.time >= first_start && next_reboot.is_none_or(|n| e.time < n);
        let admitted = |e: &&TraceEvent| {
            e.role == "master"
                && (e.is(Decision::MasterAgentRegistered)
                    || e.is(Decision::MasterAgentReregistered))
        };
        let before: BTreeSet<&str> = trace
            .iter()
            .filter(|e| e.time < *reboot)
            .filter(admitted)
            .filter_map(|e| e.field("agent"))
            .collect();
        let mut reported = BTreeSet::new();
        for event in trace.iter().filter(in_window).filter(admitted) {
            let Some(id) = event.field("agent") else {
                continue;
            };
            if before.contains(id) && reported.insert(id) {
                out.push(Violation {
                    time: event.time,
                    oracle: "reboot",
                    message: format!(
                        "after the reboot at {:.1}s the master admitted the pre-reboot agent {id} again (L18)",
                        reboot.as_secs_f64()
                    ),
                });
            }
        }
        // The agent's own decision: an incarnation recovered a pre-reboot agent id.
        let old_ids: BTreeSet<&str> = trace
            .iter()
            .filter(|e| e.time < *reboot)
            .filter(|e| {
                e.is(Decision::RegisteredWithMaster)
                    || e.is(Decision::ReregisteredWithMaster)
                    || e.is(Decision::RecoveredAgent)
            })
            .filter_map(|e| e.field("agent"))
            .chain(before.iter().copied())
            .collect();
        for event in trace.iter().filter(in_window) {
            if agent_of_host(&event.host).is_some()
                && event.is(Decision::RecoveredAgent)
                && event.field("agent").is_some_and(|id| old_ids.contains(id))
            {
                out.push(Violation {
                    time: event.time,
                    oracle: "reboot",
                    message: format!(
                        "after the reboot at {:.1}s the agent {} (L18)",
                        reboot.as_secs_f64(),
                        event.line()
                    ),
                });
            }
        }
    }
    out
}
