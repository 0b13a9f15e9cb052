//! The master's decisions as plain functions of its state, the event and `now`: no
//! connection, registry or runtime, so each is unit-tested on its own. The rooms
//! (`agents`, `frameworks`, `placement`, `leadership`) read the state, call these, and
//! carry out what they return.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use super::AgentPhase;
use crate::proto::TaskReport;

/// What a ping round does with one agent (docs/recovery-rules.md R5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PingDecision {
    /// Not pinged: neither registered nor recovering on a connection.
    Skip,
    /// Pinged again; it must answer before the next round.
    Ping,
    /// It left `max_agent_ping_timeouts` pings unanswered: removed as unreachable.
    Unreachable,
}

/// An agent's ping bookkeeping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PingState {
    /// Pings left unanswered in a row.
    pub missed_pings: u32,
    /// Whether it answered the last ping.
    pub ponged: bool,
}

/// One agent's turn in a ping round: a registered agent, or a disconnected one that
/// said it is recovering (`recovering`), is pinged until it misses `max` pings in a
/// row; `state` is updated as the round leaves it.
pub(super) fn ping_round(
    phase: AgentPhase,
    recovering: bool,
    state: &mut PingState,
    max: u32,
) -> PingDecision {
    match phase {
        AgentPhase::Connected => {}
        AgentPhase::Disconnected if recovering => {}
        _ => return PingDecision::Skip,
    }
    if !state.ponged {
        state.missed_pings += 1;
    }
    if state.missed_pings >= max {
        return PingDecision::Unreachable;
    }
    state.ponged = false;
    PingDecision::Ping
}

/// Whether a disconnected agent stayed away for the whole re-registration timeout
/// (a recovering agent has no disconnection time: docs/recovery-rules.md R5): then it
/// is removed.
pub(super) fn reregistration_expired(
    phase: AgentPhase,
    disconnected_at: Option<Instant>,
    now: Instant,
    timeout: Duration,
) -> bool {
    phase == AgentPhase::Disconnected
        && disconnected_at.is_some_and(|at| now.saturating_duration_since(at) >= timeout)
}

/// What the master does with a re-registration or a status update from an agent that
/// may have been removed or may speak on the wrong connection (docs/recovery-rules.md
/// R6-R8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AgentVerdict {
    /// Taken: a re-registration admitted (a known agent resumes, an unknown one is added
    /// as it reports), or a status update recorded and forwarded.
    Accept,
    /// Ignored: a re-registration on an older connection than the agent's newest, or a
    /// status update on a connection the agent is not registered on.
    Ignore,
    /// Refused, and the agent told to shut down: a removed agent is never let back, and
    /// its updates are never forwarded.
    ShutDown,
}

/// Decides a re-registration from whether the agent was removed (by this master or in
/// the registry) and whether the connection is older than its newest: removal first.
pub(super) fn reregistration(removed: bool, stale: bool) -> AgentVerdict {
    if removed {
        AgentVerdict::ShutDown
    } else if stale {
        AgentVerdict::Ignore
    } else {
        AgentVerdict::Accept
    }
}

/// Decides a status update from whether it came on the agent's registered connection
/// (which wins) and whether the agent (or the connection's agent) was removed.
pub(super) fn status_update(registered: bool, removed: bool) -> AgentVerdict {
    if registered {
        AgentVerdict::Accept
    } else if removed {
        AgentVerdict::ShutDown
    } else {
        AgentVerdict::Ignore
    }
}

/// Where a task goes: the connected agent with the fewest open tasks, the first by id
/// on a tie (so tasks spread over agents), from `(id, connected, open tasks)` in id
/// order.
pub(super) fn least_loaded<'a, Id: 'a>(
    agents: impl IntoIterator<Item = (&'a Id, bool, usize)>,
) -> Option<&'a Id> {
    agents
        .into_iter()
        .filter(|(_, connected, _)| *connected)
        .min_by_key(|(_, _, open)| *open)
        .map(|(id, _, _)| id)
}

/// The master's answer to one task of an explicit reconciliation (docs/lifecycle-rules.md
/// rule 13).
#[derive(Clone, Debug, PartialEq)]
pub(super) enum ReconcileAnswer {
    /// A task the master knows: its latest state.
    Known(TaskReport),
    /// Unknown, and no agent that could hold it may still re-register: TASK_LOST.
    Lost,
    /// Unknown for now (queued, or an agent may still bring it back): no answer yet.
    Wait,
}

