//! Rules L30 to L33 of `docs/task-lifecycle.md`: a framework's reconciliation request is
//! answered with what the master knows, within a bound. Judged from what the frameworks
//! and masters were handed on the wire and from each master's `/state` taps
//! (`crate::reconcile_watch`), never from the master's log:
//! - L30: an answer names a state the answering master listed for the task between the
//!   request's arrival and the answer (or a state the task's stream delivered to the
//!   framework meanwhile, a change between two taps); TASK_LOST only for a task it did
//!   not list;
//! - L31: a task the master listed throughout is answered within [`BOUND`];
//! - L32: a task it did not list is answered TASK_LOST within [`BOUND`] once the
//!   master has led for `agent_reregister_timeout` or awaits no agent, and not answered
//!   before that while an agent it awaits could still bring the task back;
//! - L33: no answer without a request (a reconciliation naming the task or none, or a
//!   submission of the task).
//!
//! The bounds (L31, L32) are judged only where nothing could have lost or held the
//! answer or the request: no fault but the agent machine's own around it, one master
//! leading throughout, the framework's scheduler connected to it throughout.

use std::collections::BTreeSet;
use std::time::Duration;

use super::Violation;
use crate::observations::Observations;
use crate::reconcile_watch::{Answer, Knowledge, Record, Request};
use crate::scenario::{FaultKind, Scenario};

/// How long after a request's arrival its answer may reach the framework (L31, L32):
/// the master answers as it handles the request; this covers message latency.
pub const BOUND: Duration = Duration::from_secs(1);
/// How far the taps (one per master tick, every 250 ms) may lag the master's state.
const TAP_LAG: Duration = Duration::from_millis(300);
/// The slack around the re-registration timeout since the election (L32): the taps
/// place the election within a tick.
const ELECTION_SLACK: Duration = Duration::from_secs(1);

/// Checks the rules.
pub fn check(scenario: &Scenario, observations: &Observations) -> Vec<Violation> {
    let record = &observations.reconciliations;
    if record.requests.is_empty() && record.answers.is_empty() {
        return Vec::new();
    }
    let quiet = Quiet::of(scenario, observations.seed);
    let timeout = Duration::from_secs_f64(scenario.master.agent_reregister_timeout_s.max(0.0));
    let mut out = Vec::new();
    for answer in &record.answers {
        judge_answer(record, observations, answer, &mut out);
    }
    for request in record.requests.iter().filter(|r| !r.submission) {
        if quiet.around(request.time) {
            let registrations = &observations.update_receipts.registrations;
            judge_bound(record, request, timeout, registrations, &mut out);
        }
    }
    out
}

/// The requests from the answer's framework at its master that name its task (or none),
/// received at or before the answer.
fn asked<'a>(record: &'a Record, answer: &'a Answer) -> impl Iterator<Item = &'a Request> + 'a {
    record.requests.iter().filter(move |r| {
        r.master == answer.master
            && r.framework == answer.framework
            && r.time <= answer.time
            && ((r.tasks.is_empty() && !r.submission) || r.tasks.contains(&answer.task))
    })
}

/// The master's knowledge entries in force at some time in `[from, to]`.
fn during<'a>(
    record: &'a Record,
    master: &str,
    from: Duration,
    to: Duration,
) -> &'a [(Duration, Knowledge)] {
    let Some(list) = record.knowledge.get(master) else {
        return &[];
    };
    let start = list
        .partition_point(|(at, _)| *at <= from)
        .saturating_sub(1);
    let end = list.partition_point(|(at, _)| *at <= to);
    &list[start.min(end)..end]
}

fn judge_answer(
    record: &Record,
    observations: &Observations,
    answer: &Answer,
    out: &mut Vec<Violation>,
) {
    let requests: Vec<&Request> = asked(record, answer).collect();
    let Some(latest) = requests.last() else {
        out.push(Violation {
            time: answer.time,
            oracle: "reconciliation",
            message: format!(
                "framework {} heard {} for task {} from {} at {:.3} s as a reconciliation answer, but never asked {} about it (L33)",
                answer.framework,
                answer.state,
                answer.task,
                answer.master,
                answer.time.as_secs_f64(),
                answer.master
            ),
        });
        return;
    };
    // The earliest request the answer may be for: every one of the last few seconds
    // (an answer may come late behind a held message), else the latest.
    let since = requests
        .iter()
        .map(|r| r.time)
        .find(|t| *t + Duration::from_secs(5) >= answer.time)
        .unwrap_or(latest.time);
    let entries = during(record, &answer.master, since, answer.time + TAP_LAG);
    if entries.is_empty() {
        return;
    }
    let key = (answer.framework.clone(), answer.task.clone());
    let mut listed: BTreeSet<&str> = BTreeSet::new();
    let mut unlisted = false;
    for (_, knowledge) in entries {
        match knowledge.tasks.get(&key) {
            Some(states) => listed.extend(states.iter().map(String::as_str)),
            None => unlisted = true,
        }
    }
    if unlisted || listed.contains(answer.state.as_str()) {
        return;
    }
    // A change between two taps: a state the task's stream delivered meanwhile.
    let streamed = observations.history.deliveries.iter().any(|d| {
        d.uuid.is_some()
            && d.task == answer.task
            && d.state.as_str_name() == answer.state
            && d.time + Duration::from_secs(1) >= since
            && d.time <= answer.time
    });
    if streamed {
        return;
    }
    out.push(Violation {
        time: answer.time,
        oracle: "reconciliation",
        message: format!(
            "framework {} heard {} for task {} from {} at {:.3} s as a reconciliation answer, but {} listed the task only as {:?} from the request at {:.3} s to the answer (L30)",
            answer.framework,
            answer.state,
            answer.task,
            answer.master,
            answer.time.as_secs_f64(),
            answer.master,
            listed,
            since.as_secs_f64()
        ),
    });
}

