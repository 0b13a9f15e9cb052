//! The checkpoint writers: the only code that writes the agent's meta directory.
//!
//! Invariants kept here:
//! - an info or pid file is replaced atomically and durably (temp file, sync, rename,
//!   sync directory), so after any crash it holds the old content or the new;
//! - a `latest` symlink is replaced the same way (a new link at a temp name renamed
//!   over the old one), and its target is a bare id (relative), so a moved work
//!   directory stays valid;
//! - a record is appended to a log and the log synced before the writer returns: an
//!   update is durable before anyone is told it was accepted. Under group commit
//!   ([`CheckpointStore::defer_log_syncs`]) the sync of `task.updates` appends is
//!   deferred to [`CheckpointStore::commit`], which syncs every touched log with one
//!   [`FileSystem::sync_files`]; the caller holds back whatever it would tell anyone
//!   until `commit` returns `Ok`. Any other checkpoint write first syncs the deferred
//!   appends, so files become durable in the order they would have without deferral.
//!   Pipelined ([`CheckpointStore::start_commit`], docs/recovery-latency.md P11-P14):
//!   the group's sync is started and the caller goes on; the logs stay "in flight"
//!   until [`CheckpointStore::commit_done`], and any other checkpoint write (or a
//!   later append outside a group) first syncs them again, at once;
//! - every new directory is made durable (its parent synced) before files go in it;
//! - every message is validated before it is written (ids present and matching the path).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use prost::Message;

use super::paths::{MetaPaths, RunPath};
use super::record::{self, FileKind};
use crate::ids::{AgentId, FrameworkId, TaskId, Uuid};
use crate::os::{FileSystem, LocalFuture, ProcessId};
use crate::proto::{
    status_update_record, AgentInfo, ExecutorInfo, FrameworkInfo, Resource, StatusUpdate,
    StatusUpdateRecord, Task,
};

/// A failed checkpoint write, naming the file and the operation.
#[derive(Debug, thiserror::Error)]
#[error("failed to {operation} '{path}': {source}")]
pub struct StoreError {
    /// The file or directory.
    pub path: PathBuf,
    /// What was being done ("write", "sync", "rename", ...).
    pub operation: &'static str,
    /// The underlying error.
    pub source: io::Error,
}

/// The forked pid of a run, with what is needed to never adopt a reused pid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForkedPid {
    /// The process.
    pub process: ProcessId,
    /// The boot it was started in.
    pub boot_id: String,
    /// What verifies the process's executor secret (docs/security.md SEC17); `None` in
    /// files written before secrets.
    pub secret: Option<crate::security::executor_secret::Verifier>,
}

impl ForkedPid {
    /// The text of `forked.pid`: `<pid> <start_time> <boot_id> [<secret verifier>]`.
    pub fn to_text(&self) -> String {
        match &self.secret {
            None => format!(
                "{} {} {}\n",
                self.process.pid, self.process.start_time, self.boot_id
            ),
            Some(secret) => format!(
                "{} {} {} {}\n",
                self.process.pid,
                self.process.start_time,
                self.boot_id,
                secret.as_str()
            ),
        }
    }

    /// Parses the text of `forked.pid`.
    pub fn parse(text: &str) -> Result<ForkedPid, String> {
        let mut fields = text.split_whitespace();
        let pid = fields
            .next()
            .ok_or("missing pid")?
            .parse::<u32>()
            .map_err(|error| format!("bad pid: {error}"))?;
        let start_time = fields
            .next()
            .ok_or("missing start time")?
            .parse::<u64>()
            .map_err(|error| format!("bad start time: {error}"))?;
        let boot_id = fields.next().ok_or("missing boot id")?.to_owned();
        let secret = fields
            .next()
            .map(crate::security::executor_secret::Verifier::parse)
            .transpose()?;
        if fields.next().is_some() {
            return Err("unexpected trailing fields".to_owned());
        }
        Ok(ForkedPid {
            process: ProcessId { pid, start_time },
            boot_id,
            secret,
        })
    }
}

