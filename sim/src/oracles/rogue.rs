//! Rules SEC32-SEC34 of `docs/security.md`: nothing the rogue party (`crate::rogue`)
//! sends changes any task, executor or registry entry. Judged from what the outside
//! world saw, never from the agent's log:
//!
//! - (SEC32) the rogue is answered nothing an executor would be: no
//!   `ExecutorRegistered`, `ExecutorReregistered`, `RunTask`, `KillTask`, acknowledgement
//!   or any other message but `ShutdownExecutor` (the refusal of an executor the agent
//!   does not wait for) — recorded on the rogue's side of the connection;
//! - (SEC33) no framework receives a status update under a uuid the rogue forged (so no
//!   task's state, as its framework and the master see it, comes from the rogue);
//! - (SEC34) no `task.updates` file on the simulated disk at the end of the run holds a
//!   forged uuid (the agent never checkpointed a forged update, so no restart replays one).
//!
//! And for the rogue framework (`crate::rogue_framework`, SEC35-SEC42), a framework of a
//! principal the master's ACLs give no rights:
//!
//! - (SEC36) its task never runs: the master answers it no update but its own task's
//!   TASK_ERROR, no executor of it is on the process table at the end, and no directory
//!   of its framework is on the agent's disk;
//! - (SEC37) no other framework is torn down by it: no framework hears a task end with
//!   the teardown message unless the scenario tore that framework down itself;
//! - (SEC38) no reservation for its role is checkpointed in any `resources.info`;
//! - (SEC39) it is answered nothing but its own registration, refusals, its task's
//!   TASK_ERROR, `NotLeader` and pings, and `FrameworkRemoved` only for the framework it
//!   attacked once the outside world saw that framework gone for good;
//! - (SEC41) its re-registration with another framework's id is never answered
//!   `FrameworkRegistered`, and no update of another framework's task reaches it.

use std::time::Duration;

use super::Violation;
use crate::observations::{agent_work_dir, Observations};
use crate::rogue_framework::{FIRST, ROGUE_ROLE, ROGUE_TASK};

/// The messages an agent may send a process it does not take for an executor.
const REFUSALS: [&str; 1] = ["shutdown_executor"];

/// Checks the rules.
pub fn check(observations: &Observations) -> Vec<Violation> {
    let rogue = &observations.rogue;
    let mut out = check_framework(observations);
    if rogue.sent.is_empty() {
        return out;
    }
    for (time, kind, attempt) in &rogue.received {
        if !REFUSALS.contains(kind) {
            out.push(Violation {
                time: *time,
                oracle: "rogue",
                message: format!("the agent answered a rogue process's {attempt} with {kind}"),
            });
        }
    }
    for seen in &observations.seen {
        let Some(uuid) = &seen.uuid else { continue };
        if rogue.forged_uuids.contains(uuid.0.as_slice()) {
            out.push(Violation {
                time: seen.time,
                oracle: "rogue",
                message: format!(
                    "a framework received the rogue's forged update of {}: {} ({})",
                    seen.task,
                    seen.state.as_str_name(),
                    seen.reason
                ),
            });
        }
    }
    let work_dir = agent_work_dir(1);
    // Seen on the disk at the end; dated at the rogue's last attempt.
    let end = rogue.sent.last().map(|(time, _)| *time).unwrap_or_default();
    for uuid in &rogue.forged_uuids {
        let files = crate::rogue::files_containing(
            observations
                .disk_at_end
                .iter()
                .filter(|(path, _)| crate::rogue::is_updates_file(path, &work_dir))
                .map(|(path, (entry, _))| (path, entry)),
            uuid,
        );
        for path in files {
            out.push(Violation {
                time: end,
                oracle: "rogue",
                message: format!(
                    "a forged update's uuid is checkpointed in {}",
                    path.display()
                ),
            });
        }
    }
    out
}

/// The messages a master may send a framework it refuses everything but registration.
const FRAMEWORK_ANSWERS: [&str; 6] = [
    "framework_registered",
    "framework_error",
    "framework_removed",
    "status_update",
    "not_leader",
    "ping",
];

