//! Rule L39 of `docs/task-lifecycle.md` (oracle `non_checkpointing_meta`): nothing of a
//! framework that does not checkpoint goes under `meta/`. In a run whose frameworks do
//! not checkpoint (`checkpoint = false`), no agent process makes a directory under
//! `meta/slaves/<agent>/frameworks/`: every checkpoint of a framework (its info, its
//! executors, runs, tasks, updates, pid files and sentinels) lives below
//! `frameworks/<framework>/`, so the first write made for one anyway makes that
//! directory. Judged at the moment the directory is made, from what the simulated disk
//! saw each agent process do (`crate::disk_work`, outside the code under test), so a
//! write that garbage collection later removes is caught too; the scenarios' end state
//! (`collected`) sees only what is left.

use std::collections::BTreeSet;
use std::path::{Component, Path};

use super::Violation;
use crate::disk_work::{Actor, Done, Work};

/// Whether `path` lies under a `meta/slaves/<agent>/frameworks/` directory.
fn under_frameworks(path: &Path) -> bool {
    let names: Vec<&std::ffi::OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .collect();
    names
        .windows(4)
        .any(|w| w[0] == "meta" && w[1] == "slaves" && w[3] == "frameworks")
}

/// Checks L39 on the records `done` of a run whose frameworks checkpoint or not
/// (`checkpoint`): the first directory each agent incarnation made under `frameworks/`.
pub fn check(checkpoint: bool, done: &[Done]) -> Vec<Violation> {
    if checkpoint {
        return Vec::new();
    }
    let mut seen: BTreeSet<Actor> = BTreeSet::new();
    let mut out: Vec<Violation> = Vec::new();
    for record in done {
        if record.work != Work::DirCreated
            || !under_frameworks(&record.path)
            || !seen.insert(record.actor)
        {
            continue;
        }
        out.push(Violation {
            time: record.time,
            oracle: "non_checkpointing_meta",
            message: format!(
                "agent {} incarnation {} made '{}' for a framework that does not checkpoint (docs/task-lifecycle.md L39)",
                record.actor.agent,
                record.actor.incarnation,
                record.path.display()
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;

    fn made(path: &str) -> Done {
        Done {
            time: Duration::from_secs(3),
            actor: Actor {
                agent: 1,
                incarnation: 1,
            },
            path: PathBuf::from(path),
            work: Work::DirCreated,
        }
    }

    const RUN: &str = "/var/lib/revenant/meta/slaves/a1/frameworks/f1/executors/e1/runs/r1";

    #[test]
    fn a_directory_for_a_non_checkpointing_framework_is_reported_once_per_incarnation() {
        let found = check(false, &[made(RUN), made(RUN)]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].oracle, "non_checkpointing_meta");
        assert!(found[0].message.contains(RUN), "{}", found[0].message);
    }

    #[test]
    fn the_agent_s_own_directories_and_checkpointing_runs_are_not_reported() {
        let own = [
            made("/var/lib/revenant/meta/slaves/a1"),
            made("/var/lib/revenant/slaves/a1/frameworks/f1/executors/e1/runs/r1"),
        ];
        assert!(check(false, &own).is_empty());
        assert!(check(true, &[made(RUN)]).is_empty());
    }
}