/// Writes checkpoints into one meta directory.
#[derive(Clone)]
pub struct CheckpointStore {
    fs: Rc<dyn FileSystem>,
    paths: MetaPaths,
    /// Test-only breakage: overwrite checkpoint files in place, unsynced.
    #[cfg(feature = "breakage")]
    pub non_atomic: bool,
    /// Test-only breakage: no directory sync after a rename into place.
    #[cfg(feature = "breakage")]
    pub skip_dir_sync: bool,
    /// Group commit: `Some` while log syncs are deferred, holding the logs appended to
    /// since the last sync.
    deferred: RefCell<Option<BTreeSet<PathBuf>>>,
    /// Group commit pipelined: the logs of each group whose sync was started and has
    /// not yet been reported done (nor synced by a barrier), by group number.
    in_flight: RefCell<BTreeMap<u64, Vec<PathBuf>>>,
    /// The number of the next group started.
    next_group: std::cell::Cell<u64>,
}

/// A group's sync, started by [`CheckpointStore::start_commit`].
pub struct Commit {
    /// The group's number (hand it back to [`CheckpointStore::commit_done`]).
    pub group: u64,
    /// Resolves once every log is durable, or with the first failure.
    pub sync: LocalFuture<'static, Result<(), StoreError>>,
}

fn failed<'a>(
    path: &'a Path,
    operation: &'static str,
) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError {
        path: path.to_path_buf(),
        operation,
        source,
    }
}

impl CheckpointStore {
    /// A store writing under `paths`.
    pub fn new(fs: Rc<dyn FileSystem>, paths: MetaPaths) -> CheckpointStore {
        CheckpointStore {
            fs,
            paths,
            #[cfg(feature = "breakage")]
            non_atomic: false,
            #[cfg(feature = "breakage")]
            skip_dir_sync: false,
            deferred: RefCell::new(None),
            in_flight: RefCell::new(BTreeMap::new()),
            next_group: std::cell::Cell::new(0),
        }
    }

    /// Starts group commit: from now on an append to a `task.updates` log is written but
    /// not synced until [`CheckpointStore::commit`]. The caller must not tell anyone
    /// about those records (acknowledge, forward) before `commit` returned `Ok`.
    pub fn defer_log_syncs(&self) {
        let mut deferred = self.deferred.borrow_mut();
        if deferred.is_none() {
            *deferred = Some(BTreeSet::new());
        }
    }

    /// Ends group commit: syncs every log appended to since
    /// [`CheckpointStore::defer_log_syncs`] with one [`FileSystem::sync_files`], and
    /// syncs at once again from now on. Returns how many files it synced. On an error
    /// the records' durability is unknown: the caller must drop what it held back.
    pub fn commit(&self) -> Result<usize, StoreError> {
        let mut pending = self.deferred.borrow_mut().take().unwrap_or_default();
        pending.extend(
            std::mem::take(&mut *self.in_flight.borrow_mut())
                .into_values()
                .flatten(),
        );
        self.sync_logs(pending)
    }

    /// Ends group commit without waiting (docs/recovery-latency.md P11): starts one
    /// [`FileSystem::start_sync_files`] of every log appended to since
    /// [`CheckpointStore::defer_log_syncs`] and syncs at once again from now on. `None`
    /// when nothing was appended. The caller holds back what it would tell anyone about
    /// the group's records until the returned sync resolved `Ok` (P12), and then hands the
    /// group's number to [`CheckpointStore::commit_done`]. Until then, any other checkpoint
    /// write first syncs those logs again itself (P14).
    pub fn start_commit(&self) -> Option<Commit> {
        let pending = self.deferred.borrow_mut().take().unwrap_or_default();
        if pending.is_empty() {
            return None;
        }
        let paths: Vec<PathBuf> = pending.into_iter().collect();
        let group = self.next_group.get();
        self.next_group.set(group + 1);
        self.in_flight.borrow_mut().insert(group, paths.clone());
        let started = self.fs.start_sync_files(paths.clone());
        let named = paths;
        let sync = Box::pin(async move {
            started.await.map_err(|(index, source)| StoreError {
                path: named.get(index).cloned().unwrap_or_default(),
                operation: "sync",
                source,
            })
        });
        Some(Commit { group, sync })
    }

    /// Group `group`'s sync resolved (`Ok` or not): its logs are no longer in flight.
    pub fn commit_done(&self, group: u64) {
        self.in_flight.borrow_mut().remove(&group);
    }