/// When the scenario's framework `index` was gone for good as the outside world saw it
/// (its scheduler tore it down or left for good, or the master told it it was removed),
/// if it was.
fn gone_at(observations: &Observations, index: u32) -> Option<Duration> {
    let removed = observations
        .history
        .frameworks_removed
        .iter()
        .filter(|(_, framework)| *framework == index)
        .map(|(time, _)| *time);
    [
        observations.torn_down.get(&index).copied(),
        observations.left_frameworks.get(&index).copied(),
    ]
    .into_iter()
    .flatten()
    .chain(removed)
    .min()
}

/// Whether the scenario's framework `index` was told by the master that it was removed
/// for another reason than a teardown (its failover timeout ran out while its scheduler
/// was away): a removal no teardown caused (SEC39).
fn removed_not_torn_down(observations: &Observations, index: u32) -> bool {
    observations
        .removal_messages
        .get(&index)
        .is_some_and(|message| !message.contains(TORN_DOWN))
}

/// What a framework torn down is told when it hears of its removal.
const TORN_DOWN: &str = "torn down";

/// SEC36-SEC39, SEC41: the rogue framework's record against the frameworks, the process
/// table and the disk.
fn check_framework(observations: &Observations) -> Vec<Violation> {
    let rogue = &observations.rogue;
    let mut out = Vec::new();
    let Some(id) = &rogue.framework_id else {
        return out;
    };
    let at = rogue
        .framework_sent
        .first()
        .map(|(time, _)| *time)
        .unwrap_or_default();
    let mut violation = |time, message: String| {
        out.push(Violation {
            time,
            oracle: "rogue",
            message,
        })
    };
    let own_task_error = format!("{ROGUE_TASK} TASK_ERROR");
    for (time, kind, detail) in &rogue.framework_received {
        // "own <what it names>" or "failover <what it names>".
        let (connection, names) = detail.split_once(' ').unwrap_or((detail, ""));
        let framework = names.split(':').next().unwrap_or_default();
        let refused = match *kind {
            _ if !FRAMEWORK_ANSWERS.contains(kind) => false,
            // SEC39, SEC41: registered as itself only, on its own connection.
            "framework_registered" => connection == FIRST && framework == id.as_str(),
            // SEC36: its own task, refused.
            "status_update" => names == own_task_error,
            // SEC39: a framework already gone is answered that it is gone, which tells
            // the rogue nothing and changes nothing; any other removal is one it caused.
            "framework_removed" => rogue.attacked.as_ref().is_some_and(|(index, victim)| {
                framework == victim.as_str()
                    && (gone_at(observations, *index).is_some_and(|gone| gone <= *time)
                        || removed_not_torn_down(observations, *index))
            }),
            _ => true,
        };
        if !refused {
            violation(
                *time,
                format!(
                    "the master answered the rogue framework {id} with {kind} ({detail}): not a refusal"
                ),
            );
        }
    }
    if observations.live_executors_at_end.contains(ROGUE_TASK) {
        violation(
            at,
            format!("the rogue framework's executor {ROGUE_TASK} is on the process table"),
        );
    }
    for path in observations.disk_at_end.keys() {
        if path.components().any(|c| c.as_os_str() == id.as_str()) {
            violation(
                at,
                format!(
                    "the rogue framework's directory is on the agent's disk: {}",
                    path.display()
                ),
            );
            break;
        }
    }
    for seen in &observations.seen {
        if seen.reason.contains("framework was torn down")
            && !observations.torn_down_tasks.contains(&seen.task)
            && !observations.gone_tasks.contains(&seen.task)
        {
            let attacked = rogue.attacked.as_ref().map_or(String::new(), |(index, f)| {
                format!(" (the rogue asked to tear down framework {index}, {f})")
            });
            violation(
                seen.time,
                format!(
                    "{} ended by a teardown its framework never asked for{attacked}",
                    seen.task
                ),
            );
        }
    }
    let resources = crate::rogue::files_containing(
        observations
            .disk_at_end
            .iter()
            .filter(|(path, _)| path.file_name().is_some_and(|n| n == "resources.info"))
            .map(|(path, (entry, _))| (path, entry)),
        ROGUE_ROLE.as_bytes(),
    );
    for path in resources {
        violation(
            at,
            format!(
                "a reservation for the rogue framework's role is checkpointed in {}",
                path.display()
            ),
        );
    }
    out
}
