//! The agent's memory after recovering 10,000 checkpointed tasks, against the same agent
//! on an empty work directory.
//!
//! The work directory holds one agent (this machine's boot id, so that it is recovered),
//! one checkpointing framework, 1,000 executors of 10 tasks each. Every task has
//! TASK_STARTING and TASK_RUNNING acknowledged; every other task then TASK_FINISHED not
//! yet acknowledged. The executors' processes are gone (their pids are not alive), so
//! the agent recovers every task, fails the 5,000 running ones (TASK_FAILED,
//! checkpointed) and keeps 10,000 unacknowledged updates to send to the master. The
//! directory is written with the agent's own checkpoint writers (`CheckpointStore`) over
//! a filesystem whose syncs do nothing, which writes the same bytes without 100,000
//! fsyncs.
//!
//! For each work directory, the real `revenant agent` binary (built by cargo for this
//! bench) starts against a real `revenant master`; once `/state` stops answering 503
//! (recovery complete) and says the agent registered, and its resident size has been
//! steady for a second, the bench reads `VmRSS` and `VmHWM` from `/proc/<pid>/status`.
//! Target: `VmRSS` <= 64 MiB after recovering 10,000 tasks.
//!
//! Run with `cargo bench --bench agent_memory`. Knobs: `REVENANT_BENCH_TASKS` (default
//! 10,000), `REVENANT_BENCH_DIR` (default the system temporary directory),
//! `REVENANT_BENCH_AGENT_WRAPPER` (e.g. `heaptrack -o /tmp/agent`: run the agent under a
//! profiler; the figures printed are then meaningless). Under
//! `cargo test --benches` (no `--bench` argument) it runs with 100 tasks as a smoke test.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "support/sync_cost_fs.rs"]
mod sync_cost_fs;

use sync_cost_fs::{SyncCostFs, Syncs};

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use revenant::agent::AgentConfig;
use revenant::checkpoint::paths::{MetaPaths, RunPath};
use revenant::checkpoint::{CheckpointStore, ForkedPid};
use revenant::ids::{AgentId, ContainerId, ExecutorId, FrameworkId, TaskId, Uuid};
use revenant::os::real::{ProcBootId, RealFs};
use revenant::os::{BootId, FileSystem, ProcessId};
use revenant::proto::{
    AgentInfo, CommandInfo, ExecutorInfo, FrameworkInfo, Resource, StatusUpdate, Task, TaskSource,
    TaskState, TaskStatus,
};

const TARGET_MIB: f64 = 64.0;
const TASKS_PER_EXECUTOR: usize = 10;
const AGENT: &str = "bench-memory-agent-S0";
const FRAMEWORK: &str = "bench-memory-framework-0001";

fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").to_string()
}

fn uuid(n: u64) -> Uuid {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    bytes[8..].copy_from_slice(&0x6d65_6d6f_7279_6265_u64.to_le_bytes());
    Uuid(bytes)
}

fn update(eid: &ExecutorId, tid: &TaskId, state: TaskState, n: u64) -> StatusUpdate {
    let uuid = uuid(n).to_vec();
    let timestamp = 1_767_225_600.0 + n as f64;
    StatusUpdate {
        framework_id: FRAMEWORK.into(),
        executor_id: eid.to_string(),
        agent_id: AGENT.into(),
        status: Some(TaskStatus {
            task_id: tid.to_string(),
            state: state as i32,
            source: TaskSource::SourceExecutor as i32,
            reason: 0,
            message: format!("{} of {tid}", state.as_str_name()),
            agent_id: AGENT.into(),
            executor_id: eid.to_string(),
            timestamp,
            uuid: uuid.clone(),
        }),
        timestamp,
        uuid,
        latest_state: state as i32,
    }
}

