//! The checks of fault fields that belong to the ZooKeeper, disk and drop fault modules
//! (`crate::zk_faults`, `crate::disk_faults`, `crate::drops`, which re-export them), kept here so that
//! loading a scenario imports nothing above it (docs/design.md D62).

use std::path::Path;

use crate::fs::{Op, OpSet};
use crate::scenario::{FaultKind, FaultSpec, Scenario};

/// Whether `kind` is a ZooKeeper fault.
pub fn is_zk_fault(kind: FaultKind) -> bool {
    matches!(
        kind,
        FaultKind::ZkPartition | FaultKind::ZkDown | FaultKind::ZkExpire | FaultKind::ZkLoseReply
    )
}

/// A fixed ZooKeeper fault's fields, checked: the error names the fault and the field.
pub fn validate_zk(scenario: &Scenario, fault: &FaultSpec) -> Result<(), String> {
    let name = format!("{:?} at {} s", fault.kind, fault.at_s);
    if scenario.zookeeper.is_none() {
        return Err(format!(
            "{name}: a ZooKeeper fault needs the scenario's [zookeeper] table"
        ));
    }
    if let Some(master) = &fault.a {
        let index = master
            .strip_prefix("master")
            .and_then(|n| n.parse::<u32>().ok());
        if !index.is_some_and(|i| i >= 1 && i <= scenario.masters) {
            return Err(format!(
                "{name}: a = \"{master}\" names no master (master1 to master{})",
                scenario.masters
            ));
        }
    }
    if let Some(operation) = &fault.message {
        if fault.kind != FaultKind::ZkLoseReply
            || !["join", "create", "set"].contains(&operation.as_str())
        {
            return Err(format!(
                "{name}: message = \"{operation}\": only zk_lose_reply takes one, and it must be join, create or set"
            ));
        }
    }
    for (field, value) in [
        ("duration_s", fault.duration_s),
        ("restart_after_s", fault.restart_after_s),
    ] {
        if value.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
            return Err(format!(
                "{name}: {field} must be a non-negative number of seconds"
            ));
        }
    }
    Ok(())
}

/// The operation kinds (and groups) an aimed disk error may name.
pub const OP_NAMES: &[&str] = &[
    "read",
    "write",
    "append",
    "truncate",
    "sync",
    "sync_dir",
    "create_dir",
    "rename",
    "symlink",
    "read_link",
    "list_dir",
    "remove",
    "remove_file",
    "remove_dir_all",
    "modified",
    "touch",
    "disk_usage",
    "lock",
    "writes",
    "syncs",
    "mutations",
];

/// The operations `name` stands for (`sync` is a file sync, `remove` both removals,
/// `writes` write, append and truncate, `syncs` both syncs, `mutations` every change).
pub fn op_set(name: &str) -> Option<OpSet> {
    Some(match name {
        "read" => Op::Read.into(),
        "write" => Op::Write.into(),
        "append" => Op::Append.into(),
        "truncate" => Op::Truncate.into(),
        "sync" | "sync_file" => Op::SyncFile.into(),
        "sync_dir" => Op::SyncDir.into(),
        "create_dir" => Op::CreateDir.into(),
        "rename" => Op::Rename.into(),
        "symlink" => Op::Symlink.into(),
        "read_link" => Op::ReadLink.into(),
        "list_dir" => Op::ListDir.into(),
        "remove" => OpSet::of(&[Op::RemoveFile, Op::RemoveDirAll]),
        "remove_file" => Op::RemoveFile.into(),
        "remove_dir_all" => Op::RemoveDirAll.into(),
        "modified" => Op::Modified.into(),
        "touch" => Op::Touch.into(),
        "disk_usage" => Op::DiskUsage.into(),
        "lock" => Op::Lock.into(),
        "writes" => OpSet::WRITES,
        "syncs" => OpSet::SYNCS,
        "mutations" => OpSet::MUTATIONS,
        _ => return None,
    })
}

/// Checks a `disk_error` fault's `error`, `op` and `path`; the error names the field.
pub fn validate_disk(fault: &FaultSpec) -> Result<(), String> {
    if fault.kind == FaultKind::Corrupt && fault.path.is_none() {
        // docs/simulator-reach.md rule 14b: the record field a corruption aims at.
        return match fault.op.as_deref() {
            None => Ok(()),
            Some(op) if crate::corrupt::PARTS.contains(&op) => Ok(()),
            Some(op) => Err(format!(
                "corrupt at {} s: unknown op '{op}' (one of {})",
                fault.at_s,
                crate::corrupt::PARTS.join(", ")
            )),
        };
    }
    if fault.kind != FaultKind::DiskError {
        if fault.op.is_some() || fault.path.is_some() {
            return Err(format!(
                "fault at {} s: op and path are for disk_error only",
                fault.at_s
            ));
        }
        return Ok(());
    }
    if !matches!(
        fault.error.as_deref(),
        None | Some("eio" | "enospc" | "fsync")
    ) {
        return Err(format!(
            "disk_error at {} s: error must be eio, enospc or fsync",
            fault.at_s
        ));
    }
    if let Some(op) = &fault.op {
        if op_set(op).is_none() {
            return Err(format!(
                "disk_error at {} s: unknown op '{op}' (one of {})",
                fault.at_s,
                OP_NAMES.join(", ")
            ));
        }
        if fault.error.as_deref() == Some("fsync") && !matches!(op.as_str(), "sync" | "syncs") {
            return Err(format!(
                "disk_error at {} s: error fsync fails file syncs; with op '{op}' give eio or enospc",
                fault.at_s
            ));
        }
    }
    if let Some(path) = &fault.path {
        if path.is_empty() || Path::new(path).components().any(|c| c.as_os_str() == "..") {
            return Err(format!(
                "disk_error at {} s: path '{path}' must be a non-empty prefix without '..'",
                fault.at_s
            ));
        }
    }
    Ok(())
}

/// Every message kind a rule may name (`wire::kind` of each envelope body).
pub const MESSAGE_KINDS: &[&str] = &[
    "register_agent",
    "reregister_agent",
    "agent_registered",
    "agent_reregistered",
    "run_task",
    "kill_task",
    "status_update",
    "acknowledgement",
    "register_framework",
    "framework_registered",
    "submit_task",
    "reconcile",
    "ping",
    "pong",
    "register_executor",
    "executor_registered",
    "reregister_executor",
    "reconnect_executor",
    "shutdown_executor",
    "shutdown_agent",
    "not_leader",
    "unregister_agent",
    "teardown_framework",
    "framework_removed",
    "shutdown_framework",
    "reserve_resources",
    "checkpoint_resources",
    "agent_recovering",
    "wake_challenge",
    "wake_executor",
];

/// The message kind a scenario names, normalised to `wire::kind`'s spelling: accepts
/// `RegisterExecutor` as well as `register_executor`.
pub fn normalise_kind(name: &str) -> Option<&'static str> {
    let squashed: String = name
        .chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    MESSAGE_KINDS
        .iter()
        .find(|kind| kind.replace('_', "") == squashed)
        .copied()
}