    /// Makes every log of a group still in flight durable now (one
    /// [`FileSystem::sync_files`]): after `Ok`, every record appended before is durable,
    /// whatever the groups' own syncs do later.
    pub fn sync_in_flight(&self) -> Result<(), StoreError> {
        let paths: BTreeSet<PathBuf> = std::mem::take(&mut *self.in_flight.borrow_mut())
            .into_values()
            .flatten()
            .collect();
        if paths.is_empty() {
            return Ok(());
        }
        self.sync_logs(paths).map(|_| ())
    }

    /// Drops group commit without syncing (the caller is about to stop on an error and
    /// tells no one about the deferred records).
    pub fn abandon_deferred(&self) {
        self.deferred.borrow_mut().take();
    }

    /// Syncs the logs appended to so far under group commit (which stays on): called
    /// before any other checkpoint write, so that files become durable in the order
    /// they would have without deferral.
    ///
    /// Logs of groups still in flight are synced too (docs/recovery-latency.md P14).
    fn barrier(&self) -> Result<(), StoreError> {
        let mut pending = match self.deferred.borrow_mut().as_mut() {
            Some(pending) => std::mem::take(pending),
            None => BTreeSet::new(),
        };
        pending.extend(
            std::mem::take(&mut *self.in_flight.borrow_mut())
                .into_values()
                .flatten(),
        );
        if pending.is_empty() {
            return Ok(());
        }
        self.sync_logs(pending).map(|_| ())
    }

    fn sync_logs(&self, pending: BTreeSet<PathBuf>) -> Result<usize, StoreError> {
        let paths: Vec<PathBuf> = pending.into_iter().collect();
        match self.fs.sync_files(&paths) {
            Ok(()) => Ok(paths.len()),
            Err((index, source)) => Err(StoreError {
                path: paths.get(index).cloned().unwrap_or_default(),
                operation: "sync",
                source,
            }),
        }
    }

    /// The layout this store writes.
    pub fn paths(&self) -> &MetaPaths {
        &self.paths
    }

    /// The filesystem this store writes to.
    pub fn fs(&self) -> &Rc<dyn FileSystem> {
        &self.fs
    }

    fn ensure_dir(&self, dir: &Path) -> Result<(), StoreError> {
        self.barrier()?;
        self.fs
            .create_dir_all_durably(dir)
            .map_err(failed(dir, "create directory"))
    }

    fn replace(&self, path: &Path, data: &[u8]) -> Result<(), StoreError> {
        self.barrier()?;
        if let Some(parent) = path.parent() {
            self.ensure_dir(parent)?;
        }
        if broken!(self.non_atomic) {
            return self.fs.write(path, data).map_err(failed(path, "write"));
        }
        if broken!(self.skip_dir_sync) {
            let temp = crate::os::temp_path_for(path);
            self.fs.write(&temp, data).map_err(failed(&temp, "write"))?;
            self.fs.sync_file(&temp).map_err(failed(&temp, "sync"))?;
            return self.fs.rename(&temp, path).map_err(failed(path, "rename"));
        }
        self.fs
            .replace_atomically(path, data)
            .map_err(failed(path, "replace"))
    }

    fn replace_message(&self, path: &Path, message: &impl Message) -> Result<(), StoreError> {
        let data = record::info_file(&message.encode_to_vec());
        self.replace(path, &data)
    }

    fn point_latest(&self, link: &Path, target: &str) -> Result<(), StoreError> {
        self.barrier()?;
        let dir = link.parent().expect("a latest link has a parent");
        self.ensure_dir(dir)?;
        let temp = crate::os::temp_path_for(link);
        let _ = self.fs.remove_file(&temp);
        self.fs
            .symlink(Path::new(target), &temp)
            .map_err(failed(&temp, "create symlink"))?;
        self.fs
            .rename(&temp, link)
            .map_err(failed(link, "rename symlink"))?;
        if broken!(self.skip_dir_sync) {
            return Ok(());
        }
        self.fs.sync_dir(dir).map_err(failed(dir, "sync directory"))
    }

