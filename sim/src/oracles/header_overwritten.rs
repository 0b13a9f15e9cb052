//! Rule R59 of `docs/recovery-rules.md` (oracle `header_overwritten`): the agent never
//! opens with truncation and writes over, in place, a file whose bytes begin with a whole
//! synced checkpoint header of its own, other than a temporary it is about to rename (a
//! temporary left by a crash holds nothing any recovery reads). Such a write opens a
//! window in which a power loss leaves the file empty or, with the zero-fill of
//! docs/crash-points.md CP-7, with a header of zeroes: a checkpoint that was durable is
//! then lost or read as damage. Judged from what the simulated disk saw each agent
//! process do (`crate::disk_work`, recorded by the simulated filesystem outside the code
//! under test), never from the agent's log.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::Violation;
use crate::disk_work::{Actor, Done, Work};

/// Whether `path` is a temporary of `revenant::os::temp_path_for` (`.NAME.tmp`).
fn is_temporary(path: &std::path::Path) -> bool {
    path.file_name()
        .map(|name| name.to_string_lossy())
        .is_some_and(|name| name.starts_with('.') && name.ends_with(".tmp"))
}

/// Checks R59 on the records `done` of a run: one violation per incarnation and path.
pub fn check(done: &[Done]) -> Vec<Violation> {
    let mut seen: BTreeSet<(Actor, &PathBuf)> = BTreeSet::new();
    let mut out = Vec::new();
    for record in done {
        let Work::HeaderOverwritten { durable } = record.work else {
            continue;
        };
        if is_temporary(&record.path) || !seen.insert((record.actor, &record.path)) {
            continue;
        }
        out.push(Violation {
            time: record.time,
            oracle: "header_overwritten",
            message: format!(
                "agent {} incarnation {} overwrote '{}' in place, whose {durable} synced bytes began with a whole checkpoint header (docs/recovery-rules.md R59)",
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
    use std::path::Path;
    use std::time::Duration;

    use super::*;

    fn overwritten(path: &str) -> Done {
        Done {
            time: Duration::from_secs(1),
            actor: Actor {
                agent: 1,
                incarnation: 2,
            },
            path: PathBuf::from(path),
            work: Work::HeaderOverwritten { durable: 30 },
        }
    }

    #[test]
    fn an_overwritten_log_is_reported_once_naming_the_file() {
        let log = "/var/lib/revenant/meta/slaves/a/task.updates";
        let found = check(&[overwritten(log), overwritten(log)]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].oracle, "header_overwritten");
        assert!(found[0].message.contains(log), "{}", found[0].message);
        assert!(found[0].message.contains("R59"), "{}", found[0].message);
    }

    #[test]
    fn a_temporary_is_not_reported() {
        assert!(is_temporary(Path::new("/w/meta/.slave.info.tmp")));
        assert!(check(&[overwritten("/w/meta/.slave.info.tmp")]).is_empty());
        assert!(!is_temporary(Path::new("/w/meta/slave.info")));
    }
}
