//! Rule 22 of `docs/lifecycle-rules.md` (oracle `hung_executor`): a hung executor (one
//! that never connects to its agent, swarm knob `hanging_executor_fraction`) is the
//! agent's to kill, since it can neither register nor notice that its agent is gone
//! (rule 21). Its launching incarnation kills it at the registration timeout (rule 17
//! judges that); any later incarnation of the same agent process, started in the same
//! machine boot, kills it at recovery (an orphan, rule 20) or at its re-registration
//! timeout (rule 1). So once such an incarnation has stayed up
//! `executor_reregistration_timeout` plus [`SLACK`] since it started, the hung process
//! is gone. Judged from the simulated process table (which processes hang, when each
//! started and ended) and the simulator's record of agent starts and ends, never from
//! the agent's log.

use std::time::Duration;

use super::executor_timers::agent_losses;
use super::Violation;
use crate::observations::Observations;
use crate::scenario::Scenario;

/// The agent's timer and the kill itself.
pub const SLACK: Duration = Duration::from_secs(2);

/// Checks the rule.
pub fn check(scenario: &Scenario, observations: &Observations) -> Vec<Violation> {
    let timeout =
        Duration::from_secs_f64(scenario.agent.executor_reregistration_timeout_s.max(0.0));
    let end = Duration::from_secs_f64(scenario.duration_s);
    let mut out = Vec::new();
    for process in observations.history.processes.iter().filter(|p| p.hung) {
        let losses = agent_losses(observations, process.owner);
        let later_start = observations.history.agent_starts.iter().find(|start| {
            let deadline = start.time + timeout + SLACK;
            start.agent == process.owner
                && start.boot == process.boot
                && start.time > process.started
                && deadline <= end
                && process.ended.is_none_or(|(at, _)| at > start.time)
                && !losses.iter().any(|at| *at > start.time && *at <= deadline)
        });
        let Some(start) = later_start else {
            continue;
        };
        let deadline = start.time + timeout + SLACK;
        if process.ended.is_some_and(|(at, _)| at <= deadline) {
            continue;
        }
        out.push(Violation {
            time: deadline,
            oracle: "hung_executor",
            message: format!(
                "hung executor {} (pid {}, run {}), launched at {:.3}s by agent {}, was still alive at {:.3}s though an agent incarnation started at {:.3}s and stayed up (executor_reregistration_timeout {:.1}s + {:.0}s slack; docs/lifecycle-rules.md rule 22)",
                process.executor_id,
                process.pid,
                process.container,
                process.started.as_secs_f64(),
                process.owner,
                deadline.as_secs_f64(),
                start.time.as_secs_f64(),
                timeout.as_secs_f64(),
                SLACK.as_secs_f64()
            ),
        });
    }
    out
}
