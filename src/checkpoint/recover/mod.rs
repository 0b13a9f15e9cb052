//! State recovery: reads the meta directory back into a tree (the recovered `State`,
//! `ResourcesState`, `SlaveState`, `FrameworkState`, `ExecutorState`, `RunState`,
//! `TaskState`), level by level.
//!
//! The rules, branch by branch:
//! - no meta directory: `Ok(None)`, nothing to recover (first start);
//! - resources are recovered even after a reboot; a checkpointed boot id that differs
//!   from the machine's means the agent state is not recovered (`rebooted`);
//! - a missing `latest` link, a missing or empty info file, a missing pid file: the
//!   agent died between two steps; a [`Warning`] is recorded and recovery goes on;
//! - an unreadable or corrupt file: with `strict`, a [`RecoveryError`] naming the file
//!   and what was wrong; without, `errors` is incremented at its level (and summed
//!   upward), a warning records it, and recovery goes on with what could be read;
//! - a directory listing or a `latest` link that cannot be read, or a `slaves/latest`
//!   naming no agent directory: a [`RecoveryError`], with or without `strict`
//!   (docs/recovery-rules.md R40): what lies below is unknown, not absent;
//! - a torn final record of a record log is cut off and reported; the file is truncated
//!   to its last complete record only when `truncate` is set (the agent), never for a
//!   read-only reader (`revenant inspect`).
//!
//! The directory is read with as few system calls as possible (one listing per
//! directory, one read per file, no existence checks before reads), so that recovering
//! a large tree costs about what reading it does.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use prost::bytes::Bytes;
use prost::Message;

use super::paths::{self, MetaPaths};
use super::record::{self, FileKind, InfoRead, Tail};
use super::store::{ForkedPid, StoreError};
use crate::ids::{AgentId, ContainerId, ExecutorId, FrameworkId, TaskId, Uuid};
use crate::os::FileSystem;
use crate::proto::{
    status_update_record, AgentInfo, ExecutorInfo, FrameworkInfo, Resource, StatusUpdate,
    StatusUpdateRecord, Task,
};

mod levels;
mod records;
mod walk;

use walk::Walk;

#[cfg(feature = "breakage")]
thread_local! {
    static KEEP_UNDECODABLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Test-only breakage of docs/recovery-rules.md R37, for one simulated run on this
/// thread (set by the simulator from its run's `Breakage`, as no flag can): non-strict
/// recovery counts a well-framed record that does not decode but leaves it in its log.
#[cfg(feature = "breakage")]
pub fn keep_undecodable_records(on: bool) {
    KEEP_UNDECODABLE.with(|k| k.set(on));
}

#[cfg(feature = "breakage")]
fn keeps_undecodable_records() -> bool {
    KEEP_UNDECODABLE.with(std::cell::Cell::get)
}

#[cfg(feature = "breakage")]
thread_local! {
    static SKIP_UNREADABLE_LISTINGS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Test-only breakage of docs/recovery-rules.md R40, for one simulated run on this
/// thread: non-strict recovery takes a listing or a `latest` link it cannot read for
/// absent (with a warning) and goes on.
#[cfg(feature = "breakage")]
pub fn skip_unreadable_listings(on: bool) {
    SKIP_UNREADABLE_LISTINGS.with(|k| k.set(on));
}

#[cfg(feature = "breakage")]
fn skips_unreadable_listings() -> bool {
    SKIP_UNREADABLE_LISTINGS.with(std::cell::Cell::get)
}

#[cfg(feature = "breakage")]
thread_local! {
    static COUNT_NO_ERRORS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Test-only breakage of docs/recovery-rules.md R43, for one simulated run on this
/// thread: non-strict recovery warns of the damage it meets but counts none.
#[cfg(feature = "breakage")]
pub fn count_no_errors(on: bool) {
    COUNT_NO_ERRORS.with(|k| k.set(on));
}

#[cfg(feature = "breakage")]
fn counts_no_errors() -> bool {
    COUNT_NO_ERRORS.with(std::cell::Cell::get)
}

/// How to recover.
#[derive(Clone, Debug)]
pub struct RecoverOptions {
    /// Whether an unreadable or corrupt file stops recovery (the `--strict` flag).
    pub strict: bool,
    /// Whether to cut torn or corrupt tails off record logs (the agent does; read-only
    /// tools do not).
    pub truncate: bool,
    /// The machine's current boot id, compared with the checkpointed one; `None` skips
    /// the reboot check.
    pub current_boot_id: Option<String>,
}

/// Recovery stopped on a file it could not read (strict mode, or an IO error that makes
/// going on impossible).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("failed to recover '{}': {message}", path.display())]
pub struct RecoveryError {
    /// The file or directory.
    pub path: PathBuf,
    /// What was wrong with it.
    pub message: String,
}

/// What kind of unexpected-but-survivable state recovery met.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WarningKind {
    /// A file the layout expects is missing (the agent died before writing it).
    Missing,
    /// A file exists but is empty (the agent died right after creating it).
    Empty,
    /// A `latest` link points at nothing that exists.
    DanglingLatest,
    /// The last record of a log was incomplete and is (or would be) cut off.
    TornTail {
        /// Where the incomplete record starts.
        offset: u64,
        /// Its bytes.
        bytes: u64,
    },
    /// A corrupt or unreadable file, counted as an error in non-strict mode.
    Error,
    /// The machine rebooted since the boot id was checkpointed.
    Rebooted,
}

/// One warning, as a value for tests and tools to see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The file concerned.
    pub path: PathBuf,
    /// What was met.
    pub kind: WarningKind,
    /// A sentence for a person.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

/// The recovered tree.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct State {
    /// Checkpointed resources; recovered even after a reboot.
    pub resources: Option<ResourcesState>,
    /// The latest agent, unless the machine rebooted or no agent ever registered.
    pub agent: Option<AgentState>,
    /// The checkpointed boot id, if it could be read.
    pub checkpointed_boot_id: Option<String>,
    /// Whether the boot id changed (the agent state was then not recovered).
    pub rebooted: bool,
    /// Errors counted in non-strict mode, over the whole tree.
    pub errors: u32,
    /// Every warning met, in the order met.
    pub warnings: Vec<Warning>,
    /// What recovery read, for [`make_durable`].
    pub read: ReadSet,
}

/// What a recovery read: the record logs (appended to, so their data may not be
/// durable yet) and every directory it looked into, with their ancestors up to the work
/// directory. Info and pid files need no sync of their own: they are only ever
/// replaced by a rename of a temp file synced before it (docs/recovery-rules.md R14).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadSet {
    /// Record logs read (`task.updates`, `resources.info`), not already synced by a cut.
    pub logs: Vec<PathBuf>,
    /// Directories read, listed or traversed.
    pub dirs: BTreeSet<PathBuf>,
}

