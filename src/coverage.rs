//! Coverage points: named recovery branches whose reach the simulator counts (rules in
//! `docs/crash-points.md`, CV-1 to CV-4).
//!
//! `crate::coverage::point!("reboot_detected");` marks a branch. Without the cargo
//! feature `coverage` the macro expands to `()`, and neither the names nor the counters
//! exist in the build: the `revenant` binaries carry none of it (CV-2). The simulator's
//! dependency on this crate turns the feature on; each thread then keeps its own counts
//! (a simulation runs on one thread), which the simulator resets before a run and takes
//! after it.
//!
//! [`POINTS`] lists every name a `point!` call may use, so that a report can show the
//! points never reached (CV-3); a name outside the list is counted and reported as
//! unlisted.

/// Marks a coverage point (a no-op unless the `coverage` feature is on).
#[cfg(feature = "coverage")]
macro_rules! point {
    ($name:literal) => {
        $crate::coverage::hit($name)
    };
}

/// Marks a coverage point (a no-op unless the `coverage` feature is on).
#[cfg(not(feature = "coverage"))]
macro_rules! point {
    ($name:literal) => {
        ()
    };
}

pub(crate) use point;

#[cfg(feature = "coverage")]
pub use counting::*;

#[cfg(feature = "coverage")]
mod counting {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// Every coverage point, in the order of the code it sits in: checkpoint recovery,
    /// the agent's recovery, its executor handling, status updates, garbage collection,
    /// then the master.
    pub const POINTS: &[&str] = &[
        // src/checkpoint/recover.rs
        "recover_torn_tail_cut",
        "recover_invalid_record_cut",
        "recover_corrupt_file_counted",
        "recover_strict_stopped",
        // src/agent/mod.rs: recovery
        "agent_first_start",
        "agent_reboot_detected",
        "agent_resources_changed_compatibly",
        "agent_recovered",
        "agent_completed_run_recovered",
        "agent_live_executor_awaited",
        "agent_executor_gone_at_recovery",
        "agent_executor_reregistration_timeout",
        "agent_cleanup_shuts_executor_down",
        // executors
        "agent_executor_reregistered",
        "agent_task_lost_never_reached_executor",
        "agent_executor_registration_refused",
        "agent_executor_registration_timeout",
        "agent_orphan_executor_destroyed",
        "agent_executor_killed_after_grace_period",
        "agent_framework_shut_down",
        // status updates
        "agent_update_retried",
        "agent_update_resent_after_reregistration",
        "agent_duplicate_update_reacknowledged",
        "agent_update_after_terminal_refused",
        "agent_duplicate_ack_ignored",
        "agent_unexpected_ack_ignored",
        "agent_master_task_unknown_reported_lost",
        // runs and garbage collection
        "agent_executor_run_completed",
        "agent_garbage_collected",
        // executor ids chosen by the framework (docs/lifecycle-rules.md rules 4, 14, 15)
        "agent_task_for_terminated_executor_lost",
        "agent_launch_of_ended_task_dropped",
        "agent_old_run_rescheduled",
        "agent_unscheduled_for_launch",
        "agent_left_cluster",
        // src/master.rs
        "master_registration_retry_answered",
        "master_retried_registration_reconciled",
        "master_removed_agent_refused",
        "master_stale_agent_message_ignored",
        "master_recovering_agent_pinged",
        "master_agent_unreachable",
        "master_agent_reregister_timeout",
        "master_task_lost_with_agent",
        "master_reconciled_unknown_task",
        "master_reconciled_unknown_task_at_once",
        "master_framework_failover_timeout",
        // sim/src: a crash state the simulator made, not an agent branch
        // (docs/crash-points.md CP-7): a power loss left un-synced appended bytes as
        // zeroes.
        "sim_power_loss_zero_filled",
    ];

    thread_local! {
        static COUNTS: RefCell<BTreeMap<&'static str, u64>> = const { RefCell::new(BTreeMap::new()) };
        /// The clock that stamps each point's first reach (the simulator's time), if set.
        static CLOCK: std::cell::Cell<Option<fn() -> std::time::Duration>> = const { std::cell::Cell::new(None) };
        static FIRST: RefCell<BTreeMap<&'static str, std::time::Duration>> = const { RefCell::new(BTreeMap::new()) };
    }

    /// Counts one reach of `name` on this thread (and, with a clock set, stamps the
    /// first one).
    pub fn hit(name: &'static str) {
        COUNTS.with(|counts| *counts.borrow_mut().entry(name).or_default() += 1);
        if let Some(clock) = CLOCK.with(|c| c.get()) {
            FIRST.with(|first| {
                first.borrow_mut().entry(name).or_insert_with(clock);
            });
        }
    }

    /// Stamps each point's first reach on this thread with `clock` (the simulator's
    /// simulated time), for [`first_reached`] (docs/failing-runs.md F14).
    pub fn set_clock(clock: fn() -> std::time::Duration) {
        CLOCK.with(|c| c.set(Some(clock)));
    }

    /// When each point was first reached since the last [`reset`] (with a clock set).
    pub fn first_reached() -> BTreeMap<&'static str, std::time::Duration> {
        FIRST.with(|first| first.borrow().clone())
    }

    /// Forgets this thread's counts and first reaches.
    pub fn reset() {
        COUNTS.with(|counts| counts.borrow_mut().clear());
        FIRST.with(|first| first.borrow_mut().clear());
    }

    /// This thread's counts since the last [`reset`] (or [`take`]), which it clears.
    pub fn take() -> BTreeMap<&'static str, u64> {
        COUNTS.with(|counts| std::mem::take(&mut *counts.borrow_mut()))
    }
}
