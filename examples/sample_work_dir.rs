//! Writes a realistic sample work directory with the agent's own checkpoint writers:
//!
//! ```text
//! cargo run --example sample_work_dir -- DIR
//! revenant inspect --work-dir DIR
//! ```
//!
//! The directory holds one agent with checkpointed resources, one framework and two
//! executors:
//!
//! - `web-executor` has two runs: an older one that completed (its task `web-1`
//!   finished, every update acknowledged, `executor.sentinel` written), and the latest,
//!   live run, whose task `web-2` is running with its TASK_RUNNING update not yet
//!   acknowledged by the framework;
//! - `batch-executor` (an HTTP executor) has one run whose task `batch-1` was killed: the
//!   TASK_KILLED update is not yet acknowledged.
//!
//! Every id and uuid is fixed, so two runs write the same bytes except for the boot id,
//! which is this machine's (`/proc/sys/kernel/random/boot_id`, so that `inspect` without
//! `--ignore-boot-id` recovers the agent), or the one given after the directory.
//!
//! It is also the generator of the format fixtures (`tests/fixtures/format-v1/`, checked
//! by `tests/format_compat.rs`): `cargo run --example sample_work_dir --
//! tests/fixtures/format-v1/sample 00000000-0000-4000-8000-000000000000`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;

use revenant::checkpoint::paths::{self, MetaPaths, RunPath};
use revenant::checkpoint::{CheckpointStore, ForkedPid};
use revenant::ids::{AgentId, ContainerId, ExecutorId, FrameworkId, TaskId, Uuid};
use revenant::os::real::{ProcBootId, RealFs};
use revenant::os::{BootId, FileSystem, ProcessId};
use revenant::proto::{
    AgentInfo, CommandInfo, ExecutorInfo, FrameworkInfo, Resource, StatusUpdate, Task, TaskReason,
    TaskSource, TaskState, TaskStatus,
};

const AGENT: &str = "7c0e2a51-3b8d-4f62-9e1a-5d4c3b2a1f00-S0";
const FRAMEWORK: &str = "7c0e2a51-3b8d-4f62-9e1a-5d4c3b2a1f00-0001";
const FALLBACK_BOOT_ID: &str = "00000000-0000-4000-8000-000000000000";
/// The wall-clock second every timestamp of the sample counts from (2026-01-01T00:00:00Z).
const EPOCH: f64 = 1_767_225_600.0;

fn resource(name: &str, scalar: f64, role: &str, reservation: &str) -> Resource {
    Resource {
        name: name.to_owned(),
        scalar,
        role: role.to_owned(),
        reservation: reservation.to_owned(),
    }
}

fn command(value: &str, arguments: &[&str]) -> CommandInfo {
    CommandInfo {
        value: value.to_owned(),
        arguments: arguments.iter().map(|a| (*a).to_owned()).collect(),
        environment: BTreeMap::from([("REVENANT_SAMPLE".to_owned(), "1".to_owned())]),
    }
}

/// A fixed uuid: the executor's number, the task's number and the update's number.
fn uuid(executor: u8, task: u8, update: u8) -> Uuid {
    let mut bytes = [0u8; 16];
    bytes[0] = 0x5a;
    bytes[6] = 0x40; // version 4 nibble, for looks
    bytes[8] = 0x80; // variant bits
    bytes[13] = executor;
    bytes[14] = task;
    bytes[15] = update;
    Uuid(bytes)
}

struct Sample {
    store: CheckpointStore,
    work_dir: PathBuf,
    boot_id: String,
    agent: AgentId,
    framework: FrameworkId,
}

impl Sample {
    fn executor_info(&self, id: &str, name: &str, command_line: CommandInfo) -> ExecutorInfo {
        ExecutorInfo {
            executor_id: id.to_owned(),
            framework_id: self.framework.as_str().to_owned(),
            name: name.to_owned(),
            command: Some(command_line),
            resources: vec![resource("cpus", 0.1, "", ""), resource("mem", 32.0, "", "")],
        }
    }

    /// Starts a run as the agent does: the run directory and `runs/latest` first, the
    /// sandbox, then the forked pid once the executor exists, then its registration.
    fn start_run(&self, run: &RunPath<'_>, pid: u32, http: bool) {
        self.store.write_run(run).expect("write run");
        self.store
            .fs()
            .create_dir_all_durably(&paths::sandbox(&self.work_dir, run))
            .expect("create sandbox");
        let forked = ForkedPid {
            process: ProcessId {
                pid,
                start_time: 4_200_000 + u64::from(pid),
            },
            boot_id: self.boot_id.clone(),
            secret: None,
        };
        self.store
            .write_forked_pid(run, &forked)
            .expect("write forked pid");
        if http {
            self.store
                .write_http_marker(run)
                .expect("write http marker");
        } else {
            self.store
                .write_libprocess_pid(
                    run,
                    &format!("executor(1)@10.0.0.7:{}", 40_000 + pid % 1000),
                )
                .expect("write libprocess pid");
        }
    }

