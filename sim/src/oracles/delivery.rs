//! Rules L6 to L12 of `docs/task-lifecycle.md`: a status update that the agent
//! acknowledged to its executor reaches the framework (at least once, L6), in the order
//! the agent accepted it (L12), except where the update is superseded rather than lost:
//! - (L7) the agent's machine rebooted after the acknowledgement: the seeds recover no agent
//!   state after a reboot, so the update is never replayed, and the task must instead end
//!   in a terminal state the framework sees (the liveness oracle checks that);
//! - (L10) the master removed the agent (it stayed unreachable, or failed to re-register in
//!   time) and told the framework the task's fate itself: a terminal update without a
//!   uuid, from the master, reached the framework;
//! - (L8) the agent then left the cluster (SIGUSR1, or told to shut down by the master)
//!   before the update got through: an agent that leaves shuts its executors down and
//!   forgets its id and checkpoints, so nothing it still held is ever forwarded, even
//!   updates a later incarnation recovered (regression seed 3480); as after a reboot,
//!   the task must still end in a state the framework sees (liveness oracle);
//! - (L9) a terminal update of the same stream, accepted before it, reached the
//!   framework: the agent drops whatever is queued behind a terminal update once that
//!   is acknowledged (an executor that sends an update after its terminal one);
//! - (L11) the task's framework tore itself down: the agent drops the framework's pending
//!   updates when told to shut it down, and there is no scheduler left to receive them
//!   (the teardown oracle checks what must happen instead);
//! - (L21) an operator removed the checkpoint directory of the task's framework while the
//!   agent was down, after the acknowledgement: the update went with it and nothing can
//!   replay it (the liveness oracle checks that the task still ends);
//! - (S1) the update came after the task's terminal update: the agent refuses it and only
//!   acknowledges it to the executor (docs/stream-rules.md S1). Judged from outside: an
//!   update of the same task acknowledged to the executor before it reached the framework
//!   carrying a terminal state.

use std::collections::{BTreeMap, BTreeSet};

use revenant::ids::Uuid;

use super::Violation;
use crate::decision::Decision;
use crate::observations::Observations;
use crate::trace::TraceEvent;

fn parse_uuid(text: &str) -> Option<Uuid> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[index * 2..index * 2 + 2], 16).ok()?;
    }
    Some(Uuid(bytes))
}

/// Whether agent `agent` (1, 2, ...) left the cluster at or after `time`: an
/// incarnation of it ended by a shutdown (SIGUSR1, or told to by the master). An agent
/// that leaves starts afresh (docs/recovery-rules.md R1): whatever updates its checkpoints still held
/// then, whichever incarnation acknowledged them, are never forwarded.
fn left_the_cluster_after(
    observations: &Observations,
    agent: u32,
    time: std::time::Duration,
) -> bool {
    observations
        .agent_exits
        .iter()
        .any(|(exit, index, outcome)| *index == agent && *exit >= time && outcome.is_shutdown())
}

/// L21: whether an operator removed framework `framework`'s checkpoint directory of
/// agent `agent` at or after `time` (the fault names each directory it removed,
/// `slaves/<agent id>/frameworks/<framework id>`).
fn framework_meta_wiped_after(
    observations: &Observations,
    agent: u32,
    framework: &str,
    time: std::time::Duration,
) -> bool {
    !framework.is_empty()
        && observations
            .framework_meta_wiped
            .iter()
            .any(|(at, index, description)| {
                *index == agent
                    && *at >= time
                    && description
                        .split([' ', ','])
                        .any(|path| path.ends_with(&format!("/frameworks/{framework}")))
            })
}

