//! Garbage collection's decisions (docs/design.md D52-D54, docs/lifecycle-rules.md
//! rules 3-6 and 24): what is scheduled for when, what is due at `now` and in which
//! order it goes, how a filling disk brings collection forward, and how a meta record's
//! delay follows its sandbox's. Nothing here reads a clock or touches the disk: the
//! driver (`gc.rs`) measures the directories' ages and usage and performs the removals
//! ([`Effect::RemoveDir`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use super::effects::Effect;

/// The directories scheduled for collection, each with the time it is due.
#[derive(Debug, Default)]
pub(super) struct GcSchedule {
    due: BTreeMap<PathBuf, Instant>,
}

impl GcSchedule {
    /// Schedules `path` for `at` (a directory scheduled twice keeps one entry, the
    /// later time).
    pub fn schedule(&mut self, path: PathBuf, at: Instant) {
        self.due.insert(path, at);
    }

    /// Rule 4: unschedules every scheduled directory that `meta` or `sandbox` lies in
    /// (a run is launched there); returns them, in path order.
    pub fn unschedule_containing(&mut self, meta: &Path, sandbox: &Path) -> Vec<PathBuf> {
        let scheduled: Vec<PathBuf> = self
            .due
            .keys()
            .filter(|p| meta.starts_with(p) || sandbox.starts_with(p))
            .cloned()
            .collect();
        for path in &scheduled {
            self.due.remove(path);
        }
        scheduled
    }

    /// When the next directory is due.
    pub fn next(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }

    /// D53: with the disk `usage` full (0 to 1), a directory is collected once it is
    /// older than `gc_delay * max(0, 1 - headroom - usage)` (headroom 0.1): every
    /// entry due by then is brought forward to `now`.
    pub fn prune(&mut self, now: Instant, gc_delay: Duration, usage: f64) {
        let headroom = 0.1;
        let factor = (1.0 - headroom - usage).max(0.0);
        let max_age = gc_delay.mul_f64(factor);
        let prune_before = now + gc_delay.saturating_sub(max_age);
        for at in self.due.values_mut() {
            if *at <= prune_before && *at > now {
                *at = now;
            }
        }
    }

    /// What is due at `now`, taken off the schedule, as removals in rule 6's order
    /// (sandboxes before `meta_root`, the deepest first; `meta_first` is the test-only
    /// broken order: path order). A removal that fails is scheduled again for
    /// `now + retry` by the driver.
    pub fn take_due(
        &mut self,
        now: Instant,
        meta_root: &Path,
        meta_first: bool,
        retry: Duration,
    ) -> Vec<Effect> {
        let mut due: Vec<PathBuf> = self
            .due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(p, _)| p.clone())
            .collect();
        removal_order(&mut due, meta_root, meta_first);
        due.into_iter()
            .map(|path| {
                self.due.remove(&path);
                Effect::RemoveDir {
                    path,
                    retry_at: now + retry,
                }
            })
            .collect()
    }
}

/// Rule 6: directories due together are removed sandboxes first, then those under
/// `meta_root`, and within each the deepest first, so that what records a directory
/// goes last.
pub(super) fn removal_order(due: &mut [PathBuf], meta_root: &Path, meta_first: bool) {
    if meta_first {
        due.sort();
        return;
    }
    due.sort_by(|a, b| {
        let key = |p: &PathBuf| {
            (
                p.starts_with(meta_root),
                std::cmp::Reverse(p.components().count()),
            )
        };
        key(a).cmp(&key(b)).then_with(|| a.cmp(b))
    });
}

/// Rule 5: what is left of `gc_delay` for a directory last modified `age` ago.
pub(super) fn aged(gc_delay: Duration, age: Duration) -> Duration {
    gc_delay.saturating_sub(age)
}

/// Rule 24 (D54): the delays of a sandbox and the meta record of it, each `None` when
/// the directory is not there: the meta record is due no earlier than the sandbox.
pub(super) fn meta_after_sandbox(
    sandbox: Option<Duration>,
    meta: Option<Duration>,
) -> (Option<Duration>, Option<Duration>) {
    (
        sandbox,
        meta.map(|delay| delay.max(sandbox.unwrap_or_default())),
    )
}
