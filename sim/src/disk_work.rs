//! The disk work an agent process did for nothing, recorded by the simulated filesystem
//! outside the code under test (docs/design.md D87): a sync of a file or directory that
//! nothing was written to since the same process incarnation's last completed sync of
//! it, a truncate to the file's own length, and each directory removal with whether it
//! found the path there. The `wasted_disk_work` oracle reads it after the run
//! (docs/recovery-latency.md P67-P69). The same record carries what three more oracles
//! judge of the agent's disk: a synced header written over in place
//! (`header_overwritten`, docs/recovery-rules.md R59), each directory made
//! (`non_checkpointing_meta`, docs/task-lifecycle.md L39), and a file put in place
//! before a log it appended to was synced (`write_order`, P14). Only the operations of an agent process's handle
//! ([`crate::fs::SimFs::for_agent`]) are recorded; the simulator's own reads, the
//! executors' and the operator's faults are not.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which agent process did an operation: the agent (1, 2, ... on the machine) and its
/// incarnation (1, 2, ...: one per process start).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Actor {
    /// The agent.
    pub agent: u32,
    /// The process incarnation.
    pub incarnation: u64,
}

/// What was done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Work {
    /// A sync (`fsync`/`fdatasync`) of a file (`dir: false`) or a directory that nothing
    /// was written to (data, length, entries) since this incarnation's last completed
    /// sync of it.
    RepeatedSync {
        /// A directory's sync.
        dir: bool,
    },
    /// A truncate of a file to the length it already had.
    NoOpTruncate {
        /// That length.
        length: u64,
    },
    /// A file renamed over one whose bytes (as the page cache holds them) are the same:
    /// a checkpoint rewritten with what it already held.
    IdenticalReplace,
    /// The boot id put in place (`meta/boot_id` renamed into place), which recovery
    /// does once, as it completes (the same mark `pacing` reads).
    BootIdPlaced,
    /// A file whose bytes, both as the page cache holds them and as synced, begin with
    /// a whole checkpoint header of the agent's, opened with truncation and written
    /// over in place (docs/recovery-rules.md R59: the `header_overwritten` oracle).
    HeaderOverwritten {
        /// How many of its bytes were synced.
        durable: u64,
    },
    /// A file put in place (renamed over its name) while a log the same process had
    /// appended to still held bytes no sync covered (docs/recovery-latency.md P14: the
    /// `write_order` oracle).
    PlacedBeforeLogSynced {
        /// That log.
        log: PathBuf,
    },
    /// A directory made (`create_dir`, and so each level `create_dir_all` makes): the
    /// `non_checkpointing_meta` oracle (docs/task-lifecycle.md L39) reads these.
    DirCreated,
    /// A directory removal (`remove_dir_all`) that got past the disk's faults.
    Removal {
        /// Whether the path was already gone.
        absent: bool,
    },
}

/// One operation of [`Work`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Done {
    /// When (simulated time).
    pub time: Duration,
    /// Who.
    pub actor: Actor,
    /// The path it named.
    pub path: PathBuf,
    /// What.
    pub work: Work,
}

thread_local! {
    static DONE: RefCell<Vec<Done>> = const { RefCell::new(Vec::new()) };
}

fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_else(|| crate::clock::DRIVER_TIME.with(|t| t.get()))
}

/// Forgets the records of an earlier run (called where the run begins).
pub fn begin() {
    DONE.with(|done| done.borrow_mut().clear());
}

/// `actor` did `work` on `path` (called by the simulated filesystem).
pub fn done(actor: Actor, path: &Path, work: Work) {
    DONE.with(|done| {
        done.borrow_mut().push(Done {
            time: now(),
            actor,
            path: path.to_path_buf(),
            work,
        })
    });
}

/// The records so far in this run.
pub fn so_far() -> Vec<Done> {
    DONE.with(|done| done.borrow().clone())
}
