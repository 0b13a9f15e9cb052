//! What an observer outside the code under test records during one run: a thread-local
//! value, emptied when the run begins and handed to the oracles when it ends
//! (docs/design.md D80). The network tap's recorders (`update_receipts`,
//! `reconcile_watch`) keep theirs in one; recording draws nothing and writes no trace
//! line, so it changes nothing in the run.

use std::cell::RefCell;
use std::thread::LocalKey;
use std::time::Duration;

/// A run's record of a `T`, kept in the thread-local `RefCell` it names.
pub struct RunRecord<T: 'static>(&'static LocalKey<RefCell<T>>);

impl<T: Default + 'static> RunRecord<T> {
    /// The record kept in `key`.
    pub const fn new(key: &'static LocalKey<RefCell<T>>) -> RunRecord<T> {
        RunRecord(key)
    }

    /// Starts a run with nothing recorded.
    pub fn begin(&self) {
        self.0.with(|record| *record.borrow_mut() = T::default());
    }

    /// What was recorded since [`RunRecord::begin`]; forgets it.
    pub fn take(&self) -> T {
        self.0
            .with(|record| std::mem::take(&mut *record.borrow_mut()))
    }

    /// Changes the record.
    pub fn with<R>(&self, change: impl FnOnce(&mut T) -> R) -> R {
        self.0.with(|record| change(&mut record.borrow_mut()))
    }
}

/// The simulated time of an observation: the network's, or the driver's outside it.
pub fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_else(|| crate::clock::DRIVER_TIME.with(|t| t.get()))
}