    fn task(&self, run: &RunPath<'_>, id: &str, name: &str, command_line: CommandInfo) -> TaskId {
        let task = Task {
            task_id: id.to_owned(),
            name: name.to_owned(),
            framework_id: self.framework.as_str().to_owned(),
            executor_id: run.executor.as_str().to_owned(),
            agent_id: self.agent.as_str().to_owned(),
            state: TaskState::TaskStaging as i32,
            resources: vec![
                resource("cpus", 1.0, "", ""),
                resource("mem", 256.0, "", ""),
            ],
            command: Some(command_line),
        };
        self.store.write_task(run, &task).expect("write task");
        TaskId::new(id)
    }

    /// Appends an update (and, if `acknowledged`, the framework's acknowledgement of it).
    #[allow(clippy::too_many_arguments)]
    fn update(
        &self,
        run: &RunPath<'_>,
        task: &TaskId,
        state: TaskState,
        reason: TaskReason,
        message: &str,
        id: Uuid,
        seconds: f64,
        acknowledged: bool,
    ) {
        let timestamp = EPOCH + seconds;
        let update = StatusUpdate {
            framework_id: self.framework.as_str().to_owned(),
            executor_id: run.executor.as_str().to_owned(),
            agent_id: self.agent.as_str().to_owned(),
            status: Some(TaskStatus {
                task_id: task.as_str().to_owned(),
                state: state as i32,
                source: TaskSource::SourceExecutor as i32,
                reason: reason as i32,
                message: message.to_owned(),
                agent_id: self.agent.as_str().to_owned(),
                executor_id: run.executor.as_str().to_owned(),
                timestamp,
                uuid: id.to_vec(),
            }),
            timestamp,
            uuid: id.to_vec(),
            latest_state: state as i32,
        };
        self.store
            .append_update(run, task, &update)
            .expect("append update");
        if acknowledged {
            self.store.append_ack(run, task, id).expect("append ack");
        }
    }
}