/// `resources.info`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourcesState {
    /// The checkpointed resources, in file order.
    pub resources: Vec<Resource>,
    /// Errors counted.
    pub errors: u32,
}

/// One agent's subtree.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentState {
    /// The agent id (the name `slaves/latest` points at).
    pub id: AgentId,
    /// `slave.info`.
    pub info: Option<AgentInfo>,
    /// Frameworks by id.
    pub frameworks: BTreeMap<FrameworkId, FrameworkState>,
    /// Errors counted here and below.
    pub errors: u32,
}

/// One framework's subtree.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FrameworkState {
    /// The framework id.
    pub id: FrameworkId,
    /// `framework.info`.
    pub info: Option<FrameworkInfo>,
    /// `framework.pid`; `Some("")` for a framework without a pid.
    pub pid: Option<String>,
    /// Executors by id.
    pub executors: BTreeMap<ExecutorId, ExecutorState>,
    /// Errors counted here and below.
    pub errors: u32,
}

/// One executor's subtree.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExecutorState {
    /// The executor id.
    pub id: ExecutorId,
    /// `executor.info`.
    pub info: Option<ExecutorInfo>,
    /// The run `runs/latest` points at.
    pub latest: Option<ContainerId>,
    /// Runs by container id.
    pub runs: BTreeMap<ContainerId, RunState>,
    /// Errors counted here and below.
    pub errors: u32,
}

/// One executor run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunState {
    /// The container id.
    pub id: ContainerId,
    /// `pids/forked.pid`.
    pub forked_pid: Option<ForkedPid>,
    /// `pids/libprocess.pid`: the address the executor registered from.
    pub libprocess_pid: Option<String>,
    /// `Some(true)` with `http.marker`, `Some(false)` with `libprocess.pid`, `None` when
    /// neither was written (the executor never registered).
    pub http: Option<bool>,
    /// `executor.sentinel` exists: the run completed.
    pub completed: bool,
    /// Tasks by id.
    pub tasks: BTreeMap<TaskId, TaskState>,
    /// Errors counted here and below.
    pub errors: u32,
}

/// One task.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskState {
    /// The task id.
    pub id: TaskId,
    /// `task.info`.
    pub info: Option<Task>,
    /// Every UPDATE record, in file order.
    pub updates: Vec<StatusUpdate>,
    /// The uuids of every ACK record.
    pub acks: BTreeSet<Uuid>,
    /// Bytes cut (or to be cut) off the end of `task.updates`.
    pub bytes_cut: u64,
    /// Errors counted.
    pub errors: u32,
}

