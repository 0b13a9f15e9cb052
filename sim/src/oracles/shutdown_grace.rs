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
            .find(|ask| held_to(kill.time, ask))
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

/// Whether a kill at `kill` breaks the grace period of `ask` (L36): the ask was decided
/// no later than the kill, and the kill came less than the grace period (less
/// [`WRITE_SLACK`]) after the ask's write. When the ask was decided is read from the
/// wire: an ask that answers an executor's registration was decided after that
/// registration reached the agent (so one that reached it after the kill was answered
/// after the kill: an executor the agent refused once it had killed it, its
/// registration delayed in the network); any other ask reaches the wire up to
/// [`WRITE_SLACK`] after its decision, so an ask written up to that much after the kill
/// may still be the one the kill was held to (a kill before its own ask is written is
/// the worst breach).
fn held_to(kill: Duration, ask: &AgentAct) -> bool {
    let decided_by = match ask.answering {
        Some(registration) => registration,
        None => ask.time.saturating_sub(WRITE_SLACK),
    };
    decided_by <= kill && kill + WRITE_SLACK < ask.time + GRACE
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: f64) -> Duration {
        Duration::from_secs_f64(seconds)
    }

    fn ask(seconds: f64, answering: Option<f64>) -> AgentAct {
        AgentAct {
            time: at(seconds),
            agent: 1,
            incarnation: 1,
            pid: 7,
            boot: 1,
            answering: answering.map(at),
        }
    }

    #[test]
    fn a_kill_within_the_grace_period_after_its_ask_is_held_to_it() {
        assert!(held_to(at(10.0), &ask(10.0, None)));
        assert!(held_to(at(13.9), &ask(10.0, None)));
        assert!(held_to(at(13.9), &ask(10.0, Some(9.9))));
        // The grace period less the write slack has passed: the kill is in time.
        assert!(!held_to(at(14.0), &ask(10.0, None)));
        assert!(!held_to(at(20.0), &ask(10.0, None)));
    }

    #[test]
    fn a_kill_before_its_ask_reached_the_wire_is_held_to_it() {
        // Decided, killed, and only then the ask written (within the slack).
        assert!(held_to(at(9.5), &ask(10.0, None)));
        assert!(held_to(at(9.0), &ask(10.0, None)));
        // An answer to a registration that reached the agent before the kill.
        assert!(held_to(at(9.5), &ask(10.0, Some(9.4))));
    }

    #[test]
    fn an_ask_decided_after_the_kill_holds_it_to_nothing() {
        // Seeds 208 and 229 of swarm_agent_machine: the kill at the re-registration
        // timeout, the refusal's ask 7.5 s later.
        assert!(!held_to(at(51.6), &ask(59.1, Some(59.1))));
        assert!(!held_to(at(51.6), &ask(59.1, None)));
        assert!(!held_to(at(8.9), &ask(10.0, None)));
        // Seeds 577 and 1445: the refused registration reached the agent 24 ms and
        // 955 ms after the kill, within the write slack.
        assert!(!held_to(at(137.300), &ask(137.324, Some(137.324))));
        assert!(!held_to(at(45.900), &ask(46.855, Some(46.855))));
    }
}
