//! Rules P67-P69 and P73 of `docs/recovery-latency.md`: an agent process does no disk work for
//! nothing. P67: within one process incarnation, a file or directory is not synced again
//! when nothing was written to it (data, length, entries) since that incarnation's last
//! completed sync of it (a new incarnation's first sync is always allowed). P68: a
//! truncate changes the file's length (recovery cuts a torn or damaged tail; a cut to
//! the length the file has is no cut). P69: a directory removal that found the path
//! already gone is complete: the same incarnation does not try to remove that path
//! again, unless a removal in between found it there. P73: until an incarnation's
//! recovery completes (its `meta/boot_id` put in place), it puts no file in place of one
//! with the same bytes (the boot id itself excepted).
//! Judged from what the simulated disk saw each agent process do (`crate::disk_work`,
//! recorded by the simulated filesystem outside the code under test, docs/design.md
//! D87), never from the agent's log or counters.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::Violation;
use crate::disk_work::{Actor, Done, Work};

/// Checks the three rules on the records `done` of a run.
pub fn check(done: &[Done]) -> Vec<Violation> {
    let mut out = Vec::new();
    // P69: per incarnation and path, whether the last removal found the path gone.
    let mut gone: BTreeMap<(Actor, &PathBuf), bool> = BTreeMap::new();
    // One violation per incarnation and path for P67 and P69: a loop repeats them.
    let mut synced: BTreeSet<(Actor, &PathBuf)> = BTreeSet::new();
    let mut retried: BTreeSet<(Actor, &PathBuf)> = BTreeSet::new();
    let mut replaced: BTreeSet<(Actor, &PathBuf)> = BTreeSet::new();
    // P73: the incarnations whose recovery completed (their boot id put in place).
    let mut recovered: BTreeSet<Actor> = BTreeSet::new();
    for record in done {
        let who = format!(
            "agent {} incarnation {}",
            record.actor.agent, record.actor.incarnation
        );
        match &record.work {
            Work::RepeatedSync { dir } => {
                if synced.insert((record.actor, &record.path)) {
                    out.push(Violation {
                        time: record.time,
                        oracle: "repeated_sync",
                        message: format!(
                            "{who} synced {} '{}' again with nothing written to it since its own last completed sync of it (docs/recovery-latency.md P67)",
                            if *dir { "directory" } else { "file" },
                            record.path.display()
                        ),
                    });
                }
            }
            Work::NoOpTruncate { length } => out.push(Violation {
                time: record.time,
                oracle: "no_op_truncate",
                message: format!(
                    "{who} truncated '{}' to {length} bytes, the length it already had (docs/recovery-latency.md P68)",
                    record.path.display()
                ),
            }),
            Work::BootIdPlaced => {
                recovered.insert(record.actor);
            }
            Work::IdenticalReplace => {
                let recovering = !recovered.contains(&record.actor);
                if recovering
                    && !record.path.ends_with("meta/boot_id")
                    && replaced.insert((record.actor, &record.path))
                {
                    out.push(Violation {
                        time: record.time,
                        oracle: "identical_rewrite",
                        message: format!(
                            "{who} replaced '{}' with a file of the same bytes while it recovered (docs/recovery-latency.md P73)",
                            record.path.display()
                        ),
                    });
                }
            }
            // Records of other rules (R59, L39, P14), judged by their own oracles.
            Work::HeaderOverwritten { .. }
            | Work::DirCreated
            | Work::PlacedBeforeLogSynced { .. } => {}
            Work::Removal { absent } => {
                let before = gone.insert((record.actor, &record.path), *absent);
                if *absent
                    && before == Some(true)
                    && retried.insert((record.actor, &record.path))
                {
                    out.push(Violation {
                        time: record.time,
                        oracle: "gone_removal_retried",
                        message: format!(
                            "{who} tried again to remove '{}', which its earlier removal had already found gone (docs/recovery-latency.md P69)",
                            record.path.display()
                        ),
                    });
                }
            }
        }
    }
    out
}