/// Checks the rule.
pub fn check(trace: &[TraceEvent], observations: &Observations) -> Vec<Violation> {
    let seen: BTreeSet<Uuid> = observations.seen.iter().filter_map(|s| s.uuid).collect();
    let mut out = Vec::new();
    // Acknowledged to the executor: uuid -> (time, task, agent, position in the trace,
    // framework).
    #[allow(clippy::type_complexity)]
    let mut acked: BTreeMap<Uuid, (std::time::Duration, String, u32, usize, String)> =
        BTreeMap::new();
    // Accepted order per task, and the uuids of terminal updates.
    let mut accepted: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
    let mut terminal_uuids: BTreeSet<Uuid> = BTreeSet::new();
    for (position, event) in trace.iter().enumerate() {
        let task = event.field("task").unwrap_or_default().to_owned();
        let uuid = event.field("uuid").and_then(parse_uuid);
        match (event.decision, uuid) {
            (Some(Decision::UpdateAcknowledgedToExecutor), Some(uuid)) => {
                let agent = crate::observations::agent_of_host(&event.host).unwrap_or(1);
                let framework = event.field("framework").unwrap_or_default().to_owned();
                acked
                    .entry(uuid)
                    .or_insert((event.time, task, agent, position, framework));
            }
            (Some(Decision::StatusUpdateAccepted), Some(uuid)) => {
                let terminal = event
                    .field("state")
                    .and_then(revenant::proto::TaskState::from_str_name)
                    .is_some_and(revenant::domain::task_state::is_terminal);
                if terminal {
                    terminal_uuids.insert(uuid);
                }
                accepted.entry(task).or_default().push(uuid)
            }
            _ => {}
        }
    }
    // Uuids that reached the framework carrying a terminal state.
    let terminal_seen: BTreeSet<Uuid> = observations
        .seen
        .iter()
        .filter(|s| revenant::domain::task_state::is_terminal(s.state))
        .filter_map(|s| s.uuid)
        .collect();
    // L9: behind a terminal update of its stream that reached the framework.
    let behind_delivered_terminal = |task: &str, uuid: &Uuid| {
        accepted.get(task).is_some_and(|order| {
            order
                .iter()
                .take_while(|u| *u != uuid)
                .any(|u| terminal_uuids.contains(u) && seen.contains(u))
        })
    };
    for (uuid, (time, task, agent, position, framework)) in &acked {
        if seen.contains(uuid)
            || observations.framework_gone(task)
            || behind_delivered_terminal(task, uuid)
        {
            continue;
        }
        let after_terminal = acked
            .iter()
            .any(|(other, (_, other_task, _, other_position, _))| {
                other_task == task && other_position < position && terminal_seen.contains(other)
            });
        if after_terminal {
            continue;
        }
        let rebooted_after = observations.reboots.iter().any(|r| r >= time);
        let left_after = left_the_cluster_after(observations, *agent, *time);
        let fate_told_by_master = observations.seen.iter().any(|s| {
            s.task == *task
                && s.uuid.is_none()
                && revenant::domain::task_state::is_terminal(s.state)
        });
        let wiped_after = framework_meta_wiped_after(observations, *agent, framework, *time);
        if !rebooted_after && !left_after && !fate_told_by_master && !wiped_after {
            out.push(Violation {
                time: *time,
                oracle: "delivery",
                message: format!("update {uuid} of task {task} was acknowledged to the executor but never reached the framework"),
            });
        }
    }
    // Order: the first arrival of each uuid follows the agent's acceptance order.
    for (task, order) in &accepted {
        let arrivals: Vec<Uuid> = {
            let mut first = Vec::new();
            for s in observations.seen.iter().filter(|s| &s.task == task) {
                if let Some(uuid) = s.uuid {
                    if !first.contains(&uuid) {
                        first.push(uuid);
                    }
                }
            }
            first
        };
        let positions: Vec<usize> = arrivals
            .iter()
            .filter_map(|u| order.iter().position(|o| o == u))
            .collect();
        if positions.windows(2).any(|w| w[0] > w[1]) {
            out.push(Violation {
                time: observations
                    .seen
                    .iter()
                    .find(|s| &s.task == task)
                    .map(|s| s.time)
                    .unwrap_or_default(),
                oracle: "delivery",
                message: format!("updates of task {task} reached the framework out of order"),
            });
        }
    }
    out
}
