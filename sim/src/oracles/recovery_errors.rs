//! Rules R43 and R44 of docs/recovery-rules.md (oracle `recovery_errors`): what each
//! agent incarnation's `/metrics` says of its recovery's errors
//! (`revenant_agent_recovery_errors_total`, taken once its recovery had read the disk:
//! `crate::agent_metrics`) against the damage the simulator made, never the agent's log:
//!
//! - R43: the first incarnation that starts after the simulator appended an
//!   undecodable record to a log (docs/simulator-reach.md rule 14u), in the same boot,
//!   with no operator damage between (the exceptions of R38), and that recovers without
//!   `--strict`, reports at least one error: its recovery reads every log of the latest
//!   agent, and a record that does not decode is counted (R37);
//! - R44: in a run in which the simulator damaged no file and failed no disk operation
//!   (no `corrupt`, `disk_error`, `torn_append` or `rewrite_forked_pid` fault happened,
//!   and no disk fault fired), every incarnation reports 0: the agent's own writes,
//!   crashes and power losses leave only torn tails, which recovery cuts without counting.
//!
//! Both need the answer to be Prometheus text holding the counter: one that is not is
//! reported too. Only runs with one agent process are judged for R43.

use std::time::Duration;

use super::Violation;
use crate::agent_metrics::Report;
use crate::corrupt::Undecodable;
use crate::observations::Observations;
use crate::scenario::{FaultKind, Scenario};

/// The fault kinds that damage files or fail disk operations (R44).
const DAMAGING: [FaultKind; 4] = [
    FaultKind::Corrupt,
    FaultKind::DiskError,
    FaultKind::TornAppend,
    FaultKind::RewriteForkedPid,
];

/// Checks the rules.
pub fn check(
    scenario: &Scenario,
    observations: &Observations,
    injected: &[Undecodable],
    disk_faults_fired: bool,
) -> Vec<Violation> {
    let mut out = Vec::new();
    for report in &observations.agent_metrics {
        if let Err(error) = &report.recovery_errors {
            out.push(Violation {
                time: report.time,
                oracle: "recovery_errors",
                message: format!(
                    "agent {}'s /metrics after recovery cannot be read: {error}",
                    report.agent
                ),
            });
        }
    }
    let undamaged = !disk_faults_fired
        && !observations.corruption_injected
        && !DAMAGING
            .iter()
            .any(|k| observations.fault_kinds.contains(k));
    if undamaged {
        for report in &observations.agent_metrics {
            if let Ok(count) = report.recovery_errors {
                if count != 0.0 {
                    out.push(Violation {
                        time: report.time,
                        oracle: "recovery_errors",
                        message: format!(
                            "agent {}'s /metrics reports {count} recovery errors at {:.3}s, though the simulator damaged no file and failed no disk operation in the run (R44)",
                            report.agent,
                            report.time.as_secs_f64()
                        ),
                    });
                }
            }
        }
    }
    if scenario.agent.strict || scenario.agents > 1 {
        return out;
    }
    for record in injected {
        let Some(start) = super::undecodable_record::first_reader(scenario, observations, record)
        else {
            continue;
        };
        let Some(report) = report_of(observations, start) else {
            continue;
        };
        if report.recovery_errors == Ok(0.0) {
            out.push(Violation {
                time: report.time,
                oracle: "recovery_errors",
                message: format!(
                    "the agent started at {:.3}s recovered without --strict over {}, whose record at byte {} (written at {:.3}s) does not decode, yet its /metrics reports 0 recovery errors (R43)",
                    start.as_secs_f64(),
                    record.path.display(),
                    record.offset,
                    record.time.as_secs_f64()
                ),
            });
        }
    }
    out
}

/// The report of agent 1's incarnation that started at `start`: the first report at or
/// after it, before the next start.
fn report_of(observations: &Observations, start: Duration) -> Option<&Report> {
    let next = observations
        .history
        .agent_starts
        .iter()
        .filter(|s| s.agent == 1)
        .map(|s| s.time)
        .find(|at| *at > start)
        .unwrap_or(Duration::MAX);
    observations
        .agent_metrics
        .iter()
        .find(|r| r.agent == 1 && r.time >= start && r.time < next)
}
