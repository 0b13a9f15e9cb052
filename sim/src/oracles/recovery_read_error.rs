//! Rule R23 of `docs/recovery-rules.md`: with strict recovery, an agent incarnation
//! whose recovery the disk failed a read of (a listing, a file read or a `latest` link
//! under `meta/slaves`, or the read of `meta/resources`; the error is not "absent")
//! never registers or re-registers: recovery stops on the error and the agent exits.
//! Going on would register an agent that silently lost part of what the disk holds.
//! Judged from the disk faults the simulated filesystem says it fired
//! (`crate::fault_log`) and from the master's side (which agent address it admitted,
//! when), never from the agent's log. A fault counts when it fired after the
//! incarnation started and before the master first admitted that incarnation (the reads
//! an agent makes before it is admitted are recovery's); the incarnation is over at the
//! agent process's next start.
//!
//! Rule R40 of the same file: without `--strict` the same holds for the listings and
//! `latest` links under `meta/slaves` (what lies below them is unknown, not absent);
//! only a failed read of a file's contents is skipped by non-strict recovery (R41).

use std::path::PathBuf;

use super::Violation;
use crate::decision::Decision;
use crate::fault_log::Fired;
use crate::fs::Op;
use crate::observations::{agent_port, agent_work_dir, Observations, AGENT_HOST};
use crate::scenario::Scenario;
use crate::trace::TraceEvent;

/// Checks the rule, for the faults `fired` in the run.
pub fn check(
    scenario: &Scenario,
    trace: &[TraceEvent],
    observations: &Observations,
    fired: &[Fired],
) -> Vec<Violation> {
    let strict = scenario.agent.strict;
    // The master names an agent's address when it registers it; a re-registration
    // names only the id, so each id is traced back to the address it registered from.
    let is_admission = |e: &TraceEvent| {
        e.role == "master"
            && (e.is(Decision::MasterAgentRegistered) || e.is(Decision::MasterAgentReregistered))
    };
    let mut address_of: std::collections::BTreeMap<&str, &str> = std::collections::BTreeMap::new();
    for event in trace.iter().filter(|e| is_admission(e)) {
        if let (Some(id), Some(address)) = (event.field("agent"), event.field("address")) {
            address_of.entry(id).or_insert(address);
        }
    }
    let one_agent = scenario.agents <= 1;
    let mut out = Vec::new();
    let agents: std::collections::BTreeSet<u32> = observations
        .agent_starts
        .iter()
        .map(|(_, a, _)| *a)
        .collect();
    for agent in agents {
        let work = agent_work_dir(agent);
        let recovery_reads = [work.join("meta/slaves"), work.join("meta/resources")];
        let address = format!("{AGENT_HOST}:{}", agent_port(agent));
        let starts: Vec<_> = observations
            .agent_starts
            .iter()
            .filter(|(_, a, _)| *a == agent)
            .map(|(t, _, _)| *t)
            .collect();
        for (index, start) in starts.iter().enumerate() {
            let next = starts.get(index + 1).copied();
            let in_window = |t: std::time::Duration| t >= *start && next.is_none_or(|n| t < n);
            let Some(admitted) = trace.iter().find(|e| {
                in_window(e.time)
                    && is_admission(e)
                    && match e
                        .field("address")
                        .or_else(|| e.field("agent").and_then(|id| address_of.get(id).copied()))
                    {
                        Some(at) => at == address,
                        // An id never seen registering: only one agent it can be.
                        None => one_agent,
                    }
            }) else {
                continue;
            };
            let failed: Vec<&PathBuf> = fired
                .iter()
                .filter(|f| in_window(f.time) && f.time <= admitted.time)
                .filter(|f| match f.op {
                    Op::ListDir | Op::ReadLink => f.path.starts_with(&recovery_reads[0]),
                    Op::Read => strict && recovery_reads.iter().any(|p| f.path.starts_with(p)),
                    _ => false,
                })
                .map(|f| &f.path)
                .collect();
            if let Some(path) = failed.first() {
                out.push(Violation {
                    time: admitted.time,
                    oracle: "recovery_read_error",
                    message: format!(
                        "agent {agent}'s incarnation started at {:.3}s was admitted by the master ({}) although the disk failed its recovery's read of {} ({})",
                        start.as_secs_f64(),
                        admitted.line(),
                        path.display(),
                        if strict { "R23" } else { "R40: a listing or link, strict or not" }
                    ),
                });
            }
        }
    }
    out
}