/// When the master's current leadership began, as its taps show it: the first entry of
/// the run of leading entries that holds `at` (None when it does not lead at `at`).
fn elected(list: &[(Duration, Knowledge)], at: Duration) -> Option<Duration> {
    let index = list.partition_point(|(t, _)| *t <= at).checked_sub(1)?;
    if !list[index].1.leading {
        return None;
    }
    let mut first = index;
    while first > 0 && list[first - 1].1.leading {
        first -= 1;
    }
    Some(list[first].0)
}

/// The agents the master awaits at `at`: listed disconnected, and never listed connected
/// since `since` (its election).
fn awaited(list: &[(Duration, Knowledge)], since: Duration, at: Duration) -> BTreeSet<String> {
    let mut heard: BTreeSet<&str> = BTreeSet::new();
    let mut now: Option<&Knowledge> = None;
    for (t, knowledge) in list {
        if *t > at {
            break;
        }
        now = Some(knowledge);
        if *t >= since {
            heard.extend(
                knowledge
                    .agents
                    .iter()
                    .filter(|(_, phase)| phase.as_str() != "disconnected")
                    .map(|(id, _)| id.as_str()),
            );
        }
    }
    now.map(|k| {
        k.agents
            .iter()
            .filter(|(id, phase)| phase.as_str() == "disconnected" && !heard.contains(id.as_str()))
            .map(|(id, _)| id.clone())
            .collect()
    })
    .unwrap_or_default()
}

fn judge_bound(
    record: &Record,
    request: &Request,
    timeout: Duration,
    registrations: &[Duration],
    out: &mut Vec<Violation>,
) {
    let Some(list) = record.knowledge.get(&request.master) else {
        return;
    };
    let (from, to) = (request.time, request.time + BOUND);
    let entries = during(record, &request.master, from.saturating_sub(TAP_LAG), to);
    // One leadership throughout, the framework connected throughout.
    let steady = !entries.is_empty()
        && entries
            .iter()
            .all(|(_, k)| k.leading && k.connected_frameworks.contains(&request.framework));
    let Some(since) = elected(list, from).filter(|_| steady) else {
        return;
    };
    if elected(list, to) != Some(since) {
        return;
    }
    let answers: Vec<&Answer> = record
        .answers
        .iter()
        .filter(|a| {
            a.master == request.master
                && a.framework == request.framework
                && a.time >= from
                && a.time <= to
        })
        .collect();
    let listed_throughout = |framework: &str, task: &str| {
        let key = (framework.to_owned(), task.to_owned());
        entries.iter().all(|(_, k)| k.tasks.contains_key(&key))
    };
    let unlisted_throughout = |framework: &str, task: &str| {
        let key = (framework.to_owned(), task.to_owned());
        entries
            .iter()
            .all(|(_, k)| !k.tasks.contains_key(&key) && !k.pending)
    };
    let named: Vec<String> = if request.tasks.is_empty() {
        // Implicit: every task of the framework the master listed throughout.
        let mut all: BTreeSet<String> = BTreeSet::new();
        for (_, k) in entries {
            all.extend(
                k.tasks
                    .keys()
                    .filter(|(f, _)| *f == request.framework)
                    .map(|(_, t)| t.clone()),
            );
        }
        all.into_iter()
            .filter(|t| listed_throughout(&request.framework, t))
            .collect()
    } else {
        request.tasks.clone()
    };
    let push = |out: &mut Vec<Violation>, rule: &str, what: String| {
        out.push(Violation {
            time: to,
            oracle: "reconciliation",
            message: format!(
                "{} received a reconciliation from framework {} at {:.3} s: {what} ({rule})",
                request.master,
                request.framework,
                request.time.as_secs_f64(),
            ),
        })
    };
    for task in &named {
        let answered = answers
            .iter()
            .filter(|a| &a.task == task)
            .collect::<Vec<_>>();
        if listed_throughout(&request.framework, task) {
            if answered.is_empty() {
                push(
                    out,
                    "L31",
                    format!(
                        "task {task}, which it listed throughout, was not answered within {:.1} s",
                        BOUND.as_secs_f64()
                    ),
                );
            }
            continue;
        }
        if request.tasks.is_empty() || !unlisted_throughout(&request.framework, task) {
            continue;
        }
        let led = from.saturating_sub(since);
        let waiting_before = awaited(list, since, from.saturating_sub(TAP_LAG));
        let waiting_after = awaited(list, since, to);
        let lost = answered.iter().any(|a| a.state == "TASK_LOST");
        if led >= timeout + ELECTION_SLACK
            || (waiting_before.is_empty() && waiting_after.is_empty())
        {
            if !lost {
                push(
                    out,
                    "L32",
                    format!(
                        "task {task}, which it did not list, was not answered TASK_LOST within {:.1} s (leading for {:.3} s, awaiting {} agent(s))",
                        BOUND.as_secs_f64(),
                        led.as_secs_f64(),
                        waiting_before.len()
                    ),
                );
            }
        } else if led + ELECTION_SLACK <= timeout
            && !waiting_before.is_empty()
            // An agent that registered and was cut off again between two taps was heard
            // (the taps never listed it connected): judged only when no registration
            // reached a master since the election.
            && !registrations.iter().any(|at| *at >= since && *at <= to)
            && waiting_before == waiting_after
            && lost
            && !others_expect_an_answer(record, request, task)
        {
            push(
                out,
                "L32",
                format!(
                    "task {task} was answered TASK_LOST after {:.3} s of leadership, while agent(s) {:?} it awaits could still bring the task back",
                    led.as_secs_f64(),
                    waiting_before
                ),
            );
        }
    }
}

