//! The checkpoint store: the agent's meta directory, every write to it, and its recovery.
//!
//! - [`paths`] builds every path of the layout (docs/checkpoint-format.md §1);
//! - [`record`] frames records so that a torn tail is told apart from corruption;
//! - [`store`] holds the writers, the only code that writes the meta directory;
//! - [`recover`] reads the tree back with strict and non-strict semantics;
//! - [`lock_work_dir`] keeps a second agent off the same work directory.

pub mod paths;
pub mod record;
pub mod recover;
pub mod store;

use std::path::Path;

use crate::os::{FileLock, FileSystem, LockError};

pub use recover::{
    make_durable, make_durable_meanwhile, recover, ReadSet, RecoverOptions, RecoveryError, State,
    Warning, WarningKind,
};
pub use store::{CheckpointStore, ForkedPid, StoreError};

/// Takes the exclusive lock of `work_dir` (creating the directory if needed), recording
/// `holder` (for example `pid 1234 started 2026-11-22T10:00:00Z`). A second agent on the
/// same directory gets [`LockError::Held`] naming the first.
pub fn lock_work_dir(
    fs: &dyn FileSystem,
    work_dir: &Path,
    holder: &str,
) -> Result<Box<dyn FileLock>, LockError> {
    fs.create_dir_all_durably(work_dir)
        .map_err(|source| LockError::Io {
            path: work_dir.to_path_buf(),
            source,
        })?;
    fs.lock_exclusive(&paths::lock_file(work_dir), holder)
}