impl TaskState {
    /// The updates not yet acknowledged, in order.
    pub fn unacknowledged(&self) -> impl Iterator<Item = &StatusUpdate> {
        self.updates.iter().filter(|update| {
            Uuid::from_bytes(&update.uuid).is_none_or(|uuid| !self.acks.contains(&uuid))
        })
    }

    /// The state of the last update, if any.
    pub fn latest_state(&self) -> Option<crate::proto::TaskState> {
        self.updates
            .last()
            .and_then(|update| update.status.as_ref())
            .map(|status| status.state())
    }
}

/// Recovers the tree under `paths`. See the module doc for the rules.
pub fn recover(
    fs: &dyn FileSystem,
    paths: &MetaPaths,
    options: &RecoverOptions,
) -> Result<Option<State>, RecoveryError> {
    if !fs.is_dir(paths.root()) {
        return Ok(None);
    }
    let mut walk = Walk {
        fs,
        paths,
        options,
        warnings: Vec::new(),
        read: ReadSet::default(),
        last_dir: PathBuf::new(),
    };
    walk.read.dirs.insert(paths.root().to_path_buf());
    let mut state = State {
        resources: Some(walk.resources()?),
        ..State::default()
    };

    match fs.read(&paths.boot_id()) {
        Ok(bytes) => {
            walk.saw(&paths.boot_id());
            let checkpointed = String::from_utf8_lossy(&bytes).trim().to_owned();
            if let Some(current) = &options.current_boot_id {
                if !checkpointed.is_empty() && checkpointed != *current {
                    state.rebooted = true;
                    walk.warn(
                        paths.boot_id(),
                        WarningKind::Rebooted,
                        format!(
                            "machine rebooted (checkpointed boot id {checkpointed}, now {current}): agent state not recovered"
                        ),
                    );
                }
            }
            state.checkpointed_boot_id = Some(checkpointed);
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => walk.warn(
            paths.boot_id(),
            WarningKind::Error,
            format!("failed to read boot id: {error}"),
        ),
    }

    if !state.rebooted {
        state.agent = walk.latest_agent()?;
    }
    state.errors = state.resources.as_ref().map_or(0, |r| r.errors)
        + state.agent.as_ref().map_or(0, |a| a.errors);
    state.warnings = walk.warnings;
    state.read = walk.read;
    // Every ancestor, up to the work directory holding `meta`, so that every name on the
    // way to what was read is durable too.
    let top = paths.root().parent().unwrap_or(paths.root()).to_path_buf();
    // docs/recovery-latency.md P48: a chain is walked up only to the first ancestor
    // already known, not to the top for every one of thousands of directories: one
    // already among the ancestors has its chain complete, and one among the directories
    // read gets its own turn in this loop. The set is the same.
    let mut ancestors: BTreeSet<PathBuf> = BTreeSet::new();
    for dir in &state.read.dirs {
        let mut at = dir.as_path();
        while at.starts_with(&top) && at != top.as_path() {
            match at.parent() {
                Some(parent) => {
                    if ancestors.contains(parent) || state.read.dirs.contains(parent) {
                        break;
                    }
                    ancestors.insert(parent.to_path_buf());
                    at = parent;
                }
                None => break,
            }
        }
    }
    state.read.dirs.extend(ancestors);
    Ok(Some(state))
}

/// Makes durable what [`recover`] read (docs/recovery-rules.md R14): the record logs
/// with one [`FileSystem::sync_files`], then every directory on the way to them. The
/// agent calls it before it acts on anything it recovered: a previous incarnation may
/// have died after a write and before its sync (an append, a rename into place, a new
/// directory, a removal), and what the page cache still shows would otherwise be lost
/// to a later power loss after the agent told the world about it. Returns how many
/// syncs it made.
pub fn make_durable(fs: &dyn FileSystem, state: &State) -> Result<usize, StoreError> {
    make_durable_meanwhile(fs, state, &mut || {})
}

/// [`make_durable`], running `meanwhile` on the calling thread while the syncs go
/// (docs/recovery-latency.md P47: the agent lists its processes then). The logs and
/// the directories are one group: R14 asks only that all be durable before the agent
/// acts, in no order among them (P18).
pub fn make_durable_meanwhile(
    fs: &dyn FileSystem,
    state: &State,
    meanwhile: &mut dyn FnMut(),
) -> Result<usize, StoreError> {
    let logs = &state.read.logs;
    let dirs: Vec<PathBuf> = state.read.dirs.iter().cloned().collect();
    fs.sync_all_meanwhile(logs, &dirs, meanwhile)
        .map_err(|(index, source)| match logs.get(index) {
            Some(path) => StoreError {
                path: path.clone(),
                operation: "sync",
                source,
            },
            None => StoreError {
                path: dirs.get(index - logs.len()).cloned().unwrap_or_default(),
                operation: "sync directory",
                source,
            },
        })?;
    Ok(logs.len() + dirs.len())
}
