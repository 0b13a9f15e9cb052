//! Rules L28 and L29 of `docs/task-lifecycle.md`: an unacknowledged status update is sent
//! again with the written back-off (L28), judged from what the
//! masters received (`crate::update_receipts`, recorded in the network seam), never
//! from the agent's log:
//! - L28, not faster: in a stretch of receipts of one update (one uuid) with no
//!   registration of the machine's agents received in between, the k-th gap is at
//!   least the k-th retry interval (the first interval doubled k - 1 times, capped);
//! - L29, not slower: in such a stretch, each gap is at most its retry interval, judged
//!   only where no fault could have lost a copy (a lost copy makes the later gaps
//!   longer) and with one agent process on the machine.

use std::collections::BTreeMap;
use std::time::Duration;

use revenant::domain::intervals::{RETRY_INTERVAL_MAX, RETRY_INTERVAL_MIN};
use revenant::ids::Uuid;

use super::Violation;
use crate::observations::Observations;
use crate::scenario::{FaultKind, Scenario};
use crate::update_receipts::Receipt;

/// What message latency and the agent's timer may take off a retry interval (L28).
pub const EARLY_TOLERANCE: Duration = Duration::from_millis(500);
/// What message latency, the agent's timer and group commit may add to one (L29).
pub const LATE_TOLERANCE: Duration = Duration::from_secs(1);

/// Checks the rules.
pub fn check(scenario: &Scenario, observations: &Observations) -> Vec<Violation> {
    let receipts = &observations.update_receipts;
    let mut by_uuid: BTreeMap<Uuid, Vec<&Receipt>> = BTreeMap::new();
    for receipt in &receipts.updates {
        by_uuid.entry(receipt.uuid).or_default().push(receipt);
    }
    let disturbed = Disturbances::of(scenario, observations.seed);
    // With several agent processes on the machine, a registration of one says nothing
    // of another's back-off: only the floor is judged then.
    let one_agent = scenario.agents <= 1;
    let mut out = Vec::new();
    for (uuid, list) in by_uuid {
        // Stretches between registrations: the agent sends every head again when it
        // (re-)registers, and its back-off starts over (L28).
        let mut position = 0u32;
        let mut lossy = false;
        let Some(last) = list.last() else {
            continue;
        };
        for pair in list.windows(2) {
            let (first, second) = (pair[0], pair[1]);
            let registered_between = receipts
                .registrations
                .iter()
                .any(|at| *at > first.time && *at <= second.time);
            if registered_between {
                position = 0;
                lossy = false;
                continue;
            }
            let gap = second.time.saturating_sub(first.time);
            if gap.is_zero() && disturbed.duplicates_after(first.time) {
                // One frame delivered twice by a `duplicate` fault.
                continue;
            }
            position += 1;
            let due = interval(position);
            lossy |= disturbed.may_lose(first.time, second.time);
            let mut push = |rule: &str, what: String| {
                out.push(Violation {
                    time: second.time,
                    oracle: "update_retries",
                    message: format!(
                        "{} received update {uuid} of task {} ({}) at {:.3} s, {:.3} s after the previous copy, with no registration between: {what} ({rule})",
                        second.master,
                        second.task,
                        second.state,
                        second.time.as_secs_f64(),
                        gap.as_secs_f64(),
                    ),
                })
            };
            // A lost copy only makes later gaps longer, so the floor holds whatever was
            // lost; a copy held back may arrive just before the next one.
            if !disturbed.may_reorder(first.time, second.time) && gap + EARLY_TOLERANCE < due {
                push(
                    "L28",
                    format!(
                        "retry {position} of the stretch was not due before {:.3} s",
                        due.as_secs_f64()
                    ),
                );
            }
            if one_agent && !lossy && gap > due + LATE_TOLERANCE {
                push(
                    "L29",
                    format!(
                        "retry {position} of the stretch was due after {:.3} s",
                        due.as_secs_f64()
                    ),
                );
            }
        }
        // The retry that never came: the last copy was not acknowledged, and the run
        // went on past its retry interval with the agent up and registered.
        let end = Duration::from_secs_f64(scenario.duration_s.max(0.0));
        let due = interval(position + 1);
        let quiet = one_agent
            && !lossy
            && observations.agent_running_at_end
            && !observations.framework_gone(&last.task)
            && !receipts.registrations.iter().any(|at| *at > last.time)
            && !receipts
                .acknowledgements
                .iter()
                .any(|(_, acked)| *acked == uuid)
            && !observations
                .agent_exits
                .iter()
                .any(|(at, _, _)| *at >= last.time)
            && !disturbed.may_lose(last.time, end);
        if quiet && end.saturating_sub(last.time) > due + LATE_TOLERANCE {
            out.push(Violation {
                time: last.time + due,
                oracle: "update_retries",
                message: format!(
                    "{} received update {uuid} of task {} ({}) last at {:.3} s; it was never acknowledged, the agent stayed registered, and the retry due {:.3} s later never came before the end at {:.3} s (L29)",
                    last.master,
                    last.task,
                    last.state,
                    last.time.as_secs_f64(),
                    due.as_secs_f64(),
                    end.as_secs_f64()
                ),
            });
        }
    }
    out
}

