//! Disk errors aimed at a path or an operation kind (docs/simulator-reach.md rule 11):
//! a `disk_error` fault may name `path` (a prefix, relative to agent 1's work directory
//! or absolute) and `op` (an operation kind, or a group of them), so that it fails the
//! next `ops` operations that match instead of the next `ops` operations of any kind
//! anywhere. A swarm with `aimed_disk_error_fraction` aims that share of the disk errors
//! it draws, from a random stream of its own (so nothing else it draws changes).

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::fs::{Fault, FaultError, Op, OpSet};
pub use crate::scenario::fault_checks::{op_set, validate_disk as validate, OP_NAMES};
use crate::scenario::{FaultKind, FaultSpec, Scenario, Swarm};
use crate::seams::derive_seed;

/// The rule a `disk_error` fault injects and its description; `error` is the one named
/// (or drawn), `work_dir` agent 1's work directory (a relative `path` is under it).
pub fn rule(fault: &FaultSpec, error: &str, count: u64, work_dir: &Path) -> (Fault, String) {
    let (fault_error, default_ops) = match error {
        "enospc" => (FaultError::NoSpace, OpSet::ALL),
        "fsync" => (FaultError::Io, OpSet::from(Op::SyncFile)),
        _ => (FaultError::Io, OpSet::ALL),
    };
    // A drawn `fsync` error aimed at another kind fails it with EIO.
    let ops = fault.op.as_deref().and_then(op_set).unwrap_or(default_ops);
    let mut rule = Fault::new(fault_error).on(ops).times(count);
    let mut aim = String::new();
    if let Some(op) = &fault.op {
        aim.push_str(&format!(" {op}"));
    }
    if let Some(path) = &fault.path {
        let prefix: PathBuf = if Path::new(path).is_absolute() {
            PathBuf::from(path)
        } else {
            work_dir.join(path)
        };
        aim.push_str(&format!(" operation(s) under {}", prefix.display()));
        rule = rule.under(prefix);
    } else {
        aim.push_str(" operation(s)");
    }
    // docs/simulator-reach.md rule 12k: kept for the agent's next start.
    if fault.boot.as_deref() == Some("next") {
        rule = rule.across_restarts();
        aim.push_str(" of the next start");
    }
    (
        rule,
        format!("disk fails its next {count}{aim} with {error}"),
    )
}

/// Prefixes (relative to the work directory) a swarm aims disk errors at: the
/// checkpoints, the sandboxes, the resources checkpoint.
const SWARM_PATHS: &[&str] = &["meta/slaves", "slaves", "meta/resources"];
/// Operation kinds a swarm aims disk errors at.
const SWARM_OPS: &[&str] = &[
    "write",
    "append",
    "sync",
    "sync_dir",
    "rename",
    "remove",
    "create_dir",
    "read",
    "list_dir",
];

/// Aims the share `aimed_disk_error_fraction` of the swarm's drawn disk errors: each gets
/// a path prefix, an operation kind, or both, drawn from a stream of its own.
pub fn aim_drawn(scenario: &Scenario, seed: u64, drawn: &mut [FaultSpec]) {
    let share = |swarm: &Swarm| swarm.aimed_disk_error_fraction;
    let stream = (seed, "aimed-disk-error");
    for (fault, mut rng) in
        crate::faults::picked(scenario, stream, drawn, FaultKind::DiskError, share)
    {
        // Path, op, or both.
        let which = rng.gen_range(0..3);
        if which != 1 {
            fault.path = Some(SWARM_PATHS[rng.gen_range(0..SWARM_PATHS.len())].to_owned());
        }
        if which != 0 {
            let op = SWARM_OPS[rng.gen_range(0..SWARM_OPS.len())];
            fault.op = Some(op.to_owned());
        }
    }
}

/// What an error on recovery's reads aims at (docs/simulator-reach.md rule 12k): the
/// listing of the checkpoint tree, the read of a checkpoint file, the read of a
/// `latest` link, and the read of `resources.info`.
const RECOVERY_READS: &[(&str, &str)] = &[
    ("list_dir", "meta/slaves"),
    ("read", "meta/slaves"),
    ("read_link", "meta/slaves"),
    ("read", "meta/resources"),
];

/// Disk errors on recovery's reads (docs/simulator-reach.md rule 12k): with a swarm's
/// `recovery_read_error_fraction = f`, each drawn agent crash or reboot is followed, with
/// odds `f`, by one `EIO` aimed at a read the next start's recovery makes (the agent is
/// down, so its next matching operation is recovery's). Each from a stream of its own,
/// so nothing else the swarm draws moves (rule 8).
pub fn at_recovery(scenario: &Scenario, seed: u64, drawn: &[FaultSpec]) -> Vec<FaultSpec> {
    let Some(fraction) = scenario
        .swarm
        .as_ref()
        .map(|s| s.recovery_read_error_fraction)
        .filter(|f| *f > 0.0)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (index, crash) in drawn
        .iter()
        .filter(|f| matches!(f.kind, FaultKind::AgentCrash | FaultKind::Reboot))
        .enumerate()
    {
        let mut rng =
            StdRng::seed_from_u64(derive_seed(seed, &format!("recovery-read-error-{index}")));
        if !rng.gen_bool(fraction.clamp(0.0, 1.0)) {
            continue;
        }
        let (op, path) = RECOVERY_READS[rng.gen_range(0..RECOVERY_READS.len())];
        let mut fault = FaultSpec::new(crash.at_s + 0.001, FaultKind::DiskError);
        fault.error = Some("eio".to_owned());
        fault.ops = Some(1);
        fault.op = Some(op.to_owned());
        fault.path = Some(path.to_owned());
        fault.boot = Some("next".to_owned());
        out.push(fault);
    }
    out
}
