//! The disk faults that fired, recorded by the simulated filesystem outside the code
//! under test (docs/recovery-rules.md R23): which operation on which path failed, and
//! when (simulated time). The `recovery_read_error` oracle reads it after the run.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::fs_op::Op;

/// One operation a disk fault failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fired {
    /// When (simulated time).
    pub time: Duration,
    /// The operation.
    pub op: Op,
    /// Its path.
    pub path: PathBuf,
}

thread_local! {
    static FIRED: RefCell<Vec<Fired>> = const { RefCell::new(Vec::new()) };
}

fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_else(|| crate::clock::DRIVER_TIME.with(|t| t.get()))
}

/// Forgets the faults of an earlier run (called where the run begins).
pub fn begin() {
    FIRED.with(|fired| fired.borrow_mut().clear());
}

/// A disk fault failed `op` on `path` (called by the simulated filesystem).
pub fn fired(op: Op, path: &Path) {
    FIRED.with(|fired| {
        fired.borrow_mut().push(Fired {
            time: now(),
            op,
            path: path.to_path_buf(),
        })
    });
}

/// The faults fired so far in this run.
pub fn so_far() -> Vec<Fired> {
    FIRED.with(|fired| fired.borrow().clone())
}
