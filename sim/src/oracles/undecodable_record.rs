//! Rules R38 and R39 of `docs/recovery-rules.md`: what recovery does with a well-framed
//! record that does not decode (injected by a `corrupt` fault with
//! `op = "undecodable_record"` while the agent was down: `crate::corrupt`). Judged on
//! the simulated disk at the end of the run and on the registrations the masters
//! received from the agent machine (`crate::update_receipts`), never on the agent's log:
//! - R38 (non-strict): once an incarnation that started after the record was written,
//!   in the same boot, has sent a registration or re-registration (its recovery is
//!   over), the log no longer holds the record: it was cut;
//! - R39 (strict): the first incarnation that starts after the record was written, in
//!   the same boot, does not register or re-register: recovery stops on it.
//!
//! Only runs with one agent process on the machine are judged, and only records no
//! operator damage could have removed before the next start (a framework's checkpoint
//! wiped, a run directory deleted).

use std::time::Duration;

use super::Violation;
use crate::corrupt::Undecodable;
use crate::fs::Entry;
use crate::observations::Observations;
use crate::scenario::{FaultKind, Scenario};

/// Checks the rules for the records injected in the run.
pub fn check(
    scenario: &Scenario,
    observations: &Observations,
    injected: &[Undecodable],
) -> Vec<Violation> {
    if injected.is_empty() || scenario.agents > 1 {
        return Vec::new();
    }
    let end = Duration::from_secs_f64(scenario.duration_s.max(0.0));
    let mut out = Vec::new();
    for record in injected {
        let Some(start) = first_reader(scenario, observations, record) else {
            continue;
        };
        // The incarnations of that boot: every start until the next reboot.
        let boot_ends = observations
            .reboots
            .iter()
            .copied()
            .find(|at| *at > start)
            .unwrap_or(end + Duration::from_secs(3600));
        // That incarnation ends at the next start (in a swarm, the operator's repair
        // after a stop starts a new agent: rule 14u of docs/simulator-reach.md).
        let next_start = observations
            .history
            .agent_starts
            .iter()
            .map(|s| s.time)
            .find(|at| *at > start)
            .unwrap_or(boot_ends);
        let registered_first = observations
            .update_receipts
            .registrations
            .iter()
            .copied()
            .find(|at| *at > start && *at < next_start.min(boot_ends));
        let registered = observations
            .update_receipts
            .registrations
            .iter()
            .copied()
            .find(|at| *at > start && *at < boot_ends);
        let shown = record.path.display();
        if scenario.agent.strict {
            if let Some(at) = registered_first {
                out.push(Violation {
                    time: at,
                    oracle: "undecodable_record",
                    message: format!(
                        "a master received a registration from the agent machine at {:.3} s, though the agent started at {:.3} s had to recover {shown}, whose record at byte {} does not decode: strict recovery must stop on it (R39)",
                        at.as_secs_f64(),
                        start.as_secs_f64(),
                        record.offset
                    ),
                });
            }
            continue;
        }
        let Some(at) = registered else {
            continue;
        };
        let still_there = match observations.disk_at_end.get(&record.path) {
            Some((Entry::File(data), _)) => {
                let from = record.offset as usize;
                data.get(from..from + record.record.len()) == Some(record.record.as_slice())
            }
            _ => false,
        };
        if still_there {
            out.push(Violation {
                time: at,
                oracle: "undecodable_record",
                message: format!(
                    "{shown} still holds the record written at byte {} at {:.3} s, which does not decode, at the end of the run, though an agent recovered it without --strict and registered at {:.3} s: recovery must cut it (R38)",
                    record.offset,
                    record.time.as_secs_f64(),
                    at.as_secs_f64()
                ),
            });
        }
    }
    out
}

/// The start time of the agent incarnation that must read `record`: the first start
/// after it was written, in the boot whose agent wrote the log (no reboot between), with
/// no operator damage (a framework's checkpoint wiped, a run directory deleted) between
/// the record and that start. `None`: no such start is judged.
pub(crate) fn first_reader(
    scenario: &Scenario,
    observations: &Observations,
    record: &Undecodable,
) -> Option<Duration> {
    // The first start after the record was written, with no reboot in between.
    let starts = &observations.history.agent_starts;
    let first = starts.iter().find(|s| s.time > record.time)?;
    // The boot whose agent wrote the log: that of the last start before the record.
    // A record written while the machine was off after a reboot is read by no
    // recovery (the next start is in a new boot, R1).
    let written_in = starts.iter().rev().find(|s| s.time <= record.time);
    if written_in.is_some_and(|w| w.boot != first.boot) {
        return None;
    }
    let start = first.time;
    if observations
        .reboots
        .iter()
        .any(|at| *at > record.time && *at <= start)
    {
        return None;
    }
    let schedule = crate::schedule::schedule(scenario, observations.seed);
    let removed_meanwhile = schedule.iter().any(|f| {
        matches!(
            f.kind,
            FaultKind::WipeFrameworkMeta | FaultKind::DeleteRunDir
        ) && Duration::from_secs_f64(f.at_s.max(0.0)) > record.time
            && Duration::from_secs_f64(f.at_s.max(0.0)) <= start
    });
    if removed_meanwhile {
        return None;
    }
    Some(start)
}