/// Answers the explicitly named `task_ids` of a reconciliation. `settled`: the
/// re-registration timeout has passed since the election; `awaited`: an agent of the
/// registry has not re-registered with this master yet.
pub(super) fn reconcile_explicit(
    known: &BTreeMap<String, TaskReport>,
    queued: &BTreeSet<String>,
    task_ids: &[String],
    settled: bool,
    awaited: bool,
) -> Vec<(String, ReconcileAnswer)> {
    task_ids
        .iter()
        .map(|task_id| {
            let answer = match known.get(task_id) {
                Some(task) => ReconcileAnswer::Known(task.clone()),
                None if queued.contains(task_id) => ReconcileAnswer::Wait,
                None if settled || !awaited => ReconcileAnswer::Lost,
                None => ReconcileAnswer::Wait,
            };
            (task_id.clone(), answer)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::TaskState;

    #[test]
    fn an_agent_is_unreachable_after_max_missed_pings() {
        let mut state = PingState {
            missed_pings: 0,
            ponged: true,
        };
        // Answered: pinged again, nothing missed.
        assert_eq!(
            ping_round(AgentPhase::Connected, false, &mut state, 3),
            PingDecision::Ping
        );
        assert_eq!(state.missed_pings, 0);
        // Silent for three rounds.
        assert_eq!(
            ping_round(AgentPhase::Connected, false, &mut state, 3),
            PingDecision::Ping
        );
        assert_eq!(
            ping_round(AgentPhase::Connected, false, &mut state, 3),
            PingDecision::Ping
        );
        assert_eq!(state.missed_pings, 2);
        assert_eq!(
            ping_round(AgentPhase::Connected, false, &mut state, 3),
            PingDecision::Unreachable
        );
    }

    #[test]
    fn a_pong_resets_the_count() {
        let mut state = PingState {
            missed_pings: 2,
            ponged: false,
        };
        assert_eq!(
            ping_round(AgentPhase::Connected, false, &mut state, 5),
            PingDecision::Ping
        );
        assert_eq!(state.missed_pings, 3);
        // The pong handler sets these.
        state.ponged = true;
        state.missed_pings = 0;
        assert_eq!(
            ping_round(AgentPhase::Connected, false, &mut state, 5),
            PingDecision::Ping
        );
        assert_eq!(state.missed_pings, 0);
    }

    #[test]
    fn only_registered_and_recovering_agents_are_pinged() {
        let mut state = PingState {
            missed_pings: 9,
            ponged: false,
        };
        let before = state;
        assert_eq!(
            ping_round(AgentPhase::Disconnected, false, &mut state, 1),
            PingDecision::Skip
        );
        assert_eq!(
            ping_round(AgentPhase::Removed, true, &mut state, 1),
            PingDecision::Skip
        );
        assert_eq!(state, before, "a skipped agent's count does not move");
        // A recovering agent is pinged on its connection (R5), and removed the same way.
        assert_eq!(
            ping_round(AgentPhase::Disconnected, true, &mut state, 20),
            PingDecision::Ping
        );
        assert_eq!(
            ping_round(AgentPhase::Disconnected, true, &mut state, 11),
            PingDecision::Unreachable
        );
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // any instant will do as the start
    fn reregistration_timeout_counts_from_the_disconnection() {
        let start = Instant::now();
        let timeout = Duration::from_secs(10);
        let at = |s| start + Duration::from_secs(s);
        assert!(!reregistration_expired(
            AgentPhase::Disconnected,
            Some(start),
            at(9),
            timeout
        ));
        assert!(reregistration_expired(
            AgentPhase::Disconnected,
            Some(start),
            at(10),
            timeout
        ));
        // Recovering agents have no disconnection time: the timer does not run (R5).
        assert!(!reregistration_expired(
            AgentPhase::Disconnected,
            None,
            at(99),
            timeout
        ));
        assert!(!reregistration_expired(
            AgentPhase::Connected,
            Some(start),
            at(99),
            timeout
        ));
        assert!(!reregistration_expired(
            AgentPhase::Removed,
            Some(start),
            at(99),
            timeout
        ));
    }

    #[test]
    fn removed_agents_are_never_let_back() {
        assert_eq!(reregistration(true, false), AgentVerdict::ShutDown);
        assert_eq!(reregistration(true, true), AgentVerdict::ShutDown);
        assert_eq!(reregistration(false, true), AgentVerdict::Ignore);
        assert_eq!(reregistration(false, false), AgentVerdict::Accept);
    }

    #[test]
    fn updates_are_forwarded_only_from_the_registered_connection() {
        assert_eq!(status_update(true, false), AgentVerdict::Accept);
        assert_eq!(status_update(false, true), AgentVerdict::ShutDown);
        assert_eq!(status_update(false, false), AgentVerdict::Ignore);
    }

    #[test]
    fn placement_picks_the_least_loaded_connected_agent() {
        let ids = ["a1", "a2", "a3"];
        let agents = |loads: [(bool, usize); 3]| {
            ids.iter()
                .zip(loads)
                .map(|(id, (connected, open))| (id, connected, open))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            least_loaded(agents([(true, 2), (true, 1), (true, 1)])),
            Some(&"a2")
        );
        assert_eq!(
            least_loaded(agents([(true, 2), (false, 0), (true, 2)])),
            Some(&"a1")
        );
        assert_eq!(
            least_loaded(agents([(false, 0), (false, 0), (false, 0)])),
            None
        );
    }

    #[test]
    fn reconciliation_answers() {
        let running = TaskReport {
            task_id: "t1".into(),
            state: TaskState::TaskRunning as i32,
            ..Default::default()
        };
        let known = BTreeMap::from([("t1".to_owned(), running.clone())]);
        let queued = BTreeSet::from(["t2".to_owned()]);
        let asked = ["t1".to_owned(), "t2".to_owned(), "t3".to_owned()];
        let answers = |settled, awaited| {
            reconcile_explicit(&known, &queued, &asked, settled, awaited)
                .into_iter()
                .map(|(_, answer)| answer)
                .collect::<Vec<_>>()
        };
        use ReconcileAnswer::*;
        // An agent may still bring t3 back: no answer for it yet.
        assert_eq!(answers(false, true), [Known(running.clone()), Wait, Wait]);
        // No agent awaited, or the timeout passed: t3 is lost; a queued task never is.
        assert_eq!(answers(false, false), [Known(running.clone()), Wait, Lost]);
        assert_eq!(answers(true, true), [Known(running), Wait, Lost]);
    }
}