    /// Writes `boot_id`.
    /// An empty boot id is refused, never written (docs/design.md D13).
    pub fn write_boot_id(&self, boot_id: &str) -> Result<(), StoreError> {
        let path = self.paths.boot_id();
        if boot_id.trim().is_empty() {
            return Err(StoreError {
                path,
                operation: "write",
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "an empty boot id is never checkpointed",
                ),
            });
        }
        self.replace(&path, format!("{boot_id}\n").as_bytes())
    }

    /// Writes `slave.info` and points `slaves/latest` at the agent (first registration).
    pub fn write_agent_info(&self, info: &AgentInfo) -> Result<(), StoreError> {
        assert!(!info.id.is_empty(), "agent info without an id");
        let agent = AgentId::new(info.id.clone());
        self.replace_message(&self.paths.agent_info(&agent), info)?;
        self.point_latest(&self.paths.latest_agent(), agent.as_str())
    }

    /// Removes `slaves/latest`, so that the next start registers as a new agent.
    pub fn forget_latest_agent(&self) -> Result<(), StoreError> {
        self.barrier()?;
        let link = self.paths.latest_agent();
        match self.fs.remove_file(&link) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(failed(&link, "remove")(error)),
        }
        let dir = self.paths.agents_dir();
        self.fs
            .sync_dir(&dir)
            .map_err(failed(&dir, "sync directory"))
    }

    /// Writes `framework.info` and `framework.pid` (empty pid text: no pid).
    pub fn write_framework(
        &self,
        agent: &AgentId,
        info: &FrameworkInfo,
        pid: &str,
    ) -> Result<(), StoreError> {
        assert!(!info.id.is_empty(), "framework info without an id");
        assert!(
            info.checkpoint,
            "checkpointing a framework that does not checkpoint"
        );
        let framework = FrameworkId::new(info.id.clone());
        self.replace_message(&self.paths.framework_info(agent, &framework), info)?;
        self.replace(
            &self.paths.framework_pid(agent, &framework),
            format!("{pid}\n").as_bytes(),
        )
    }

    /// Writes `executor.info`.
    pub fn write_executor(&self, agent: &AgentId, info: &ExecutorInfo) -> Result<(), StoreError> {
        assert!(!info.executor_id.is_empty() && !info.framework_id.is_empty());
        let framework = FrameworkId::new(info.framework_id.clone());
        let executor = crate::ids::ExecutorId::new(info.executor_id.clone());
        self.replace_message(
            &self.paths.executor_info(agent, &framework, &executor),
            info,
        )
    }

    /// Starts a run: creates its directory and points `runs/latest` at it. Written
    /// before the executor is launched: the checkpoint is the intent.
    pub fn write_run(&self, run: &RunPath<'_>) -> Result<(), StoreError> {
        self.ensure_dir(&self.paths.pids_dir(run))?;
        self.point_latest(
            &self
                .paths
                .latest_run(run.agent, run.framework, run.executor),
            run.container.as_str(),
        )
    }

    /// Writes `pids/forked.pid` once the executor process exists.
    pub fn write_forked_pid(
        &self,
        run: &RunPath<'_>,
        forked: &ForkedPid,
    ) -> Result<(), StoreError> {
        self.replace(&self.paths.forked_pid(run), forked.to_text().as_bytes())
    }

    /// Writes `pids/libprocess.pid`: the address the executor registered from.
    pub fn write_libprocess_pid(&self, run: &RunPath<'_>, address: &str) -> Result<(), StoreError> {
        self.replace(
            &self.paths.libprocess_pid(run),
            format!("{address}\n").as_bytes(),
        )
    }

    /// Writes `http.marker` (an HTTP executor).
    pub fn write_http_marker(&self, run: &RunPath<'_>) -> Result<(), StoreError> {
        self.replace(&self.paths.http_marker(run), b"")
    }

    /// Writes `executor.sentinel`: the run completed and all its updates were acknowledged.
    pub fn write_sentinel(&self, run: &RunPath<'_>) -> Result<(), StoreError> {
        self.replace(&self.paths.sentinel(run), b"")
    }

    /// Writes `task.info` (the task in TASK_STAGING) and an empty `task.updates` log.
    pub fn write_task(&self, run: &RunPath<'_>, task: &Task) -> Result<(), StoreError> {
        assert!(!task.task_id.is_empty(), "task without an id");
        let task_id = TaskId::new(task.task_id.clone());
        self.replace_message(&self.paths.task_info(run, &task_id), task)?;
        let updates = self.paths.task_updates(run, &task_id);
        if !self.fs.exists(&updates) {
            self.replace(&updates, &record::file_header(FileKind::TaskUpdates))?;
        }
        Ok(())
    }

    /// Appends an UPDATE record to `task.updates` and syncs it (under group commit, at
    /// [`CheckpointStore::commit`]).
    pub fn append_update(
        &self,
        run: &RunPath<'_>,
        task: &TaskId,
        update: &StatusUpdate,
    ) -> Result<(), StoreError> {
        let status = update
            .status
            .as_ref()
            .expect("status update without a status");
        assert_eq!(status.task_id, task.as_str(), "update for another task");
        assert!(
            Uuid::from_bytes(&update.uuid).is_some(),
            "update without a uuid"
        );
        let record = StatusUpdateRecord {
            r#type: status_update_record::Type::Update as i32,
            update: Some(update.clone()),
            uuid: Vec::new(),
        };
        self.append_records(&self.paths.task_updates(run, task), &[record])
    }

    /// Appends an ACK record for `uuid` to `task.updates` and syncs it (under group
    /// commit, at [`CheckpointStore::commit`]).
    pub fn append_ack(
        &self,
        run: &RunPath<'_>,
        task: &TaskId,
        uuid: Uuid,
    ) -> Result<(), StoreError> {
        let record = StatusUpdateRecord {
            r#type: status_update_record::Type::Ack as i32,
            update: None,
            uuid: uuid.to_vec(),
        };
        self.append_records(&self.paths.task_updates(run, task), &[record])
    }

    /// Appends several records to one log with a single sync (deferred under group
    /// commit).
    pub fn append_records(
        &self,
        path: &Path,
        records: &[StatusUpdateRecord],
    ) -> Result<(), StoreError> {
        let mut bytes = Vec::new();
        for record in records {
            record::frame_into(&record.encode_to_vec(), &mut bytes);
        }
        self.append_framed(path, FileKind::TaskUpdates, &bytes)
    }

    fn append_framed(&self, path: &Path, kind: FileKind, bytes: &[u8]) -> Result<(), StoreError> {
        // docs/recovery-latency.md P56: one look at the path says whether the log is
        // there and appends to the file now under it.
        let appended = self
            .fs
            .append_existing(path, bytes)
            .map_err(failed(path, "append"))?;
        if !appended {
            // A new log: header first, and the new name made durable.
            self.replace(path, &record::file_header(kind))?;
            self.fs
                .append(path, bytes)
                .map_err(failed(path, "append"))?;
        }
        if kind == FileKind::TaskUpdates {
            if let Some(pending) = self.deferred.borrow_mut().as_mut() {
                pending.insert(path.to_path_buf());
                return Ok(());
            }
            // Outside a group: the groups in flight become durable first (P14).
            self.barrier()?;
        }
        self.fs.sync_file(path).map_err(failed(path, "sync"))
    }

    /// Appends checkpointed resources to `resources.info`.
    pub fn append_resources(&self, resources: &[Resource]) -> Result<(), StoreError> {
        self.barrier()?;
        let mut bytes = Vec::new();
        for resource in resources {
            record::frame_into(&resource.encode_to_vec(), &mut bytes);
        }
        let path = self.paths.resources_info();
        self.ensure_dir(&self.paths.resources_dir())?;
        self.append_framed(&path, FileKind::Resources, &bytes)
    }

    /// Replaces `resources.info` with exactly `resources`, atomically.
    pub fn replace_resources(&self, resources: &[Resource]) -> Result<(), StoreError> {
        let mut bytes = record::file_header(FileKind::Resources).to_vec();
        for resource in resources {
            record::frame_into(&resource.encode_to_vec(), &mut bytes);
        }
        self.replace(&self.paths.resources_info(), &bytes)
    }

    /// Removes a checkpoint directory (garbage collection), making the removal durable.
    pub fn remove_dir(&self, dir: &Path) -> Result<(), StoreError> {
        self.barrier()?;
        match self.fs.remove_dir_all(dir) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(failed(dir, "remove")(error)),
        }
        match dir.parent() {
            Some(parent) => self
                .fs
                .sync_dir(parent)
                .map_err(failed(parent, "sync directory")),
            None => Ok(()),
        }
    }
}
