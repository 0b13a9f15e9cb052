//! Recovery level by level: resources, the latest agent, its frameworks, executors,
//! runs and tasks, each read into its part of the recovered tree.

use super::records::{decode_update_record, plain_ack, DecodedRecord};
use super::*;

impl Walk<'_> {
    pub(super) fn resources(&mut self) -> Result<ResourcesState, RecoveryError> {
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

    pub(super) fn latest_agent(&mut self) -> Result<Option<AgentState>, RecoveryError> {
        let link = self.paths.latest_agent();
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
            // docs/recovery-rules.md R40: which agent to recover is unknown, strict or not.
            Err(error) => {
                let message = format!("failed to read link: {error}");
                if self.skips_unreadable(&link, &message) {
                    return Ok(None);
                }
                return Err(self.stop(&link, message));
            }
        };
        let id = target
            .file_name()
            .map(|name| AgentId::new(name.to_string_lossy().into_owned()))
            .unwrap_or_default();
        let dir = self.paths.agent(&id);
        if id.as_str().is_empty() || !self.fs.is_dir(&dir) {
            return Err(self.stop(
                &link,
                format!(
                    "latest agent link points at '{}', which does not exist",
                    target.display()
                ),
            ));
        }
        self.agent(id, &dir).map(Some)
    }

    // Below the agent, each path is built from its parent directory's (`paths::child`),
    // the same paths as `MetaPaths` builds from the root, with fewer allocations.

    /// `dir`: `slaves/<id>`.
    pub(super) fn agent(&mut self, id: AgentId, dir: &Path) -> Result<AgentState, RecoveryError> {
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
        state.frameworks = self.children(
            &frameworks_dir,
            &mut state.errors,
            skip_none,
            Self::framework,
        )?;
        Ok(state)
    }

    /// Reads each entry of `dir` but those `skip` picks with `read` (ids in the
    /// listing's sorted order), each child's errors counted into `errors` too.
    fn children<L: Level>(
        &mut self,
        dir: &Path,
        errors: &mut u32,
        skip: fn(&str) -> bool,
        read: fn(&mut Self, &Path, String) -> Result<L, RecoveryError>,
    ) -> Result<BTreeMap<L::Id, L>, RecoveryError> {
        let names = self.list(dir)?;
        let mut children = Vec::with_capacity(names.len());
        for name in names {
            if skip(&name) {
                continue;
            }
            let child = read(self, dir, name)?;
            *errors += child.errors();
            children.push((child.id().clone(), child));
        }
        // Sorted already (listings are): built in one pass rather than insert by insert.
        Ok(children.into_iter().collect())
    }

    /// Reads the info file `file` (`what` in errors) of the directory `<parent>/<name>`
    /// into `info`; that directory when the file held one, `None` when not (nothing
    /// below it is read then).
    fn info_of<M: Message + Default>(
        &mut self,
        (parent, name): (&Path, &str),
        (file, what): (&str, &str),
        info: &mut Option<M>,
        errors: &mut u32,
    ) -> Result<Option<PathBuf>, RecoveryError> {
        let dir = paths::child(parent, name);
        *info = self.read_info(&dir.join(file), what, errors)?;
        Ok(info.is_some().then_some(dir))
    }

    /// `frameworks_dir`: `slaves/<agent>/frameworks`.
    fn framework(
        &mut self,
        frameworks_dir: &Path,
        id: String,
    ) -> Result<FrameworkState, RecoveryError> {
        let mut state = FrameworkState {
            id: FrameworkId::new(id),
            ..FrameworkState::default()
        };
        let at = (frameworks_dir, state.id.as_str());
        let file = (paths::FRAMEWORK_INFO_FILE, "framework info");
        if let Some(dir) = self.info_of(at, file, &mut state.info, &mut state.errors)? {
            let pid_path = dir.join(paths::FRAMEWORK_PID_FILE);
            state.pid = self.read_text(&pid_path, "framework pid", &mut state.errors)?;
            let executors_dir = dir.join(paths::EXECUTORS_DIR);
            state.executors =
                self.children(&executors_dir, &mut state.errors, skip_none, Self::executor)?;
        }
        Ok(state)
    }

    /// `executors_dir`: `.../frameworks/<framework>/executors`.
    fn executor(
        &mut self,
        executors_dir: &Path,
        id: String,
    ) -> Result<ExecutorState, RecoveryError> {
        let mut state = ExecutorState {
            id: ExecutorId::new(id),
            ..ExecutorState::default()
        };
        let file = (paths::EXECUTOR_INFO_FILE, "executor info");
        let at = (executors_dir, state.id.as_str());
        let Some(dir) = self.info_of(at, file, &mut state.info, &mut state.errors)? else {
            return Ok(state);
        };
        let runs_dir = dir.join(paths::RUNS_DIR);
        state.runs = self.children(&runs_dir, &mut state.errors, not_a_run, Self::run)?;
        let link = runs_dir.join(paths::LATEST_SYMLINK);
        if let Some(latest) = self.read_latest(&link)? {
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
    fn run(&mut self, runs_dir: &Path, id: String) -> Result<RunState, RecoveryError> {
        let mut state = RunState {
            id: ContainerId::new(id),
            ..RunState::default()
        };
        let dir = paths::child(runs_dir, state.id.as_str());
        let names = self.list(&dir)?;
        state.completed = names
            .iter()
            .any(|name| name == paths::EXECUTOR_SENTINEL_FILE);
        let http_marker = names.iter().any(|name| name == paths::HTTP_MARKER_FILE);

        let pids_dir = dir.join(paths::PIDS_DIR);
        let pids = self.list(&pids_dir)?;
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
            state.tasks = self.children(&tasks_dir, &mut state.errors, skip_none, Self::task)?;
        }
        Ok(state)
    }

    /// `tasks_dir`: `.../runs/<container>/tasks`.
    fn task(&mut self, tasks_dir: &Path, id: String) -> Result<TaskState, RecoveryError> {
        let mut state = TaskState {
            id: TaskId::new(id),
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

/// Every entry of a directory is a child.
fn skip_none(_name: &str) -> bool {
    false
}

/// In `runs/`, the `latest` link and hidden names are not runs.
fn not_a_run(name: &str) -> bool {
    name == paths::LATEST_SYMLINK || name.starts_with('.')
}

/// A directory level of the recovered tree below the agent (framework, executor, run,
/// task): kept in its parent's map by id, its errors counted into the parent's too.
trait Level {
    type Id: Ord + Clone;
    fn id(&self) -> &Self::Id;
    fn errors(&self) -> u32;
}

macro_rules! level {
    ($($state:ty => $id:ty),* $(,)?) => {$(
        impl Level for $state {
            type Id = $id;
            fn id(&self) -> &$id {
                &self.id
            }
            fn errors(&self) -> u32 {
                self.errors
            }
        }
    )*};
}

level!(
    FrameworkState => FrameworkId,
    ExecutorState => ExecutorId,
    RunState => ContainerId,
    TaskState => TaskId,
);
