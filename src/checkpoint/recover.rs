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
    let mut ancestors = BTreeSet::new();
    for dir in &state.read.dirs {
        let mut at = dir.as_path();
        while at.starts_with(&top) && at != top.as_path() {
            match at.parent() {
                Some(parent) => {
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
    fs.sync_files(&state.read.logs)
        .map_err(|(index, source)| StoreError {
            path: state.read.logs.get(index).cloned().unwrap_or_default(),
            operation: "sync",
            source,
        })?;
    for dir in &state.read.dirs {
        fs.sync_dir(dir).map_err(|source| StoreError {
            path: dir.clone(),
            operation: "sync directory",
            source,
        })?;
    }
    Ok(state.read.logs.len() + state.read.dirs.len())
}

/// The valid records of a log: each payload with the offset its record starts at.
type Records<'a> = Vec<(u64, &'a [u8])>;

/// The result of reading one file.
enum Read<T> {
    Found(T),
    /// Missing, empty, or counted as an error: a warning was recorded.
    Absent,
}

struct Walk<'a> {
    fs: &'a dyn FileSystem,
    paths: &'a MetaPaths,
    options: &'a RecoverOptions,
    warnings: Vec<Warning>,
    read: ReadSet,
}

impl Walk<'_> {
    /// Records that a file or link in `path`'s directory was read.
    fn saw(&mut self, path: &Path) {
        if let Some(parent) = path.parent() {
            if !self.read.dirs.contains(parent) {
                self.read.dirs.insert(parent.to_path_buf());
            }
        }
    }

    fn warn(&mut self, path: PathBuf, kind: WarningKind, message: String) {
        self.warnings.push(Warning {
            path,
            kind,
            message,
        });
    }

    /// A corrupt or unreadable file: strict stops, non-strict counts it.
    fn error(
        &mut self,
        path: &Path,
        message: String,
        errors: &mut u32,
    ) -> Result<(), RecoveryError> {
        if self.options.strict {
            crate::coverage::point!("recover_strict_stopped");
            return Err(RecoveryError {
                path: path.to_path_buf(),
                message,
            });
        }
        crate::coverage::point!("recover_corrupt_file_counted");
        *errors += 1;
        self.warn(path.to_path_buf(), WarningKind::Error, message);
        Ok(())
    }

    fn list(&mut self, dir: &Path, errors: &mut u32) -> Result<Vec<String>, RecoveryError> {
        match self.fs.list_dir(dir) {
            Ok(names) => {
                if !self.read.dirs.contains(dir) {
                    self.read.dirs.insert(dir.to_path_buf());
                }
                Ok(names)
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(error) => {
                self.error(dir, format!("failed to list directory: {error}"), errors)?;
                Ok(Vec::new())
            }
        }
    }

    /// Reads a file; a missing one is a warning.
    fn read_file(
        &mut self,
        path: &Path,
        what: &str,
        errors: &mut u32,
    ) -> Result<Read<Vec<u8>>, RecoveryError> {
        match self.fs.read(path) {
            Ok(bytes) => {
                self.saw(path);
                Ok(Read::Found(bytes))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                self.warn(
                    path.to_path_buf(),
                    WarningKind::Missing,
                    format!("{what} not found"),
                );
                Ok(Read::Absent)
            }
            Err(error) => {
                self.error(path, format!("failed to read {what}: {error}"), errors)?;
                Ok(Read::Absent)
            }
        }
    }

    /// Reads a single-message info file.
    fn read_info<M: Message + Default>(
        &mut self,
        path: &Path,
        what: &str,
        errors: &mut u32,
    ) -> Result<Option<M>, RecoveryError> {
        let Read::Found(bytes) = self.read_file(path, what, errors)? else {
            return Ok(None);
        };
        match record::read_info(&bytes) {
            Ok(InfoRead::Empty) => {
                self.warn(
                    path.to_path_buf(),
                    WarningKind::Empty,
                    format!("{what} is empty"),
                );
                Ok(None)
            }
            Ok(InfoRead::Message(payload)) => match M::decode(payload) {
                Ok(message) => Ok(Some(message)),
                Err(error) => {
                    self.error(path, format!("failed to decode {what}: {error}"), errors)?;
                    Ok(None)
                }
            },
            Err(message) => {
                self.error(path, format!("corrupt {what}: {message}"), errors)?;
                Ok(None)
            }
        }
    }

    /// Reads a text file (pid files); an empty one is treated as absent.
    fn read_text(
        &mut self,
        path: &Path,
        what: &str,
        errors: &mut u32,
    ) -> Result<Option<String>, RecoveryError> {
        let Read::Found(bytes) = self.read_file(path, what, errors)? else {
            return Ok(None);
        };
        match String::from_utf8(bytes) {
            Ok(text) if text.trim().is_empty() && what != "framework pid" => {
                self.warn(
                    path.to_path_buf(),
                    WarningKind::Empty,
                    format!("{what} is empty"),
                );
                Ok(None)
            }
            Ok(text) => Ok(Some(text.trim().to_owned())),
            Err(_) => {
                self.error(path, format!("{what} is not UTF-8 text"), errors)?;
                Ok(None)
            }
        }
    }

    /// Reads a `latest` link; `None` (with a warning) when missing.
    fn read_latest(
        &mut self,
        link: &Path,
        errors: &mut u32,
    ) -> Result<Option<String>, RecoveryError> {
        match self.fs.read_link(link) {
            Ok(target) => match target.file_name() {
                Some(name) => {
                    self.saw(link);
                    Ok(Some(name.to_string_lossy().into_owned()))
                }
                None => {
                    self.error(
                        link,
                        format!("link target '{}' has no name", target.display()),
                        errors,
                    )?;
                    Ok(None)
                }
            },
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                self.warn(
                    link.to_path_buf(),
                    WarningKind::Missing,
                    "latest link not found".to_owned(),
                );
                Ok(None)
            }
            Err(error) => {
                self.error(link, format!("failed to read link: {error}"), errors)?;
                Ok(None)
            }
        }
    }

    /// Reads a record log, cutting off (and, with `truncate`, truncating) a bad tail.
    fn read_log<'b>(
        &mut self,
        path: &Path,
        data: &'b [u8],
        kind: FileKind,
        errors: &mut u32,
    ) -> Result<(Records<'b>, u64), RecoveryError> {
        let scan = match record::scan(data, kind) {
            Ok(scan) => scan,
            Err(error) => {
                self.error(path, error.to_string(), errors)?;
                return Ok((Vec::new(), 0));
            }
        };
        let cut = data.len() as u64 - scan.valid_length;
        match &scan.tail {
            Tail::Clean => {}
            Tail::Torn { offset, bytes } => self.warn(
                path.to_path_buf(),
                WarningKind::TornTail {
                    offset: *offset,
                    bytes: *bytes,
                },
                if self.options.truncate {
                    format!("torn final record: {bytes} bytes at offset {offset} cut off")
                } else {
                    format!("torn final record: {bytes} bytes at offset {offset} (would be cut off by the agent)")
                },
            ),
            Tail::Corrupt {
                offset,
                bytes,
                reason,
            } => self.error(
                path,
                if self.options.strict || !self.options.truncate {
                    format!("{reason} at offset {offset} ({bytes} bytes from there unreadable)")
                } else {
                    format!("{reason} at offset {offset} ({bytes} bytes from there cut off)")
                },
                errors,
            )?,
        }
        if cut > 0 && self.options.truncate {
            crate::coverage::point!("recover_torn_tail_cut");
            self.truncate_log(path, scan.valid_length, kind)?;
        }
        Ok((scan.records, cut))
    }

    /// A record that is framed correctly but cannot be used (non-strict only: in strict
    /// mode `error` has already stopped recovery). Like a corrupt record, it and
    /// everything after it are cut off when truncating; otherwise every later append
    /// would sit behind it, unseen by every later recovery. Returns the bytes cut.
    fn cut_invalid_record(
        &mut self,
        path: &Path,
        offset: u64,
        file_length: usize,
        kind: FileKind,
    ) -> Result<u64, RecoveryError> {
        if self.options.truncate {
            crate::coverage::point!("recover_invalid_record_cut");
            self.truncate_log(path, offset, kind)?;
        }
        Ok(file_length as u64 - offset)
    }

    fn truncate_log(
        &mut self,
        path: &Path,
        valid_length: u64,
        kind: FileKind,
    ) -> Result<(), RecoveryError> {
        let failed = |error: io::Error| RecoveryError {
            path: path.to_path_buf(),
            message: format!("failed to truncate to {valid_length} bytes: {error}"),
        };
        if valid_length < record::FILE_HEADER_BYTES as u64 {
            // Not even the header survived: start the log afresh.
            self.fs
                .write(path, &record::file_header(kind))
                .map_err(failed)?;
        } else {
            self.fs.truncate(path, valid_length).map_err(failed)?;
        }
        self.fs.sync_file(path).map_err(failed)?;
        // Synced: `make_durable` need not sync it again.
        if self.read.logs.last().is_some_and(|last| last == path) {
            self.read.logs.pop();
        }
        Ok(())
    }

    fn resources(&mut self) -> Result<ResourcesState, RecoveryError> {
        let mut state = ResourcesState::default();
        let path = self.paths.resources_info();
        let bytes = match self.fs.read(&path) {
            Ok(bytes) => {
                self.saw(&path);
                self.read.logs.push(path.clone());
                bytes
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(state),
            Err(error) => {
                self.error(
                    &path,
                    format!("failed to read resources: {error}"),
                    &mut state.errors,
                )?;
                return Ok(state);
            }
        };
        let (payloads, _) = self.read_log(&path, &bytes, FileKind::Resources, &mut state.errors)?;
        for (offset, payload) in payloads {
            match Resource::decode(payload) {
                Ok(resource) => state.resources.push(resource),
                Err(error) => {
                    self.error(
                        &path,
                        format!("failed to decode resource: {error}"),
                        &mut state.errors,
                    )?;
                    self.cut_invalid_record(&path, offset, bytes.len(), FileKind::Resources)?;
                    break;
                }
            }
        }
        Ok(state)
    }

    fn latest_agent(&mut self) -> Result<Option<AgentState>, RecoveryError> {
        let link = self.paths.latest_agent();
        let mut errors = 0;
        let target = match self.fs.read_link(&link) {
            Ok(target) => {
                self.saw(&link);
                target
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                // The agent died (or was told to shut down) before it first registered.
                self.warn(
                    link,
                    WarningKind::Missing,
                    "no latest agent (the agent never registered, or was told to start afresh)"
                        .to_owned(),
                );
                return Ok(None);
            }
            Err(error) => {
                self.error(&link, format!("failed to read link: {error}"), &mut errors)?;
                return Ok(None);
            }
        };
        let id = target
            .file_name()
            .map(|name| AgentId::new(name.to_string_lossy().into_owned()))
            .unwrap_or_default();
        let dir = self.paths.agent(&id);
        if id.as_str().is_empty() || !self.fs.is_dir(&dir) {
            self.error(
                &link,
                format!(
                    "latest agent link points at '{}', which does not exist",
                    target.display()
                ),
                &mut errors,
            )?;
            return Ok(Some(AgentState {
                id,
                errors,
                ..AgentState::default()
            }));
        }
        self.agent(id, &dir).map(Some)
    }

    // Below the agent, each path is built from its parent directory's (`paths::child`),
    // the same paths as `MetaPaths` builds from the root, with fewer allocations.

    /// `dir`: `slaves/<id>`.
    fn agent(&mut self, id: AgentId, dir: &Path) -> Result<AgentState, RecoveryError> {
        let mut state = AgentState {
            id,
            ..AgentState::default()
        };
        let info_path = dir.join(paths::AGENT_INFO_FILE);
        state.info = self.read_info(&info_path, "agent info", &mut state.errors)?;
        if state.info.is_none() {
            // The agent died before registering; nothing below can exist.
            return Ok(state);
        }
        let frameworks_dir = dir.join(paths::FRAMEWORKS_DIR);
        let names = self.list(&frameworks_dir, &mut state.errors)?;
        let mut frameworks = Vec::with_capacity(names.len());
        for name in names {
            let framework = self.framework(&frameworks_dir, FrameworkId::new(name))?;
            state.errors += framework.errors;
            frameworks.push((framework.id.clone(), framework));
        }
        state.frameworks = frameworks.into_iter().collect();
        Ok(state)
    }

    /// `frameworks_dir`: `slaves/<agent>/frameworks`.
    fn framework(
        &mut self,
        frameworks_dir: &Path,
        id: FrameworkId,
    ) -> Result<FrameworkState, RecoveryError> {
        let mut state = FrameworkState {
            id,
            ..FrameworkState::default()
        };
        let dir = paths::child(frameworks_dir, state.id.as_str());
        let info_path = dir.join(paths::FRAMEWORK_INFO_FILE);
        state.info = self.read_info(&info_path, "framework info", &mut state.errors)?;
        if state.info.is_none() {
            return Ok(state);
        }
        let pid_path = dir.join(paths::FRAMEWORK_PID_FILE);
        state.pid = self.read_text(&pid_path, "framework pid", &mut state.errors)?;
        let executors_dir = dir.join(paths::EXECUTORS_DIR);
        let names = self.list(&executors_dir, &mut state.errors)?;
        let mut executors = Vec::with_capacity(names.len());
        for name in names {
            let executor = self.executor(&executors_dir, ExecutorId::new(name))?;
            state.errors += executor.errors;
            executors.push((executor.id.clone(), executor));
        }
        state.executors = executors.into_iter().collect();
        Ok(state)
    }

    /// `executors_dir`: `.../frameworks/<framework>/executors`.
    fn executor(
        &mut self,
        executors_dir: &Path,
        id: ExecutorId,
    ) -> Result<ExecutorState, RecoveryError> {
        let mut state = ExecutorState {
            id,
            ..ExecutorState::default()
        };
        let dir = paths::child(executors_dir, state.id.as_str());
        let info_path = dir.join(paths::EXECUTOR_INFO_FILE);
        state.info = self.read_info(&info_path, "executor info", &mut state.errors)?;
        if state.info.is_none() {
            return Ok(state);
        }
        let runs_dir = dir.join(paths::RUNS_DIR);
        let names = self.list(&runs_dir, &mut state.errors)?;
        let mut runs = Vec::with_capacity(names.len());
        for name in names {
            if name == paths::LATEST_SYMLINK || name.starts_with('.') {
                continue;
            }
            let run_state = self.run(&runs_dir, ContainerId::new(name))?;
            state.errors += run_state.errors;
            runs.push((run_state.id.clone(), run_state));
        }
        state.runs = runs.into_iter().collect();
        let link = runs_dir.join(paths::LATEST_SYMLINK);
        if let Some(latest) = self.read_latest(&link, &mut state.errors)? {
            let latest = ContainerId::new(latest);
            if state.runs.contains_key(&latest) {
                state.latest = Some(latest);
            } else {
                self.warn(
                    link,
                    WarningKind::DanglingLatest,
                    format!("latest run link points at missing run '{latest}'"),
                );
            }
        }
        Ok(state)
    }

    /// `runs_dir`: `.../executors/<executor>/runs`.
    fn run(&mut self, runs_dir: &Path, id: ContainerId) -> Result<RunState, RecoveryError> {
        let mut state = RunState {
            id,
            ..RunState::default()
        };
        let dir = paths::child(runs_dir, state.id.as_str());
        let names = self.list(&dir, &mut state.errors)?;
        state.completed = names
            .iter()
            .any(|name| name == paths::EXECUTOR_SENTINEL_FILE);
        let http_marker = names.iter().any(|name| name == paths::HTTP_MARKER_FILE);

        let pids_dir = dir.join(paths::PIDS_DIR);
        let pids = self.list(&pids_dir, &mut state.errors)?;
        let forked_path = pids_dir.join(paths::FORKED_PID_FILE);
        if pids.iter().any(|name| name == paths::FORKED_PID_FILE) {
            if let Some(text) = self.read_text(&forked_path, "forked pid", &mut state.errors)? {
                match ForkedPid::parse(&text) {
                    Ok(forked) => state.forked_pid = Some(forked),
                    Err(message) => self.error(
                        &forked_path,
                        format!("corrupt forked pid: {message}"),
                        &mut state.errors,
                    )?,
                }
            }
        } else {
            // The agent died between creating the run and launching the executor.
            self.warn(
                forked_path,
                WarningKind::Missing,
                "forked pid not found".to_owned(),
            );
        }
        if pids.iter().any(|name| name == paths::LIBPROCESS_PID_FILE) {
            let path = pids_dir.join(paths::LIBPROCESS_PID_FILE);
            state.libprocess_pid = self.read_text(&path, "libprocess pid", &mut state.errors)?;
            if state.libprocess_pid.is_some() {
                state.http = Some(false);
            }
        }
        if http_marker {
            state.http = Some(true);
        }

        if names.iter().any(|name| name == paths::TASKS_DIR) {
            let tasks_dir = dir.join(paths::TASKS_DIR);
            let names = self.list(&tasks_dir, &mut state.errors)?;
            let mut tasks = Vec::with_capacity(names.len());
            for name in names {
                let task = self.task(&tasks_dir, TaskId::new(name))?;
                state.errors += task.errors;
                tasks.push((task.id.clone(), task));
            }
            // Sorted already (listings are): built in one pass rather than insert by
            // insert.
            state.tasks = tasks.into_iter().collect();
        }
        Ok(state)
    }

    /// `tasks_dir`: `.../runs/<container>/tasks`.
    fn task(&mut self, tasks_dir: &Path, id: TaskId) -> Result<TaskState, RecoveryError> {
        let mut state = TaskState {
            id,
            ..TaskState::default()
        };
        // One buffer for both files (sized for the longer name).
        let mut path = PathBuf::with_capacity(
            tasks_dir.as_os_str().len()
                + state.id.as_str().len()
                + paths::TASK_UPDATES_FILE.len()
                + 2,
        );
        path.push(tasks_dir);
        path.push(state.id.as_str());
        path.push(paths::TASK_INFO_FILE);
        state.info = self.read_info(&path, "task info", &mut state.errors)?;
        if state.info.is_none() {
            return Ok(state);
        }
        path.set_file_name(paths::TASK_UPDATES_FILE);
        let bytes = match self.fs.read(&path) {
            Ok(bytes) => {
                self.read.logs.push(path.clone());
                Bytes::from(bytes)
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(state),
            Err(error) => {
                self.error(
                    &path,
                    format!("failed to read status updates: {error}"),
                    &mut state.errors,
                )?;
                return Ok(state);
            }
        };
        let (payloads, cut) =
            self.read_log(&path, &bytes, FileKind::TaskUpdates, &mut state.errors)?;
        state.bytes_cut = cut;
        // Every record that is not an ACK is (at most) one update.
        let updates = payloads
            .iter()
            .filter(|(_, payload)| plain_ack(payload).is_none())
            .count();
        state.updates = Vec::with_capacity(updates);
        for (offset, payload) in payloads {
            // Decoding from a `Bytes` (a view of the file's buffer) copies each bytes
            // field once; from a `&[u8]`, prost copies them twice.
            match decode_update_record(payload, || bytes.slice_ref(payload)) {
                Ok(DecodedRecord::Update(update)) => state.updates.push(update),
                Ok(DecodedRecord::Ack(uuid)) => {
                    state.acks.insert(uuid);
                }
                Err(message) => {
                    self.error(&path, message, &mut state.errors)?;
                    state.bytes_cut =
                        self.cut_invalid_record(&path, offset, bytes.len(), FileKind::TaskUpdates)?;
                    break;
                }
            }
        }
        Ok(state)
    }
}

#[allow(clippy::large_enum_variant)] // lives for one loop iteration
#[derive(Debug, PartialEq)]
enum DecodedRecord {
    Update(StatusUpdate),
    Ack(Uuid),
}

/// The bytes prost writes for an ACK record, up to its uuid: `type` (field 1, varint)
/// `ACK` (1), then `uuid` (field 3, length-delimited) of 16 bytes.
const PLAIN_ACK_PREFIX: [u8; 4] = [0x08, 0x01, 0x1a, 0x10];

/// The uuid of an ACK record encoded exactly as prost encodes one (the type, then the
/// 16-byte uuid, nothing else): what decoding it gives, without decoding it.
fn plain_ack(payload: &[u8]) -> Option<Uuid> {
    Uuid::from_bytes(payload.strip_prefix(&PLAIN_ACK_PREFIX)?)
}

/// Decodes one record of `task.updates`; `buffer` gives the same payload as a `Bytes`
/// (asked for only when the record is not a plain ACK).
fn decode_update_record(
    payload: &[u8],
    buffer: impl FnOnce() -> Bytes,
) -> Result<DecodedRecord, String> {
    match plain_ack(payload) {
        Some(uuid) => Ok(DecodedRecord::Ack(uuid)),
        None => decode_update_record_fully(buffer()),
    }
}

fn decode_update_record_fully(payload: Bytes) -> Result<DecodedRecord, String> {
    let record = StatusUpdateRecord::decode(payload)
        .map_err(|error| format!("failed to decode status update record: {error}"))?;
    match status_update_record::Type::try_from(record.r#type) {
        Ok(status_update_record::Type::Update) => {
            let update = record.update.ok_or("UPDATE record without an update")?;
            if Uuid::from_bytes(&update.uuid).is_none() {
                return Err("UPDATE record without a 16-byte uuid".to_owned());
            }
            if update.status.is_none() {
                return Err("UPDATE record without a status".to_owned());
            }
            Ok(DecodedRecord::Update(update))
        }
        Ok(status_update_record::Type::Ack) => Uuid::from_bytes(&record.uuid)
            .map(DecodedRecord::Ack)
            .ok_or_else(|| "ACK record without a 16-byte uuid".to_owned()),
        Err(_) => Err(format!(
            "unknown status update record type {}",
            record.r#type
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::TaskStatus;

    fn record(r#type: status_update_record::Type, uuid: Vec<u8>) -> StatusUpdateRecord {
        StatusUpdateRecord {
            r#type: r#type as i32,
            update: None,
            uuid,
        }
    }

    /// The shortcut for plain ACKs gives what the full decode gives, and is taken for
    /// exactly the ACKs the agent writes.
    #[test]
    fn the_plain_ack_shortcut_decodes_as_prost_does() {
        let ack = record(status_update_record::Type::Ack, vec![7; 16]).encode_to_vec();
        let update = StatusUpdateRecord {
            update: Some(StatusUpdate {
                status: Some(TaskStatus::default()),
                uuid: vec![3; 16],
                ..StatusUpdate::default()
            }),
            ..record(status_update_record::Type::Update, Vec::new())
        }
        .encode_to_vec();
        let mut two_uuids = ack.clone();
        two_uuids.extend_from_slice(&ack[2..]);
        let payloads = [
            ack.clone(),
            ack[..ack.len() - 1].to_vec(),
            two_uuids,
            record(status_update_record::Type::Ack, vec![7; 15]).encode_to_vec(),
            record(status_update_record::Type::Ack, vec![7; 17]).encode_to_vec(),
            record(status_update_record::Type::Update, vec![7; 16]).encode_to_vec(),
            // The type as a two-byte varint: an ACK, but not as prost writes one.
            [&[0x08, 0x81, 0x00], &ack[2..]].concat(),
            update,
        ];
        for payload in &payloads {
            let fully = decode_update_record_fully(Bytes::from(payload.clone()));
            let decoded = decode_update_record(payload, || Bytes::from(payload.clone()));
            assert_eq!(decoded, fully, "{payload:?}");
            let shortcut = plain_ack(payload).is_some();
            assert_eq!(shortcut, *payload == ack, "{payload:?}");
        }
        assert_eq!(
            decode_update_record(&ack, || unreachable!()),
            Ok(DecodedRecord::Ack(Uuid([7; 16])))
        );
    }
}
