//! Which exploration branch (`crate::explore`) this thread runs, below the seams that
//! reseed their random streams from it and the fault schedule that redraws after its
//! moment (docs/design.md D62).

use std::cell::Cell;
use std::time::Duration;

use crate::seed::derive_seed;

/// Where a branch leaves its parent run, and which of the parent's branches it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Branch {
    /// The moment (simulated time) the parent first reached the rare point.
    pub at: Duration,
    /// The branch's index (1, 2, ...): its fresh randomness derives from it.
    pub index: u64,
}

impl Branch {
    /// `AT:K` (seconds, index), as `run --branch` takes it and a repro file records it.
    pub fn parse(text: &str) -> Result<Branch, String> {
        let (at, index) = text
            .split_once(':')
            .ok_or_else(|| format!("--branch takes AT:K (seconds:index), not '{text}'"))?;
        let at: f64 = at
            .parse()
            .map_err(|_| format!("bad branch moment '{at}' (seconds)"))?;
        if !at.is_finite() || at < 0.0 {
            return Err(format!("bad branch moment '{at}' (seconds, at least 0)"));
        }
        let index = index
            .parse()
            .map_err(|_| format!("bad branch index '{index}'"))?;
        Ok(Branch {
            at: Duration::from_micros((at * 1e6).round() as u64),
            index,
        })
    }
}

impl std::fmt::Display for Branch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.6}:{}", self.at.as_secs_f64(), self.index)
    }
}

thread_local! {
    static BRANCH: Cell<Option<Branch>> = const { Cell::new(None) };
}

/// Runs `body` as branch `branch` (none: the plain run) on this thread.
pub fn with_branch<T>(branch: Option<Branch>, body: impl FnOnce() -> T) -> T {
    struct Restore(Option<Branch>);
    impl Drop for Restore {
        fn drop(&mut self) {
            BRANCH.with(|b| b.set(self.0));
        }
    }
    let _restore = Restore(BRANCH.with(|b| b.replace(branch)));
    body()
}

/// The branch this thread runs, if any.
pub fn current() -> Option<Branch> {
    BRANCH.with(|b| b.get())
}

/// The seed a random stream (first seeded with `stream`) switches to, once the branch's
/// moment has passed; `None` outside a branch or before it.
pub fn branch_seed(stream: u64) -> Option<u64> {
    let branch = BRANCH.with(|b| b.get())?;
    let elapsed = turmoil::sim_elapsed()?;
    (elapsed > branch.at).then(|| derive_seed(stream, &format!("branch-{}", branch.index)))
}
