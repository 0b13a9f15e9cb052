//! Rule (docs/lifecycle-rules.md rules 8, 9 and 12): a framework whose scheduler left for
//! good is removed by the master once it has stayed disconnected for its
//! `failover_timeout`, and the agent is told to shut it down. When the run ends with an
//! agent running, no executor of such a framework's tasks may be alive if the timeout
//! ran out early enough: from when the scheduler left (or from the last master election
//! after that, since a new leader starts the timer again, rule 9), plus the master's
//! time to notice a silent connection, the timeout, the 5 s shutdown grace period and
//! 5 s of slack. Judged from the simulated process table (executors alive at the end),
//! not from anyone's log; the election times are the masters' own trace lines.

use std::time::Duration;

use super::Violation;
use crate::observations::Observations;
use crate::scenario::Scenario;
use crate::trace::TraceEvent;

/// Heartbeats a master sends a silent framework before it closes its connection, plus
/// one interval for the first to go out (src/master.rs `FRAMEWORK_MISSED_PONGS_MAX`).
const HEARTBEATS_TO_NOTICE: f64 = 4.0;
/// The agent's shutdown grace period for executors of a framework it shuts down.
const SHUTDOWN_GRACE_S: f64 = 5.0;
/// Slack for ticks, message latency and the agent's own checks.
const SLACK_S: f64 = 5.0;

/// Checks the rule.
pub fn check(
    scenario: &Scenario,
    trace: &[TraceEvent],
    observations: &Observations,
) -> Vec<Violation> {
    if !observations.agent_running_at_end
        || observations.left_frameworks.is_empty()
        || scenario
            .expect
            .as_ref()
            .is_some_and(|e| e.agent_exits == Some(true))
    {
        return Vec::new();
    }
    let elections: Vec<Duration> = trace
        .iter()
        .filter(|e| e.host.starts_with("master") && e.message.starts_with("elected leading master"))
        .map(|e| e.time)
        .collect();
    let end = Duration::from_secs_f64(scenario.duration_s);
    let notice = scenario.master.agent_ping_timeout_s * HEARTBEATS_TO_NOTICE;
    let mut out = Vec::new();
    for (framework, left_at) in &observations.left_frameworks {
        let start = elections
            .iter()
            .copied()
            .filter(|at| at > left_at)
            .max()
            .unwrap_or(*left_at);
        let deadline = start
            + Duration::from_secs_f64(
                notice + scenario.framework_failover_timeout_s + SHUTDOWN_GRACE_S + SLACK_S,
            );
        if deadline >= end {
            continue;
        }
        for (task, _) in crate::observations::tasks_for_oracles(scenario, observations.seed) {
            if crate::observations::framework_of(scenario, &task.task_id) != *framework {
                continue;
            }
            // Command executors are named after their task.
            if observations.live_executors_at_end.contains(&task.task_id) {
                out.push(Violation {
                    time: deadline,
                    oracle: "failover",
                    message: format!(
                        "executor {} of framework {framework}, whose scheduler left for good at {:?}, is still alive at the end (its failover timeout of {} s ran out by {:?})",
                        task.task_id, left_at, scenario.framework_failover_timeout_s, deadline
                    ),
                });
            }
        }
    }
    out
}
