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
    pub(super) fn framework(
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
    pub(super) fn executor(
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
    pub(super) fn run(
        &mut self,
        runs_dir: &Path,
        id: ContainerId,
    ) -> Result<RunState, RecoveryError> {
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
    pub(super) fn task(
        &mut self,
        tasks_dir: &Path,
        id: TaskId,
    ) -> Result<TaskState, RecoveryError> {
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