/// Whether a partition side names the agent machine (or one of its processes).
fn touches_agent_machine(side: &str) -> bool {
    side.starts_with(crate::observations::AGENT_HOST)
}

/// The back-off of the `position`-th retry (1, 2, ...) after an update was sent
/// (L28): the first interval, doubled at each retry, capped at the largest.
pub fn interval(position: u32) -> Duration {
    let mut due = RETRY_INTERVAL_MIN;
    for _ in 1..position {
        due = (due * 2).min(RETRY_INTERVAL_MAX);
        if due == RETRY_INTERVAL_MAX {
            break;
        }
    }
    due
}

/// The run's faults that can move or take away a receipt.
struct Disturbances {
    /// Faults that hold messages back or cut links, each with its time window.
    windows: Vec<(Duration, Duration)>,
    /// Faults that can lose a message at any later time (drops, agent or master
    /// deaths at a message, disk and process faults): from when.
    losses_from: Option<Duration>,
    /// Faults that hold one message back at any later time: from when.
    held_from: Option<Duration>,
    /// Duplicating faults: from when.
    duplicates_from: Option<Duration>,
}

impl Disturbances {
    fn of(scenario: &Scenario, seed: u64) -> Disturbances {
        let mut out = Disturbances {
            windows: Vec::new(),
            losses_from: None,
            held_from: None,
            duplicates_from: None,
        };
        let earliest = |slot: &mut Option<Duration>, at: Duration| {
            *slot = Some(slot.map_or(at, |s| s.min(at)));
        };
        for fault in crate::schedule::schedule(scenario, seed) {
            let at = Duration::from_secs_f64(fault.at_s.max(0.0));
            let lasting = Duration::from_secs_f64(fault.duration_s.unwrap_or(0.0).max(0.0));
            match fault.kind {
                // A partition that leaves the agent machine's links alone (a framework
                // cut from its master) loses nothing the agent sends or is sent.
                FaultKind::Partition
                    if fault.a.is_some()
                        && fault.b.is_some()
                        && ![&fault.a, &fault.b]
                            .iter()
                            .any(|side| side.as_deref().is_some_and(touches_agent_machine)) => {}
                FaultKind::Partition | FaultKind::Delay => out
                    .windows
                    .push((at, at + lasting + Duration::from_secs(1))),
                FaultKind::DelayMessage => earliest(&mut out.held_from, at),
                FaultKind::Duplicate => earliest(&mut out.duplicates_from, at),
                // Crashes and reboots end in a registration (a new stretch); the
                // others may lose a message without one.
                FaultKind::AgentCrash
                | FaultKind::AgentCrashAtWrite
                | FaultKind::Reboot
                | FaultKind::ExecutorCrash
                | FaultKind::FrameworkCrash
                | FaultKind::WipeFrameworkMeta
                | FaultKind::AgentUnregister
                | FaultKind::ClockJump
                | FaultKind::FrameworkTeardown
                | FaultKind::Forge => {}
                _ => earliest(&mut out.losses_from, at),
            }
        }
        out
    }

    fn overlaps(&self, from: Duration, to: Duration) -> bool {
        self.windows
            .iter()
            .any(|(start, end)| *start <= to && *end >= from)
    }

    /// Whether a receipt between `from` and `to` may have arrived late or early.
    fn may_reorder(&self, from: Duration, to: Duration) -> bool {
        self.overlaps(from, to) || self.held_from.is_some_and(|at| at <= to)
    }

    /// Whether a send between `from` and `to` may have been lost on the way.
    fn may_lose(&self, from: Duration, to: Duration) -> bool {
        self.may_reorder(from, to) || self.losses_from.is_some_and(|at| at <= to)
    }

    fn duplicates_after(&self, at: Duration) -> bool {
        self.duplicates_from.is_some_and(|from| from <= at)
    }
}
