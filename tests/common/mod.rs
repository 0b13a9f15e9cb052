//! Shared fixtures for the checkpoint integration tests: a meta directory on a real
//! temporary directory, written with the agent's own writers.
#![allow(dead_code, clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use revenant::checkpoint::paths::{MetaPaths, RunPath};
use revenant::checkpoint::recover::{
    AgentState, ExecutorState, FrameworkState, RunState, TaskState,
};
use revenant::checkpoint::{
    recover, CheckpointStore, ForkedPid, RecoverOptions, RecoveryError, State,
};
use revenant::ids::{AgentId, ContainerId, ExecutorId, FrameworkId, TaskId, Uuid};
use revenant::os::real::RealFs;
use revenant::os::ProcessId;
use revenant::proto::{
    status_update_record, AgentInfo, CommandInfo, ExecutorInfo, FrameworkInfo, Resource,
    StatusUpdate, StatusUpdateRecord, Task, TaskState as ProtoTaskState, TaskStatus,
};
use tempfile::TempDir;

pub const BOOT_ID: &str = "6a1f3c52-0d6e-4c8e-9a51-2b7d0f4e9c11";
pub const AGENT: &str = "agent-1";
pub const FRAMEWORK: &str = "framework-1";
pub const EXECUTOR: &str = "executor-1";
pub const CONTAINER: &str = "container-1";
pub const TASK: &str = "task-1";
pub const FRAMEWORK_PID: &str = "scheduler@10.0.0.5:5050";
pub const LIBPROCESS_PID: &str = "executor(1)@10.0.0.7:40123";

/// A uuid whose 16 bytes are all `byte`.
pub fn uuid(byte: u8) -> Uuid {
    Uuid([byte; 16])
}

pub fn agent_info() -> AgentInfo {
    AgentInfo {
        id: AGENT.to_owned(),
        hostname: "node-7.example".to_owned(),
        port: 5051,
        resources: vec![resource("cpus", 4.0, ""), resource("mem", 2048.0, "")],
        checkpoint: true,
    }
}

pub fn framework_info() -> FrameworkInfo {
    FrameworkInfo {
        id: FRAMEWORK.to_owned(),
        name: "batch".to_owned(),
        user: "nobody".to_owned(),
        checkpoint: true,
        failover_timeout_seconds: 3600.0,
        role: String::new(),
        principal: String::new(),
    }
}

pub fn executor_info() -> ExecutorInfo {
    ExecutorInfo {
        executor_id: EXECUTOR.to_owned(),
        framework_id: FRAMEWORK.to_owned(),
        name: "sleeper".to_owned(),
        command: Some(CommandInfo {
            value: "/bin/sleep".to_owned(),
            arguments: vec!["600".to_owned()],
            environment: BTreeMap::new(),
        }),
        resources: vec![resource("cpus", 0.1, "")],
    }
}

pub fn task_info(task: &str) -> Task {
    Task {
        task_id: task.to_owned(),
        name: format!("{task} name"),
        framework_id: FRAMEWORK.to_owned(),
        executor_id: EXECUTOR.to_owned(),
        agent_id: AGENT.to_owned(),
        state: ProtoTaskState::TaskStaging as i32,
        resources: vec![resource("cpus", 1.0, "")],
        command: None,
    }
}

pub fn resource(name: &str, scalar: f64, role: &str) -> Resource {
    Resource {
        name: name.to_owned(),
        scalar,
        role: role.to_owned(),
        reservation: if role.is_empty() {
            String::new()
        } else {
            format!("reserved-for-{role}")
        },
    }
}

/// The resources [`Fixture::write_full_tree`] checkpoints.
pub fn checkpointed_resources() -> Vec<Resource> {
    vec![
        resource("cpus", 2.0, "analytics"),
        resource("disk", 1024.0, "analytics"),
    ]
}

/// A status update of `task` to `state`, identified by `uuid(uuid_byte)`.
pub fn update(task: &str, state: ProtoTaskState, uuid_byte: u8) -> StatusUpdate {
    let id = uuid(uuid_byte).to_vec();
    StatusUpdate {
        framework_id: FRAMEWORK.to_owned(),
        executor_id: EXECUTOR.to_owned(),
        agent_id: AGENT.to_owned(),
        status: Some(TaskStatus {
            task_id: task.to_owned(),
            state: state as i32,
            source: 0,
            reason: 0,
            message: format!("{} of {task}", state.as_str_name()),
            agent_id: AGENT.to_owned(),
            executor_id: EXECUTOR.to_owned(),
            timestamp: 1_700_000_000.0 + f64::from(uuid_byte),
            uuid: id.clone(),
        }),
        timestamp: 1_700_000_000.5 + f64::from(uuid_byte),
        uuid: id,
        latest_state: state as i32,
    }
}

/// The three updates [`Fixture::write_full_tree`] writes for [`TASK`].
pub fn three_updates() -> Vec<StatusUpdate> {
    vec![
        update(TASK, ProtoTaskState::TaskStarting, 1),
        update(TASK, ProtoTaskState::TaskRunning, 2),
        update(TASK, ProtoTaskState::TaskFinished, 3),
    ]
}

pub fn update_record(update: &StatusUpdate) -> StatusUpdateRecord {
    StatusUpdateRecord {
        r#type: status_update_record::Type::Update as i32,
        update: Some(update.clone()),
        uuid: Vec::new(),
    }
}