/// Writes the work directory the agent listening on `listen` recovers.
fn write_work_dir(work_dir: &Path, listen: &str, tasks: usize) {
    let fs: Rc<dyn FileSystem> = Rc::new(SyncCostFs(RealFs::default(), Syncs::Skipped));
    let store = CheckpointStore::new(fs.clone(), MetaPaths::for_work_dir(work_dir));
    let boot_id = ProcBootId.boot_id().expect("this machine's boot id");
    let defaults = AgentConfig::new(Vec::new(), listen.to_owned(), work_dir.to_path_buf());
    let (host, port) = listen.rsplit_once(':').expect("host:port");
    let agent = AgentId::new(AGENT.to_owned());
    let framework = FrameworkId::new(FRAMEWORK.to_owned());
    store.write_boot_id(&boot_id).expect("boot id");
    store
        .write_agent_info(&AgentInfo {
            id: AGENT.into(),
            hostname: host.into(),
            port: port.parse().expect("port"),
            resources: defaults.resources.clone(),
            checkpoint: true,
        })
        .expect("agent info");
    store
        .write_framework(
            &agent,
            &FrameworkInfo {
                id: FRAMEWORK.into(),
                name: "memory bench".into(),
                user: "bench".into(),
                checkpoint: true,
                failover_timeout_seconds: 0.0,
                role: String::new(),
                principal: String::new(),
            },
            "",
        )
        .expect("framework");
    let mut n = 0u64;
    for executor in 0..tasks.div_ceil(TASKS_PER_EXECUTOR) {
        let eid = ExecutorId::new(format!("executor-{executor:05}"));
        let container = ContainerId::new(format!("{:016x}", 0xc0de_0000 + executor));
        let run = RunPath {
            agent: &agent,
            framework: &framework,
            executor: &eid,
            container: &container,
        };
        store
            .write_executor(
                &agent,
                &ExecutorInfo {
                    executor_id: eid.to_string(),
                    framework_id: FRAMEWORK.into(),
                    name: format!("executor {executor}"),
                    command: Some(CommandInfo {
                        value: "revenant executor".into(),
                        ..Default::default()
                    }),
                    resources: vec![Resource {
                        name: "cpus".into(),
                        scalar: 0.1,
                        ..Default::default()
                    }],
                },
            )
            .expect("executor");
        store.write_run(&run).expect("run");
        // A pid that is not alive: the executor died while the agent was down.
        let forked = ForkedPid {
            process: ProcessId {
                pid: 3_000_000 + executor as u32,
                start_time: 1,
            },
            boot_id: boot_id.clone(),
            secret: None,
        };
        store.write_forked_pid(&run, &forked).expect("forked pid");
        store
            .write_libprocess_pid(&run, &format!("executor({eid})@127.0.0.1:1"))
            .expect("libprocess pid");
        for index in 0..TASKS_PER_EXECUTOR {
            let number = executor * TASKS_PER_EXECUTOR + index;
            if number >= tasks {
                break;
            }
            let tid = TaskId::new(format!("task-{number:05}"));
            store
                .write_task(
                    &run,
                    &Task {
                        task_id: tid.to_string(),
                        name: format!("task {number}"),
                        framework_id: FRAMEWORK.into(),
                        executor_id: eid.to_string(),
                        agent_id: AGENT.into(),
                        state: TaskState::TaskStaging as i32,
                        resources: vec![Resource {
                            name: "mem".into(),
                            scalar: 32.0,
                            ..Default::default()
                        }],
                        command: Some(CommandInfo {
                            value: format!("sleep 3600 # task {number}"),
                            ..Default::default()
                        }),
                    },
                )
                .expect("task");
            for state in [TaskState::TaskStarting, TaskState::TaskRunning] {
                n += 1;
                store
                    .append_update(&run, &tid, &update(&eid, &tid, state, n))
                    .expect("update");
                store.append_ack(&run, &tid, uuid(n)).expect("ack");
            }
            if number.is_multiple_of(2) {
                n += 1;
                store
                    .append_update(&run, &tid, &update(&eid, &tid, TaskState::TaskFinished, n))
                    .expect("update");
            }
        }
    }
}

struct Proc {
    child: Child,
    name: &'static str,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(name: &'static str, args: &[&str], log: PathBuf) -> Proc {
    let stderr = std::fs::File::create(&log).expect("log file");
    // A profiler to run the agent under (`heaptrack`, ...): the figures are then the
    // wrapper's, but the profile is the agent's.
    let wrapper = std::env::var("REVENANT_BENCH_AGENT_WRAPPER")
        .ok()
        .filter(|_| name == "agent");
    let mut command = match &wrapper {
        Some(wrapper) => {
            let mut words = wrapper.split_whitespace();
            let mut command = Command::new(words.next().expect("a wrapper program"));
            command.args(words).arg(env!("CARGO_BIN_EXE_revenant"));
            command
        }
        None => Command::new(env!("CARGO_BIN_EXE_revenant")),
    };
    let child = command
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start revenant");
    Proc { child, name, log }
}