fn write_sample(work_dir: &Path, boot_id: String) {
    let fs: Rc<dyn FileSystem> = Rc::new(RealFs::default());
    fs.create_dir_all_durably(work_dir)
        .expect("create work directory");
    let sample = Sample {
        store: CheckpointStore::new(fs, MetaPaths::for_work_dir(work_dir)),
        work_dir: work_dir.to_path_buf(),
        boot_id,
        agent: AgentId::new(AGENT),
        framework: FrameworkId::new(FRAMEWORK),
    };
    let store = &sample.store;
    let (agent, framework) = (&sample.agent, &sample.framework);

    // The agent starts: boot id, then its resources (a dynamic reservation and a
    // persistent volume for the "analytics" role), then it registers.
    store.write_boot_id(&sample.boot_id).expect("write boot id");
    store
        .append_resources(&[
            resource("cpus", 2.0, "analytics", "dynamic:ops"),
            resource("disk", 4096.0, "analytics", "volume:pg-data"),
        ])
        .expect("write resources");
    store
        .write_agent_info(&AgentInfo {
            id: AGENT.to_owned(),
            hostname: "node-7.example.com".to_owned(),
            port: 5051,
            resources: vec![
                resource("cpus", 8.0, "", ""),
                resource("mem", 15_872.0, "", ""),
                resource("disk", 102_400.0, "", ""),
            ],
            checkpoint: true,
        })
        .expect("write agent info");

    // A framework with checkpointing.
    store
        .write_framework(
            agent,
            &FrameworkInfo {
                id: FRAMEWORK.to_owned(),
                name: "marathon-sample".to_owned(),
                user: "svc-deploy".to_owned(),
                checkpoint: true,
                failover_timeout_seconds: 604_800.0,
                role: String::new(),
                principal: String::new(),
            },
            "scheduler-1@10.0.0.5:5050",
        )
        .expect("write framework");

    // Executor 1: a completed run, then a live one.
    let web = ExecutorId::new("web-executor");
    let web_command = command("/usr/libexec/revenant/executor", &["--kind", "web"]);
    store
        .write_executor(
            agent,
            &sample.executor_info(web.as_str(), "web server executor", web_command),
        )
        .expect("write executor");

    let old = ContainerId::new("0f6a4c1e-2b7d-4e35-8a91-c3d5e7f90001");
    let old_run = RunPath {
        agent,
        framework,
        executor: &web,
        container: &old,
    };
    sample.start_run(&old_run, 21_001, false);
    let web_1 = sample.task(
        &old_run,
        "web-1",
        "web canary",
        command("/bin/sh", &["-c", "curl -fsS localhost:8080/health"]),
    );
    sample.update(
        &old_run,
        &web_1,
        TaskState::TaskStarting,
        TaskReason::ReasonNone,
        "",
        uuid(1, 1, 1),
        10.0,
        true,
    );
    sample.update(
        &old_run,
        &web_1,
        TaskState::TaskRunning,
        TaskReason::ReasonNone,
        "",
        uuid(1, 1, 2),
        11.0,
        true,
    );
    sample.update(
        &old_run,
        &web_1,
        TaskState::TaskFinished,
        TaskReason::ReasonNone,
        "command exited with status 0",
        uuid(1, 1, 3),
        70.0,
        true,
    );
    store.write_sentinel(&old_run).expect("write sentinel");

    let live = ContainerId::new("0f6a4c1e-2b7d-4e35-8a91-c3d5e7f90002");
    let live_run = RunPath {
        agent,
        framework,
        executor: &web,
        container: &live,
    };
    sample.start_run(&live_run, 21_377, false);
    let web_2 = sample.task(
        &live_run,
        "web-2",
        "web server",
        command("/usr/bin/python3", &["-m", "http.server", "8080"]),
    );
    sample.update(
        &live_run,
        &web_2,
        TaskState::TaskStarting,
        TaskReason::ReasonNone,
        "",
        uuid(1, 2, 1),
        100.0,
        true,
    );
    // Not yet acknowledged: the agent must resend it after recovering.
    sample.update(
        &live_run,
        &web_2,
        TaskState::TaskRunning,
        TaskReason::ReasonNone,
        "",
        uuid(1, 2, 2),
        101.5,
        false,
    );

    // Executor 2: an HTTP executor whose task was killed.
    let batch = ExecutorId::new("batch-executor");
    store
        .write_executor(
            agent,
            &sample.executor_info(
                batch.as_str(),
                "batch executor",
                command(
                    "/usr/libexec/revenant/executor",
                    &["--kind", "batch", "--http"],
                ),
            ),
        )
        .expect("write executor");
    let batch_container = ContainerId::new("9e8d7c6b-5a49-4382-b1a0-f9e8d7c60001");
    let batch_run = RunPath {
        agent,
        framework,
        executor: &batch,
        container: &batch_container,
    };
    sample.start_run(&batch_run, 22_010, true);
    let batch_1 = sample.task(
        &batch_run,
        "batch-1",
        "nightly report",
        command("/opt/reports/bin/nightly", &["--date", "2026-01-01"]),
    );
    sample.update(
        &batch_run,
        &batch_1,
        TaskState::TaskStarting,
        TaskReason::ReasonNone,
        "",
        uuid(2, 1, 1),
        200.0,
        true,
    );
    sample.update(
        &batch_run,
        &batch_1,
        TaskState::TaskRunning,
        TaskReason::ReasonNone,
        "",
        uuid(2, 1, 2),
        201.0,
        true,
    );
    sample.update(
        &batch_run,
        &batch_1,
        TaskState::TaskKilled,
        TaskReason::ReasonNone,
        "killed by the framework",
        uuid(2, 1, 3),
        900.0,
        false,
    );
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), given_boot_id, None) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: cargo run --example sample_work_dir -- DIR [BOOT_ID]");
        return ExitCode::from(2);
    };
    let work_dir = PathBuf::from(dir);
    let fs = RealFs::default();
    let meta = MetaPaths::for_work_dir(&work_dir);
    if fs.exists(meta.root()) {
        eprintln!(
            "error: '{}' already exists; give a new or empty directory",
            meta.root().display()
        );
        return ExitCode::FAILURE;
    }
    let boot_id = match given_boot_id.map(|id| id.to_string_lossy().into_owned()) {
        Some(id) if !id.is_empty() => Ok(id),
        _ => ProcBootId.boot_id(),
    };
    let boot_id = match boot_id {
        Ok(id) if !id.is_empty() => id,
        _ => {
            eprintln!("note: no boot id on this machine; using {FALLBACK_BOOT_ID}");
            FALLBACK_BOOT_ID.to_owned()
        }
    };
    write_sample(&work_dir, boot_id);
    println!("{}", work_dir.display());
    eprintln!(
        "wrote a sample work directory; see it with: revenant inspect --work-dir {}",
        work_dir.display()
    );
    ExitCode::SUCCESS
}