pub fn ack_record(uuid: Uuid) -> StatusUpdateRecord {
    StatusUpdateRecord {
        r#type: status_update_record::Type::Ack as i32,
        update: None,
        uuid: uuid.to_vec(),
    }
}

pub fn forked_pid() -> ForkedPid {
    ForkedPid {
        process: ProcessId {
            pid: 4242,
            start_time: 987_654,
        },
        boot_id: BOOT_ID.to_owned(),
        secret: None,
    }
}

pub fn options(strict: bool, truncate: bool, current_boot_id: Option<&str>) -> RecoverOptions {
    RecoverOptions {
        strict,
        truncate,
        current_boot_id: current_boot_id.map(str::to_owned),
    }
}

/// A work directory in a temporary directory, and the ids of one agent, framework,
/// executor, run and task in it.
pub struct Fixture {
    pub dir: TempDir,
    pub store: CheckpointStore,
    pub agent: AgentId,
    pub framework: FrameworkId,
    pub executor: ExecutorId,
    pub container: ContainerId,
    pub task: TaskId,
}

impl Fixture {
    /// An empty work directory (no `meta/` yet).
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let paths = MetaPaths::for_work_dir(dir.path());
        let store = CheckpointStore::new(Rc::new(RealFs::default()), paths);
        Fixture {
            dir,
            store,
            agent: AgentId::new(AGENT),
            framework: FrameworkId::new(FRAMEWORK),
            executor: ExecutorId::new(EXECUTOR),
            container: ContainerId::new(CONTAINER),
            task: TaskId::new(TASK),
        }
    }

    /// A work directory holding [`Fixture::write_full_tree`].
    pub fn full() -> Fixture {
        let fixture = Fixture::new();
        fixture.write_full_tree();
        fixture
    }

    pub fn work_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn paths(&self) -> &MetaPaths {
        self.store.paths()
    }

    pub fn run(&self) -> RunPath<'_> {
        RunPath {
            agent: &self.agent,
            framework: &self.framework,
            executor: &self.executor,
            container: &self.container,
        }
    }

    pub fn task_updates(&self) -> PathBuf {
        self.paths().task_updates(&self.run(), &self.task)
    }

    /// Writes a complete tree the way the agent does: boot id, resources, agent,
    /// framework, executor, one run with its forked and libprocess pids, and one task with
    /// three updates of which the first two are acknowledged.
    pub fn write_full_tree(&self) {
        let store = &self.store;
        store.write_boot_id(BOOT_ID).unwrap();
        store.append_resources(&checkpointed_resources()).unwrap();
        store.write_agent_info(&agent_info()).unwrap();
        store
            .write_framework(&self.agent, &framework_info(), FRAMEWORK_PID)
            .unwrap();
        store.write_executor(&self.agent, &executor_info()).unwrap();
        let run = self.run();
        store.write_run(&run).unwrap();
        store.write_forked_pid(&run, &forked_pid()).unwrap();
        store.write_libprocess_pid(&run, LIBPROCESS_PID).unwrap();
        store.write_task(&run, &task_info(TASK)).unwrap();
        let updates = three_updates();
        store.append_update(&run, &self.task, &updates[0]).unwrap();
        store.append_update(&run, &self.task, &updates[1]).unwrap();
        store.append_ack(&run, &self.task, uuid(1)).unwrap();
        store.append_update(&run, &self.task, &updates[2]).unwrap();
        store.append_ack(&run, &self.task, uuid(2)).unwrap();
    }

    pub fn recover(&self, options: &RecoverOptions) -> Result<Option<State>, RecoveryError> {
        recover(&RealFs::default(), self.paths(), options)
    }

    /// Recovers and expects a state (the meta directory exists).
    pub fn recover_state(&self, strict: bool, truncate: bool) -> State {
        self.recover(&options(strict, truncate, Some(BOOT_ID)))
            .expect("recovery failed")
            .expect("no state recovered")
    }
}

/// Every file and symlink under `root`, with its bytes (or its link target), for
/// checking that a reader changed nothing.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    snapshot_into(root, root, &mut out);
    out
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Dir,
    File(Vec<u8>),
    Symlink(PathBuf),
}

fn snapshot_into(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let relative = path.strip_prefix(root).unwrap().to_path_buf();
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            out.insert(relative, Entry::Symlink(std::fs::read_link(&path).unwrap()));
        } else if kind.is_dir() {
            out.insert(relative, Entry::Dir);
            snapshot_into(root, &path, out);
        } else {
            out.insert(relative, Entry::File(std::fs::read(&path).unwrap()));
        }
    }
}

// Navigation in a recovered state, to the fixture's ids.

pub fn agent_of(state: &State) -> &AgentState {
    state.agent.as_ref().expect("agent recovered")
}

pub fn framework_of(state: &State) -> &FrameworkState {
    &agent_of(state).frameworks[&FrameworkId::new(FRAMEWORK)]
}

pub fn executor_of(state: &State) -> &ExecutorState {
    &framework_of(state).executors[&ExecutorId::new(EXECUTOR)]
}

pub fn run_of(state: &State) -> &RunState {
    &executor_of(state).runs[&ContainerId::new(CONTAINER)]
}

pub fn task_of(state: &State) -> &TaskState {
    &run_of(state).tasks[&TaskId::new(TASK)]
}