/// `GET path` on `address`: the status code and the body.
fn http_get(address: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// `VmRSS` and `VmHWM` of `pid`, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Measured {
    rss_kib: u64,
    hwm_kib: u64,
    recovered_in: Duration,
}

/// Starts an agent on `work_dir`, waits for it to recover and register, and measures it.
fn measure(base: &Path, label: &str, tasks: usize) -> Measured {
    let dir = tempfile::TempDir::new_in(base).expect("a temporary directory");
    let work_dir = dir.path().join("work");
    let listen = free_address();
    let master_address = free_address();
    if tasks > 0 {
        let started = Instant::now();
        write_work_dir(&work_dir, &listen, tasks);
        println!(
            "  {label}: wrote {tasks} tasks in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let _master = spawn(
        "master",
        &["master", "--listen", &master_address],
        dir.path().join("master.log"),
    );
    let started = Instant::now();
    let mut agent = spawn(
        "agent",
        &[
            "agent",
            "--master",
            &master_address,
            "--listen",
            &listen,
            "--work-dir",
            work_dir.to_str().expect("utf-8 path"),
            "--registration-backoff-factor",
            "10ms",
        ],
        dir.path().join("agent.log"),
    );
    let pid = agent.child.id();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut recovered_in = None;
    loop {
        if let Ok(Some(status)) = agent.child.try_wait() {
            let log = std::fs::read_to_string(&agent.log).unwrap_or_default();
            panic!("{label}: the {} exited with {status}:\n{log}", agent.name);
        }
        assert!(
            Instant::now() < deadline,
            "{label}: the agent did not recover and register in time"
        );
        if let Some((code, body)) = http_get(&listen, "/state") {
            if code == 200 {
                recovered_in.get_or_insert_with(|| started.elapsed());
                if body.contains("\"registered\":true") {
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let the re-registration and the resent updates settle: the resident size steady
    // for a second.
    let mut last = memory_kib(pid).0;
    let settle_deadline = Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = memory_kib(pid).0;
        if now.abs_diff(last) * 100 <= last || Instant::now() > settle_deadline {
            break;
        }
        last = now;
    }
    let (rss_kib, hwm_kib) = memory_kib(pid);
    println!(
        "  {label}: recovered in {:.2} s, registered and settled after {:.1} s",
        recovered_in.unwrap_or_default().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Measured {
        rss_kib,
        hwm_kib,
        recovered_in: recovered_in.unwrap_or_default(),
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    let bench = std::env::args().any(|arg| arg == "--bench");
    let tasks: usize = if bench {
        std::env::var("REVENANT_BENCH_TASKS")
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(10_000)
    } else {
        100
    };
    let base = std::env::var_os("REVENANT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    println!("agent_memory: the revenant agent binary, empty work directory against {tasks} recovered tasks");
    let empty = measure(&base, "empty", 0);
    let full = measure(&base, "recovered", tasks);
    println!();
    println!(
        "{:<28} {:>10} {:>10} {:>14}",
        "work directory", "VmRSS MiB", "VmHWM MiB", "recovery s"
    );
    for (label, measured) in [("empty", &empty), (&*format!("{tasks} tasks"), &full)] {
        println!(
            "{:<28} {:>10.1} {:>10.1} {:>14.2}",
            label,
            mib(measured.rss_kib),
            mib(measured.hwm_kib),
            measured.recovered_in.as_secs_f64()
        );
    }
    let verdict = if mib(full.rss_kib) <= TARGET_MIB {
        "met"
    } else {
        "NOT met"
    };
    println!();
    println!(
        "after recovering {tasks} tasks: VmRSS {:.1} MiB (target <= {TARGET_MIB} MiB: {verdict}), {:.2}x the empty agent's {:.1} MiB; VmHWM {:.1} MiB ({:.2}x)",
        mib(full.rss_kib),
        full.rss_kib as f64 / empty.rss_kib as f64,
        mib(empty.rss_kib),
        mib(full.hwm_kib),
        full.hwm_kib as f64 / empty.hwm_kib as f64,
    );
}
