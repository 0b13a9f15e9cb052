//! The pace of the agent's periodic acts (oracle `pacing`), judged from what the world
//! outside the agent saw, never from the agent's log:
//! - docs/recovery-rules.md R56: an agent incarnation asks a connection that said
//!   nothing to re-register (`ReconnectExecutor`, R12) only with
//!   `--executor_reregistration_retry_interval` set, and the `k`-th ask it writes on one
//!   connection is written no sooner than `k` intervals after the incarnation started.
//!   The asks are the frames its end of each local connection wrote
//!   (`crate::shutdown_asks`), the start is the simulated process table's.
//! - docs/design.md D88: an agent incarnation's first disk check comes no sooner than one
//!   `--disk_watch_interval` after its recovery completed, and each later one no sooner
//!   than one interval after the one before. The checks are its queries of the disk's
//!   usage at its filesystem seam, the completion is its boot id put in place
//!   (`meta/boot_id` renamed into place, which recovery does once, as it completes:
//!   `crate::seams::ProcessFs`).
//!
//! No tolerance: the simulated clock is exact, and each bound is a lower one that holds at
//! the agent's decision (its timer fires at or after its deadline, `TICK_MIN` or a
//! turmoil tick later at most); what the world sees comes at or after the decision (an
//! ask reaches the wire when the connection's writer writes it, possibly held behind a
//! group commit, docs/recovery-latency.md P12; a disk check is the query itself, made
//! in the turn that decided it).

use std::collections::BTreeMap;
use std::time::Duration;

use super::Violation;
use crate::history::{History, Pace};
use crate::observations::Observations;

/// What one agent incarnation did that its timers pace.
#[derive(Default)]
struct Incarnation {
    start: Option<Duration>,
    retry: Option<Duration>,
    disk_watch: Option<Duration>,
    complete: Option<Duration>,
    asks: BTreeMap<u64, Vec<Duration>>,
    checks: Vec<Duration>,
}

/// Checks both rules.
pub fn check(observations: &Observations) -> Vec<Violation> {
    check_history(&observations.history)
}

/// Checks both rules on `history`.
pub fn check_history(history: &History) -> Vec<Violation> {
    let mut incarnations: BTreeMap<(u32, u64), Incarnation> = BTreeMap::new();
    for start in &history.agent_starts {
        let entry = incarnations
            .entry((start.agent, start.incarnation))
            .or_default();
        entry.start.get_or_insert(start.time);
    }
    for paced in &history.paced {
        let entry = incarnations
            .entry((paced.agent, paced.incarnation))
            .or_default();
        match paced.act {
            Pace::Timers {
                reregistration_retry,
                disk_watch,
            } => {
                entry.retry = reregistration_retry;
                entry.disk_watch = Some(disk_watch);
            }
            Pace::RecoveryComplete => {
                entry.complete.get_or_insert(paced.time);
            }
            Pace::ReconnectAsk { connection } => {
                entry.asks.entry(connection).or_default().push(paced.time);
            }
            Pace::DiskCheck => entry.checks.push(paced.time),
        }
    }
    let mut out = Vec::new();
    for ((agent, incarnation), seen) in &mut incarnations {
        seen.checks.sort();
        for times in seen.asks.values_mut() {
            times.sort();
        }
        out.extend(asks(*agent, *incarnation, seen));
        out.extend(disk_checks(*agent, *incarnation, seen));
    }
    out.sort_by_key(|v| v.time);
    out
}

fn secs(at: Duration) -> f64 {
    at.as_secs_f64()
}

/// R56 for one incarnation: its first early ask, if any.
fn asks(agent: u32, incarnation: u64, seen: &Incarnation) -> Option<Violation> {
    let start = seen.start?;
    let mut first: Option<Violation> = None;
    for (connection, times) in &seen.asks {
        for (index, at) in times.iter().enumerate() {
            let k = index as u32 + 1;
            let message = match seen.retry {
                None => format!(
                    "agent {agent} (incarnation {incarnation}) asked connection {connection} to reconnect at {:.3}s without --executor_reregistration_retry_interval (R56)",
                    secs(*at)
                ),
                Some(interval) if *at < start + interval * k => format!(
                    "agent {agent} (incarnation {incarnation}, started at {:.3}s) wrote its ask number {k} to reconnect on connection {connection} at {:.3}s: sooner than {k} x the {:.3}s retry interval after its start ({:.3}s) (R56)",
                    secs(start),
                    secs(*at),
                    secs(interval),
                    secs(start + interval * k)
                ),
                Some(_) => continue,
            };
            if first.as_ref().is_none_or(|v| *at < v.time) {
                first = Some(Violation {
                    time: *at,
                    oracle: "pacing",
                    message,
                });
            }
            break;
        }
    }
    first
}

