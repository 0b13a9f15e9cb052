//! The evidence for rule 18 of `docs/lifecycle-rules.md` (garbage collection never
//! removes a directory of a live run), recorded outside the code under test: each time
//! the agent starts removing a directory tree (`remove_dir_all` through its filesystem
//! handle, which only garbage collection calls), the simulated disk is read, just
//! before the first unlink, for the runs (`runs/<container>`) and tasks
//! (`tasks/<task>`) the tree holds, meta or sandbox. The `gc_live` oracle then compares
//! each removal with the simulated process table and with what the frameworks had
//! heard at that moment. Nothing here reads the agent's log.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Component, Path};
use std::time::Duration;

use crate::fs::SimFs;

/// One directory tree the agent started to remove.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Removal {
    /// When (simulated time).
    pub time: Duration,
    /// The directory.
    pub path: String,
    /// The runs (container ids) whose directory is, or is inside, the removed tree.
    pub runs: BTreeSet<String>,
    /// The tasks whose checkpoint (`task.info`) is inside the removed tree (meta only). A
    /// task directory without its `task.info` checkpoints nothing (rule 18's last
    /// paragraph).
    pub tasks: BTreeSet<String>,
}

thread_local! {
    static REMOVALS: RefCell<Vec<Removal>> = const { RefCell::new(Vec::new()) };
}

fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_else(|| crate::trace::DRIVER_TIME.with(|t| t.get()))
}

/// Forgets the removals of an earlier run.
pub fn begin() {
    REMOVALS.with(|removals| removals.borrow_mut().clear());
}

/// The removals of the run so far; forgets them.
pub fn take() -> Vec<Removal> {
    REMOVALS.with(|removals| std::mem::take(&mut *removals.borrow_mut()))
}

/// The agent starts removing `path` on `disk`.
pub fn removing(disk: &SimFs, path: &Path) {
    let mut removal = Removal {
        time: now(),
        path: path.display().to_string(),
        ..Removal::default()
    };
    // The run the removed directory itself lies in, if any (a run's own directory).
    note(path, &mut removal);
    for below in disk.paths_under(path) {
        note(&below, &mut removal);
    }
    REMOVALS.with(|removals| removals.borrow_mut().push(removal));
}

/// Records the run and task `path` names (the component after `runs`; after `tasks`
/// when `path` is that task's `task.info`).
fn note(path: &Path, removal: &mut Removal) {
    let names: Vec<&str> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => name.to_str(),
            _ => None,
        })
        .collect();
    for pair in names.windows(2) {
        if let ["runs", run] = pair {
            if *run != "latest" && !removal.runs.contains(*run) {
                removal.runs.insert((*run).to_owned());
            }
        }
    }
    if let [.., "tasks", task, "task.info"] = names.as_slice() {
        removal.tasks.insert((*task).to_owned());
    }
}
