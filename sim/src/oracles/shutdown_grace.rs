//! Rule L36 of docs/task-lifecycle.md ("the grace period is the asker's", oracle
//! `shutdown_grace`): an agent incarnation that asked an executor process to shut down
//! (a `ShutdownExecutor` it wrote on that executor's connection, `crate::shutdown_asks`)
//! does not kill that process before the shutdown grace period has passed since the ask,
//! less [`WRITE_SLACK`]. Judged from the wire and the simulated process table (the
//! agent's signal to a live process), never from the agent's log. The executor may exit
//! by itself at any time (it does when the ask arrives). A kill by another incarnation
//! is not judged against the ask: a restarted agent does not know of its predecessor's
//! ask (the deadline is not checkpointed), and if it asks again the grace period counts
//! from its own ask. An incarnation that leaves the cluster kills every executor at
//! once and exits (docs/lifecycle-rules.md rule 8's shutdown is not the agent's own).

use std::time::Duration;

use super::Violation;
use crate::history::AgentAct;
use crate::observations::Observations;

/// The agent's shutdown grace period (`EXECUTOR_SHUTDOWN_GRACE_PERIOD`).
pub const GRACE: Duration = Duration::from_secs(5);
/// How much later than its decision the ask may reach the wire: the agent sets the
/// kill's deadline when it decides, and its connection's writer writes the ask after
/// the batch that decided it (held behind a group commit, docs/recovery-latency.md P12).
pub const WRITE_SLACK: Duration = Duration::from_secs(1);

/// Checks the rule.
pub fn check(observations: &Observations) -> Vec<Violation> {
    let history = &observations.history;
    let mut out = Vec::new();
    for kill in &history.agent_kills {
        if left_the_cluster(observations, kill) {
            continue;
        }
        let same = |ask: &&AgentAct| {
            (ask.agent, ask.incarnation, ask.pid, ask.boot)
                == (kill.agent, kill.incarnation, kill.pid, kill.boot)
        };
        let Some(ask) = history
            .shutdown_asks
            .iter()
            .filter(same)
            .find(|ask| kill.time < ask.time + GRACE - WRITE_SLACK)
        else {
            continue;
        };
        let executor = history
            .processes
            .iter()
            .find(|p| p.pid == kill.pid && p.boot == kill.boot)
            .map_or("?", |p| p.executor_id.as_str());
        out.push(Violation {
            time: kill.time,
            oracle: "shutdown_grace",
            message: format!(
                "agent {} (incarnation {}) killed executor {executor} (pid {}) at {:.3}s, {:.3}s after it asked it to shut down at {:.3}s: before the {:.0}s grace period (L36)",
                kill.agent,
                kill.incarnation,
                kill.pid,
                kill.time.as_secs_f64(),
                kill.time.as_secs_f64() - ask.time.as_secs_f64(),
                ask.time.as_secs_f64(),
                GRACE.as_secs_f64()
            ),
        });
    }
    out
}

/// Whether the incarnation that made `kill` left the cluster with it: its next exit
/// (the first at or after the kill) is a shutdown, which kills every executor at once.
fn left_the_cluster(observations: &Observations, kill: &AgentAct) -> bool {
    observations
        .agent_exits
        .iter()
        .find(|(at, agent, _)| *agent == kill.agent && *at >= kill.time)
        .is_some_and(|(_, _, outcome)| outcome.is_shutdown())
}