/// Whether another request for `task` near this one may have been the one answered.
fn others_expect_an_answer(record: &Record, request: &Request, task: &str) -> bool {
    record.requests.iter().any(|r| {
        !std::ptr::eq(r, request)
            && r.master == request.master
            && r.framework == request.framework
            && (r.tasks.is_empty() || r.tasks.iter().any(|t| t == task))
            && r.time + BOUND >= request.time
            && r.time <= request.time + BOUND
    })
}

/// When the bounds may be judged: no fault but the agent machine's own anywhere near.
struct Quiet {
    /// Windows in which something could lose, hold or reorder a framework's or master's
    /// message, or change who leads.
    windows: Vec<(Duration, Duration)>,
    /// From when a fault that fires at a later message (a drop, a held message) may
    /// take a request or an answer.
    lossy_from: Option<Duration>,
}

impl Quiet {
    fn of(scenario: &Scenario, seed: u64) -> Quiet {
        let mut quiet = Quiet {
            windows: Vec::new(),
            lossy_from: None,
        };
        for fault in crate::schedule::schedule(scenario, seed) {
            let at = Duration::from_secs_f64(fault.at_s.max(0.0));
            let lasting = fault
                .duration_s
                .unwrap_or(0.0)
                .max(fault.restart_after_s.unwrap_or(0.0))
                .max(0.0);
            match fault.kind {
                // The agent machine's own faults: they change what the master lists,
                // which the taps show, not how it answers.
                FaultKind::AgentCrash
                | FaultKind::AgentCrashAtWrite
                | FaultKind::Reboot
                | FaultKind::ExecutorCrash
                | FaultKind::WipeFrameworkMeta
                | FaultKind::AgentUnregister
                | FaultKind::Corrupt
                | FaultKind::ClockJump
                | FaultKind::DiskError
                | FaultKind::TornAppend
                | FaultKind::DeleteRunDir
                | FaultKind::RewriteForkedPid
                | FaultKind::AgentCrashAtProcess
                | FaultKind::Forge => {}
                // A partition between two named hosts, neither a framework: it changes
                // what the master hears from agents, not the framework's link.
                FaultKind::Partition
                    if [&fault.a, &fault.b].iter().all(|side| {
                        side.as_deref().is_some_and(|s| {
                            !s.starts_with(crate::observations::FRAMEWORK_HOST)
                                && !s.starts_with("rogue")
                        })
                    }) => {}
                // A held message holds back everything after it on its connection,
                // whatever its kind.
                FaultKind::DelayMessage => {
                    quiet.lossy_from = Some(quiet.lossy_from.map_or(at, |from| from.min(at)));
                }
                // The agent dies at a message: the agent machine's own.
                FaultKind::AgentCrashAtMessage => {}
                FaultKind::Drop => {
                    if fault.message.as_deref().is_none_or(framework_message) {
                        quiet.lossy_from = Some(quiet.lossy_from.map_or(at, |from| from.min(at)));
                    }
                }
                _ => quiet.windows.push((
                    at.saturating_sub(Duration::from_secs(1)),
                    at + Duration::from_secs_f64(lasting) + Duration::from_secs(5),
                )),
            }
        }
        quiet
    }

    /// Whether a request at `at` and its answer were safe from every fault.
    fn around(&self, at: Duration) -> bool {
        let end = at + BOUND + Duration::from_secs(1);
        !self
            .windows
            .iter()
            .any(|(from, to)| *from <= end && *to >= at)
            && self.lossy_from.is_none_or(|from| from > end)
    }
}

/// Whether a message fault's `message` may name a framework's request or its answer.
fn framework_message(message: &str) -> bool {
    let normal: String = message
        .chars()
        .filter(|c| *c != '_')
        .collect::<String>()
        .to_ascii_lowercase();
    matches!(
        normal.as_str(),
        "reconcile" | "statusupdate" | "submittask" | ""
    )
}
