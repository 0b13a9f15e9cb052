//! A broken rule, as the oracles (`crate::oracles`, which re-export it) and the checks
//! that run during a run (ZooKeeper's one-leader check) report it (docs/design.md D62).

use std::time::Duration;

/// A broken rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// When the evidence appeared (simulated time).
    pub time: Duration,
    /// The oracle (rule) that caught it.
    pub oracle: &'static str,
    /// What was wrong.
    pub message: String,
}
