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

use super::Violation;
use crate::observations::{agent_work_dir, Observations};

/// The messages an agent may send a process it does not take for an executor.
const REFUSALS: [&str; 1] = ["shutdown_executor"];

/// Checks the rules.
pub fn check(observations: &Observations) -> Vec<Violation> {
    let rogue = &observations.rogue;
    let mut out = Vec::new();
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
