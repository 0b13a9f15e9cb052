//! Rule 18 of `docs/lifecycle-rules.md`: garbage collection never removes a directory of
//! something live. When the agent starts removing a directory tree (meta or sandbox:
//! a run's, an executor's, a framework's or an old agent's), no executor process whose
//! run the tree holds is alive at that moment, and no task whose directory the tree
//! holds is still open as its framework sees it (its framework has not heard a
//! terminal state for it yet), unless its framework is gone for good (torn down,
//! removed, left: docs/lifecycle-rules.md rule 12, whose directories go with it) or the
//! tree is a whole old agent's (`slaves/<id>`: after a reboot or a removal nothing of
//! it can run or be reported by it again, and the master reports its tasks lost).
//! Judged from the simulated disk (what the removed tree held, read just before its
//! first unlink, `crate::gc_watch`), the simulated process table (`crate::history`)
//! and the updates the frameworks received, never from the agent's log.

use std::collections::BTreeMap;

use revenant::domain::task_state::is_terminal;
use revenant::proto::TaskState;

use super::Violation;
use crate::observations::Observations;

/// Checks the rule.
pub fn check(observations: &Observations) -> Vec<Violation> {
    let mut out = Vec::new();
    for removal in &observations.gc_removals {
        let alive: Vec<String> = observations
            .history
            .processes
            .iter()
            .filter(|p| removal.runs.contains(&p.container))
            .filter(|p| p.started <= removal.time)
            .filter(|p| p.ended.as_ref().is_none_or(|(at, _)| *at > removal.time))
            .map(|p| {
                format!(
                    "executor {} (pid {}, run {})",
                    p.executor_id, p.pid, p.container
                )
            })
            .collect();
        if !alive.is_empty() {
            out.push(Violation {
                time: removal.time,
                oracle: "gc_live",
                message: format!(
                    "garbage collection removed {} while {} still ran in it (docs/lifecycle-rules.md rule 18)",
                    removal.path,
                    alive.join(", ")
                ),
            });
        }
        // A whole old agent's tree (`slaves/<id>`, meta or sandbox) is collected once the
        // agent is a new one: nothing of the old agent can run or be reported by it any
        // more, and the master tells the frameworks its tasks are lost in its own time.
        let old_agent = std::path::Path::new(&removal.path)
            .parent()
            .and_then(|p| p.file_name())
            .is_some_and(|name| name == "slaves");
        if old_agent {
            continue;
        }
        // What each task's framework had heard by then: its first terminal state, or
        // its latest state while none was terminal.
        let mut heard: BTreeMap<&str, TaskState> = BTreeMap::new();
        for seen in observations
            .seen
            .iter()
            .filter(|s| s.time <= removal.time && removal.tasks.contains(&s.task))
        {
            if !heard
                .get(seen.task.as_str())
                .is_some_and(|s| is_terminal(*s))
            {
                heard.insert(seen.task.as_str(), seen.state);
            }
        }
        let open: Vec<String> = removal
            .tasks
            .iter()
            .filter(|task| !observations.framework_gone(task))
            .filter_map(|task| match heard.get(task.as_str()) {
                Some(state) if is_terminal(*state) => None,
                Some(state) => Some(format!("{task} ({})", state.as_str_name())),
                None => Some(format!("{task} (nothing heard yet)")),
            })
            .collect();
        if !open.is_empty() {
            out.push(Violation {
                time: removal.time,
                oracle: "gc_live",
                message: format!(
                    "garbage collection removed {} while its framework still saw {} open (docs/lifecycle-rules.md rule 18)",
                    removal.path,
                    open.join(", ")
                ),
            });
        }
    }
    out
}