/// D88 for one incarnation: its first early disk check, if any.
fn disk_checks(agent: u32, incarnation: u64, seen: &Incarnation) -> Option<Violation> {
    let interval = seen.disk_watch?;
    let mut previous: Option<(Duration, &str)> =
        seen.complete.map(|at| (at, "its recovery completed"));
    for at in &seen.checks {
        let message = match previous {
            None => format!(
                "agent {agent} (incarnation {incarnation}) checked the disk at {:.3}s before its recovery completed (D88)",
                secs(*at)
            ),
            Some((since, what)) if *at < since + interval => format!(
                "agent {agent} (incarnation {incarnation}) checked the disk at {:.3}s, {:.3}s after {what} at {:.3}s: sooner than the {:.3}s disk watch interval (D88)",
                secs(*at),
                secs(at.saturating_sub(since)),
                secs(since),
                secs(interval)
            ),
            Some(_) => {
                previous = Some((*at, "its previous disk check"));
                continue;
            }
        };
        return Some(Violation {
            time: *at,
            oracle: "pacing",
            message,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{AgentStart, Paced};

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn history(retry: Option<u64>, acts: &[(u64, Pace)]) -> History {
        let mut history = History::default();
        history.agent_starts.push(AgentStart {
            time: at(13_000),
            agent: 1,
            incarnation: 2,
            boot: 1,
            resources_on_disk: None,
            flag_resources: None,
        });
        let paced = |time: u64, act: Pace| Paced {
            time: at(time),
            agent: 1,
            incarnation: 2,
            act,
        };
        history.paced.push(paced(
            13_000,
            Pace::Timers {
                reregistration_retry: retry.map(at),
                disk_watch: at(60_000),
            },
        ));
        history
            .paced
            .extend(acts.iter().map(|(time, act)| paced(*time, *act)));
        history
    }

    const ASK: Pace = Pace::ReconnectAsk { connection: 1 };
    const OTHER: Pace = Pace::ReconnectAsk { connection: 2 };

    #[test]
    fn asks_one_interval_apart_from_the_start_hold() {
        let acts = [(14_000, ASK), (15_000, ASK), (15_000, OTHER), (16_300, ASK)];
        assert!(check_history(&history(Some(1_000), &acts)).is_empty());
    }

    #[test]
    fn an_ask_before_one_interval_or_too_often_fails() {
        let early = check_history(&history(Some(1_000), &[(13_010, ASK)]));
        assert_eq!(early.len(), 1, "{early:?}");
        assert!(early[0].message.contains("(R56)"));
        let often = check_history(&history(Some(1_000), &[(14_000, ASK), (14_010, ASK)]));
        assert_eq!(often.len(), 1, "{often:?}");
        assert_eq!(often[0].time, at(14_010));
        let unasked = check_history(&history(None, &[(20_000, ASK)]));
        assert_eq!(unasked.len(), 1, "{unasked:?}");
    }

    #[test]
    fn disk_checks_are_paced_from_the_recovery_complete() {
        let done = (13_500, Pace::RecoveryComplete);
        let paced = [done, (73_500, Pace::DiskCheck), (133_600, Pace::DiskCheck)];
        assert!(check_history(&history(None, &paced)).is_empty());
        let at_once = check_history(&history(None, &[done, (13_510, Pace::DiskCheck)]));
        assert_eq!(at_once.len(), 1, "{at_once:?}");
        assert!(at_once[0].message.contains("(D88)"));
        let twice = [done, (73_500, Pace::DiskCheck), (73_510, Pace::DiskCheck)];
        assert_eq!(check_history(&history(None, &twice)).len(), 1);
        let before = check_history(&history(None, &[(80_000, Pace::DiskCheck)]));
        assert_eq!(before.len(), 1, "{before:?}");
    }
}
