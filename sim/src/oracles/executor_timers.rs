//! The executor timers, judged from the simulated process table and the executors' own
//! events (their "registered with agent" line), not from the agent's log:
//! - rule 16 of docs/lifecycle-rules.md ("not early", oracle `not_early`): an executor
//!   that exits because its agent stayed away did so no sooner than `recovery_timeout`
//!   after it lost its agent: after the first "lost the agent" event of its own since it
//!   last registered (or that registration), or, if it never registered, after its
//!   start (its first failed connection, which it does not log, counts); one second of
//!   tolerance.
//! - rule 17 ("registered in time", oracle `registration_timeout`): while the agent
//!   incarnation that launched an executor stays up, the executor does not live past
//!   `executor_registration_timeout` plus [`REGISTRATION_SLACK`] without having
//!   registered. Runs in which an `executor_registered` message was dropped, held back
//!   or duplicated are not judged: the agent counts such an executor registered while
//!   the executor never heard so.

use std::time::Duration;

use super::Violation;
use crate::history::{ProcessEnd, ProcessRecord};
use crate::observations::{agent_of_host, Observations};
use crate::scenario::Scenario;
use crate::trace::TraceEvent;

/// Tolerance of rule 16: the driver may notice an agent's end up to a tick late.
const GIVE_UP_TOLERANCE: Duration = Duration::from_secs(1);
/// Slack of rule 17: the agent's timer and the kill itself.
pub const REGISTRATION_SLACK: Duration = Duration::from_secs(2);

/// The times an executor process of `process`'s id and agent logged `message` during
/// `process`'s life; with `own_run`, only the lines naming `process`'s run (another
/// process of the same id, launched by a later incarnation, may live at the same time).
fn events<'a>(
    trace: &'a [TraceEvent],
    process: &'a ProcessRecord,
    message: &'a str,
    own_run: bool,
) -> impl Iterator<Item = Duration> + 'a {
    let end = process.ended.map_or(Duration::MAX, |(at, _)| at);
    trace
        .iter()
        .filter(move |e| {
            e.role == "executor"
                && e.message == message
                && e.field("executor") == Some(process.executor_id.as_str())
                && (!own_run || e.field("run") == Some(process.container.as_str()))
                && agent_of_host(&e.host) == Some(process.owner)
                && e.time >= process.started
                && e.time <= end
        })
        .map(|e| e.time)
}

/// When the executor process `process` registered with its agent.
fn registrations<'a>(
    trace: &'a [TraceEvent],
    process: &'a ProcessRecord,
) -> impl Iterator<Item = Duration> + 'a {
    events(trace, process, "registered with agent", true)
}

/// The times agent process `agent` ended, or may have ended, in order: its own exits,
/// crash faults, and the arming of a death at an operation (which may strike at once).
pub(crate) fn agent_losses(observations: &Observations, agent: u32) -> Vec<Duration> {
    let mut out: Vec<Duration> = observations
        .agent_exits
        .iter()
        .filter(|(_, index, _)| *index == agent)
        .map(|(at, _, _)| *at)
        .chain(
            observations
                .faults
                .iter()
                .filter(|(_, text)| {
                    text.starts_with("agent dies at")
                        || text.starts_with("agent crash")
                        || text.starts_with("reboot")
                })
                .map(|(at, _)| *at),
        )
        .chain(
            observations
                .history
                .agent_starts
                .iter()
                .filter(|s| s.agent == agent)
                .map(|s| s.time),
        )
        .collect();
    out.sort();
    out
}

/// Checks both rules.
pub fn check(
    scenario: &Scenario,
    trace: &[TraceEvent],
    observations: &Observations,
) -> Vec<Violation> {
    let mut out = not_early(scenario, trace, observations);
    out.extend(registered_in_time(scenario, trace, observations));
    out
}

/// Rule 12.
fn not_early(
    scenario: &Scenario,
    trace: &[TraceEvent],
    observations: &Observations,
) -> Vec<Violation> {
    let recovery_timeout = Duration::from_secs_f64(scenario.agent.recovery_timeout_s.max(0.0));
    let mut out = Vec::new();
    for process in &observations.history.processes {
        let Some((gave_up, ProcessEnd::GaveUp)) = process.ended else {
            continue;
        };
        let lost = match registrations(trace, process)
            .filter(|at| *at <= gave_up)
            .last()
        {
            // Registered: it lost its agent when it next saw its connection end (its
            // line does not name its run; the first such line of its id after its own
            // registration is no later than its own).
            Some(registered) => events(trace, process, "lost the agent", false)
                .find(|at| *at >= registered)
                .unwrap_or(registered),
            // Never registered: its first failed connection counts, which it does not
            // log; its start is the earliest that can be.
            None => process.started,
        };
        if gave_up + GIVE_UP_TOLERANCE >= lost + recovery_timeout {
            continue;
        }
        let message = format!(
            "executor {} (pid {}) gave up on its agent at {:.3}s, {:.3}s after it lost it at {:.3}s at the earliest: earlier than recovery_timeout {:.0}s (rule 16)",
            process.executor_id,
            process.pid,
            gave_up.as_secs_f64(),
            (gave_up - lost).as_secs_f64(),
            lost.as_secs_f64(),
            recovery_timeout.as_secs_f64()
        );
        out.push(Violation {
            time: gave_up,
            oracle: "not_early",
            message,
        });
    }
    out
}

/// Rule 13.
fn registered_in_time(
    scenario: &Scenario,
    trace: &[TraceEvent],
    observations: &Observations,
) -> Vec<Violation> {
    if observations
        .faults
        .iter()
        .any(|(_, text)| text.contains("executor_registered"))
    {
        return Vec::new();
    }
    let timeout = Duration::from_secs_f64(scenario.agent.executor_registration_timeout_s.max(0.0));
    let end = Duration::from_secs_f64(scenario.duration_s);
    let mut out = Vec::new();
    for process in &observations.history.processes {
        let deadline = process.started + timeout + REGISTRATION_SLACK;
        if deadline > end || process.ended.is_some_and(|(at, _)| at <= deadline) {
            continue;
        }
        // The launching incarnation must have stayed up until the deadline (an agent
        // that restarts applies its re-registration timeout instead, rule 1).
        if agent_losses(observations, process.owner)
            .iter()
            .any(|at| *at >= process.started && *at <= deadline)
        {
            continue;
        }
        if registrations(trace, process).any(|at| at <= deadline) {
            continue;
        }
        out.push(Violation {
            time: deadline,
            oracle: "registration_timeout",
            message: format!(
                "executor {} (pid {}), launched at {:.3}s by agent {} which stayed up, was still alive and unregistered at {:.3}s (executor_registration_timeout {:.0}s + {:.0}s slack; rule 17)",
                process.executor_id,
                process.pid,
                process.started.as_secs_f64(),
                process.owner,
                deadline.as_secs_f64(),
                timeout.as_secs_f64(),
                REGISTRATION_SLACK.as_secs_f64()
            ),
        });
    }
    out
}
