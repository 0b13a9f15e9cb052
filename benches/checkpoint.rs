//! Checkpoint benchmarks, each reported as a ratio against a raw baseline measured in the
//! same run:
//!
//! 1. `durable_update`: one durable status update, [`CheckpointStore::append_update`]
//!    (append + fsync through the `RealFs` seam), against a `std::fs::File` opened once in
//!    append mode in the same directory doing `write_all` of the same framed bytes and
//!    `sync_data`. Target: ratio <= 1.1.
//! 2. `recover`: [`revenant::checkpoint::recover`] (strict, no truncation) of a meta
//!    directory of 10 frameworks x 10 executors x 100 tasks (10,000 tasks), 10 status
//!    updates per task (100,000) and their acks, against a raw recursive walk that lists
//!    every directory and reads every file of the same tree. Target: ratio <= 1.5.
//!
//! Criterion measures each pair in its own group; the ratios printed at the end come from
//! a separate interleaved timing loop (A, B, then B, A, ...; median of each side), so that
//! drift of the machine hits both sides alike. Recovery is also timed in a fresh child
//! process per run (this executable in its profile mode, below), as at an agent's start:
//! there the recovered `State` lands on pages the process never touched, which the
//! in-process loop (warm heap) does not see. That second ratio is informational.
//!
//! The big tree is generated once, with plain `std::fs` writes and no fsync (the real
//! writers would take minutes of fsyncs). The bench first checks, on a small tree, that
//! this generator produces byte for byte what the real `CheckpointStore` writers produce.
//!
//! Knobs (environment variables):
//! - `REVENANT_BENCH_TREE=<dir>`: generate the big tree in `<dir>` (kept, and reused when
//!   it already holds `meta/`) instead of a temporary directory;
//! - `REVENANT_BENCH_PROFILE=recover|walk`: run that operation once on the full-size
//!   tree, print `elapsed_ns <n>` and exit (for `strace -c -f`, `perf stat`, ...; use
//!   with `REVENANT_BENCH_TREE` so that a second run does not pay for the generation).
//!
//! Under `cargo test --benches` (criterion's test mode) everything runs once on a tiny
//! tree, and the ratios printed are not meaningful.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::fs::{self, File, OpenOptions};
use std::hint::black_box;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode};
use prost::Message;
use revenant::checkpoint::paths::{MetaPaths, RunPath};
use revenant::checkpoint::record::{self, FileKind};
use revenant::checkpoint::{recover, CheckpointStore, ForkedPid, RecoverOptions, State};
use revenant::ids::{AgentId, ContainerId, ExecutorId, FrameworkId, TaskId, Uuid};
use revenant::os::real::RealFs;
use revenant::os::{FileSystem, ProcessId};
use revenant::proto::{
    status_update_record, AgentInfo, CommandInfo, ExecutorInfo, FrameworkInfo, Resource,
    StatusUpdate, StatusUpdateRecord, Task, TaskReason, TaskSource, TaskState, TaskStatus,
};

const DURABLE_TARGET: f64 = 1.1;
const RECOVER_TARGET: f64 = 1.5;
const BOOT_ID: &str = "6f1c2a4e-93d1-4b0f-a1d2-5e8f7c3b9a10";

// ---------------------------------------------------------------------------------------
// Deterministic data.

fn mix(mut x: u64) -> u64 {
    // splitmix64
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn uuid(n: u64) -> Uuid {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&mix(n).to_le_bytes());
    bytes[8..].copy_from_slice(&mix(n ^ 0x5555_5555_5555_5555).to_le_bytes());
    Uuid(bytes)
}

fn scalar(name: &str, value: f64) -> Resource {
    Resource {
        name: name.to_owned(),
        scalar: value,
        role: String::new(),
        reservation: String::new(),
    }
}

fn command(value: &str, index: usize) -> CommandInfo {
    CommandInfo {
        value: value.to_owned(),
        arguments: vec!["--port".to_owned(), format!("{}", 31000 + index)],
        environment: [
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
            ("SERVICE_INDEX".to_owned(), index.to_string()),
        ]
        .into_iter()
        .collect(),
    }
}

/// The shape of a generated meta directory.
#[derive(Clone, Copy, Debug)]
struct Shape {
    frameworks: usize,
    executors_per_framework: usize,
    tasks_per_executor: usize,
    updates_per_task: usize,
}

impl Shape {
    fn tasks(&self) -> usize {
        self.frameworks * self.executors_per_framework * self.tasks_per_executor
    }
}

/// What the generator asks a writer to do, in the order the agent would.
trait Sink {
    fn boot_id(&mut self, boot_id: &str);
    fn agent(&mut self, info: &AgentInfo);
    fn resources(&mut self, resources: &[Resource]);
    fn framework(&mut self, agent: &AgentId, info: &FrameworkInfo, pid: &str);
    fn executor(&mut self, agent: &AgentId, info: &ExecutorInfo);
    fn run(&mut self, run: &RunPath<'_>, forked: &ForkedPid, libprocess: &str);
    fn task(&mut self, run: &RunPath<'_>, task: &Task, records: &[StatusUpdateRecord]);
}

/// Counts of what was generated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Generated {
    tasks: usize,
    updates: usize,
    acks: usize,
}

fn generate(shape: Shape, sink: &mut dyn Sink) -> Generated {
    let mut counts = Generated::default();
    let agent = AgentId::new("3f9a6c1e-7b2d-4e58-9a0c-1d2e3f4a5b6c-S0");
    sink.boot_id(BOOT_ID);
    sink.agent(&AgentInfo {
        id: agent.as_str().to_owned(),
        hostname: "node-0042.rack-07.example.internal".to_owned(),
        port: 5051,
        resources: vec![
            scalar("cpus", 64.0),
            scalar("mem", 262_144.0),
            scalar("disk", 1_048_576.0),
        ],
        checkpoint: true,
    });
    sink.resources(&[Resource {
        name: "disk".to_owned(),
        scalar: 4096.0,
        role: "storage".to_owned(),
        reservation: "volume-0001".to_owned(),
    }]);
    let mut serial = 0u64;
    for f in 0..shape.frameworks {
        let framework = FrameworkId::new(format!("{}-{:04}", uuid(1_000_000 + f as u64), f));
        sink.framework(
            &agent,
            &FrameworkInfo {
                id: framework.as_str().to_owned(),
                name: format!("framework-{f}"),
                user: "svc".to_owned(),
                checkpoint: true,
                failover_timeout_seconds: 604_800.0,
                role: String::new(),
                principal: String::new(),
            },
            &format!(
                "scheduler-{}@10.1.2.3:{}",
                uuid(2_000_000 + f as u64),
                40_000 + f
            ),
        );
        for e in 0..shape.executors_per_framework {
            let executor = ExecutorId::new(format!("executor-{f:02}-{e:03}"));
            sink.executor(
                &agent,
                &ExecutorInfo {
                    executor_id: executor.as_str().to_owned(),
                    framework_id: framework.as_str().to_owned(),
                    name: format!("service {f}/{e}"),
                    command: Some(command("/usr/libexec/revenant/executor", e)),
                    resources: vec![scalar("cpus", 0.1), scalar("mem", 32.0)],
                },
            );
            let container = ContainerId::new(uuid(3_000_000 + (f * 1000 + e) as u64).to_string());
            let run = RunPath {
                agent: &agent,
                framework: &framework,
                executor: &executor,
                container: &container,
            };
            sink.run(
                &run,
                &ForkedPid {
                    process: ProcessId {
                        pid: 10_000 + (f * 1000 + e) as u32,
                        start_time: 123_456_789 + (f * 1000 + e) as u64,
                    },
                    boot_id: BOOT_ID.to_owned(),
                    secret: None,
                },
                &format!("executor(1)@10.1.2.3:{}", 45_000 + f * 100 + e),
            );
            for t in 0..shape.tasks_per_executor {
                let task_id = TaskId::new(format!("task-{f:02}-{e:03}-{t:04}"));
                let task = Task {
                    task_id: task_id.as_str().to_owned(),
                    name: format!("worker {t} of service {f}/{e}"),
                    framework_id: framework.as_str().to_owned(),
                    executor_id: executor.as_str().to_owned(),
                    agent_id: agent.as_str().to_owned(),
                    state: TaskState::TaskStaging as i32,
                    resources: vec![scalar("cpus", 0.5), scalar("mem", 256.0)],
                    command: Some(command("/srv/app/bin/worker", t)),
                };
                let mut records = Vec::with_capacity(2 * shape.updates_per_task);
                let last = shape.updates_per_task.saturating_sub(1);
                for u in 0..shape.updates_per_task {
                    serial += 1;
                    let id = uuid(serial);
                    let (state, message) = match u {
                        0 => (TaskState::TaskStarting, String::new()),
                        u if u == last => (
                            TaskState::TaskFinished,
                            "Command exited with status 0".to_owned(),
                        ),
                        u => (TaskState::TaskRunning, format!("health check {u} passed")),
                    };
                    let timestamp = 1_780_000_000.0 + serial as f64 * 0.25;
                    records.push(StatusUpdateRecord {
                        r#type: status_update_record::Type::Update as i32,
                        update: Some(StatusUpdate {
                            framework_id: framework.as_str().to_owned(),
                            executor_id: executor.as_str().to_owned(),
                            agent_id: agent.as_str().to_owned(),
                            status: Some(TaskStatus {
                                task_id: task_id.as_str().to_owned(),
                                state: state as i32,
                                source: TaskSource::SourceExecutor as i32,
                                reason: TaskReason::ReasonNone as i32,
                                message,
                                agent_id: agent.as_str().to_owned(),
                                executor_id: executor.as_str().to_owned(),
                                timestamp,
                                uuid: id.to_vec(),
                            }),
                            timestamp,
                            uuid: id.to_vec(),
                            latest_state: state as i32,
                        }),
                        uuid: Vec::new(),
                    });
                    counts.updates += 1;
                    // Every update is acknowledged, except the terminal update of every
                    // tenth task (its framework has not acknowledged it yet).
                    if !(u == last && t % 10 == 0) {
                        records.push(StatusUpdateRecord {
                            r#type: status_update_record::Type::Ack as i32,
                            update: None,
                            uuid: id.to_vec(),
                        });
                        counts.acks += 1;
                    }
                }
                sink.task(&run, &task, &records);
                counts.tasks += 1;
            }
        }
    }
    counts
}

/// Writes through the real checkpoint writers (append + fsync per record).
struct StoreSink(CheckpointStore);

impl Sink for StoreSink {
    fn boot_id(&mut self, boot_id: &str) {
        self.0.write_boot_id(boot_id).unwrap();
    }
    fn agent(&mut self, info: &AgentInfo) {
        self.0.write_agent_info(info).unwrap();
    }
    fn resources(&mut self, resources: &[Resource]) {
        self.0.append_resources(resources).unwrap();
    }
    fn framework(&mut self, agent: &AgentId, info: &FrameworkInfo, pid: &str) {
        self.0.write_framework(agent, info, pid).unwrap();
    }
    fn executor(&mut self, agent: &AgentId, info: &ExecutorInfo) {
        self.0.write_executor(agent, info).unwrap();
    }
    fn run(&mut self, run: &RunPath<'_>, forked: &ForkedPid, libprocess: &str) {
        self.0.write_run(run).unwrap();
        self.0.write_forked_pid(run, forked).unwrap();
        self.0.write_libprocess_pid(run, libprocess).unwrap();
    }
    fn task(&mut self, run: &RunPath<'_>, task: &Task, records: &[StatusUpdateRecord]) {
        self.0.write_task(run, task).unwrap();
        let task_id = TaskId::new(task.task_id.clone());
        for record in records {
            match record.r#type {
                t if t == status_update_record::Type::Update as i32 => self
                    .0
                    .append_update(run, &task_id, record.update.as_ref().unwrap())
                    .unwrap(),
                _ => self
                    .0
                    .append_ack(run, &task_id, Uuid::from_bytes(&record.uuid).unwrap())
                    .unwrap(),
            }
        }
    }
}

/// Writes the same bytes in the same layout with plain `std::fs`, no fsync.
struct DirectSink(MetaPaths);

fn put(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

fn put_info(path: &Path, message: &impl Message) {
    put(path, &record::info_file(&message.encode_to_vec()));
}

fn put_log<M: Message>(path: &Path, kind: FileKind, messages: &[M]) {
    let mut data = record::file_header(kind).to_vec();
    for message in messages {
        record::frame_into(&message.encode_to_vec(), &mut data);
    }
    put(path, &data);
}

impl Sink for DirectSink {
    fn boot_id(&mut self, boot_id: &str) {
        put(&self.0.boot_id(), format!("{boot_id}\n").as_bytes());
    }
    fn agent(&mut self, info: &AgentInfo) {
        let agent = AgentId::new(info.id.clone());
        put_info(&self.0.agent_info(&agent), info);
        std::os::unix::fs::symlink(agent.as_str(), self.0.latest_agent()).unwrap();
    }
    fn resources(&mut self, resources: &[Resource]) {
        put_log(&self.0.resources_info(), FileKind::Resources, resources);
    }
    fn framework(&mut self, agent: &AgentId, info: &FrameworkInfo, pid: &str) {
        let framework = FrameworkId::new(info.id.clone());
        put_info(&self.0.framework_info(agent, &framework), info);
        put(
            &self.0.framework_pid(agent, &framework),
            format!("{pid}\n").as_bytes(),
        );
    }
    fn executor(&mut self, agent: &AgentId, info: &ExecutorInfo) {
        let framework = FrameworkId::new(info.framework_id.clone());
        let executor = ExecutorId::new(info.executor_id.clone());
        put_info(&self.0.executor_info(agent, &framework, &executor), info);
    }
    fn run(&mut self, run: &RunPath<'_>, forked: &ForkedPid, libprocess: &str) {
        fs::create_dir_all(self.0.pids_dir(run)).unwrap();
        std::os::unix::fs::symlink(
            run.container.as_str(),
            self.0.latest_run(run.agent, run.framework, run.executor),
        )
        .unwrap();
        put(&self.0.forked_pid(run), forked.to_text().as_bytes());
        put(
            &self.0.libprocess_pid(run),
            format!("{libprocess}\n").as_bytes(),
        );
    }
    fn task(&mut self, run: &RunPath<'_>, task: &Task, records: &[StatusUpdateRecord]) {
        let task_id = TaskId::new(task.task_id.clone());
        put_info(&self.0.task_info(run, &task_id), task);
        put_log(
            &self.0.task_updates(run, &task_id),
            FileKind::TaskUpdates,
            records,
        );
    }
}

// ---------------------------------------------------------------------------------------
// Tree helpers.

#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

fn snapshot(root: &Path) -> std::collections::BTreeMap<PathBuf, Node> {
    fn visit(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<PathBuf, Node>) {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let relative = path.strip_prefix(root).unwrap().to_path_buf();
            let kind = entry.file_type().unwrap();
            if kind.is_symlink() {
                out.insert(relative, Node::Link(fs::read_link(&path).unwrap()));
            } else if kind.is_dir() {
                out.insert(relative, Node::Dir);
                visit(root, &path, out);
            } else {
                out.insert(relative, Node::File(fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    visit(root, root, &mut out);
    out
}

/// Checks that [`DirectSink`] writes exactly what the real writers write.
fn check_generator_matches_writers() {
    let shape = Shape {
        frameworks: 1,
        executors_per_framework: 2,
        tasks_per_executor: 2,
        updates_per_task: 3,
    };
    let by_store = tempfile::tempdir().unwrap();
    let by_direct = tempfile::tempdir().unwrap();
    let store_meta = MetaPaths::for_work_dir(by_store.path());
    let direct_meta = MetaPaths::for_work_dir(by_direct.path());
    let store = CheckpointStore::new(Rc::new(RealFs::default()), store_meta.clone());
    let a = generate(shape, &mut StoreSink(store));
    let b = generate(shape, &mut DirectSink(direct_meta.clone()));
    assert_eq!(a, b);
    let store_tree = snapshot(store_meta.root());
    let direct_tree = snapshot(direct_meta.root());
    if store_tree != direct_tree {
        let only_store: Vec<_> = store_tree
            .iter()
            .filter(|(k, v)| direct_tree.get(*k) != Some(v))
            .map(|(k, _)| k)
            .collect();
        let only_direct: Vec<_> = direct_tree
            .iter()
            .filter(|(k, v)| store_tree.get(*k) != Some(v))
            .map(|(k, _)| k)
            .collect();
        panic!(
            "the bench generator does not write what the checkpoint writers write:\n\
             differing in the writers' tree: {only_store:?}\n\
             differing in the generated tree: {only_direct:?}"
        );
    }
}

struct TreeStats {
    files: usize,
    dirs: usize,
    links: usize,
    bytes: u64,
}

/// The raw baseline: list every directory, read every file, read every link, follow
/// nothing.
fn raw_walk(dir: &Path, stats: &mut TreeStats) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            stats.dirs += 1;
            raw_walk(&path, stats)?;
        } else if kind.is_symlink() {
            stats.links += 1;
            black_box(fs::read_link(&path)?);
        } else {
            stats.files += 1;
            stats.bytes += black_box(fs::read(&path)?).len() as u64;
        }
    }
    Ok(())
}

fn walk_tree(root: &Path) -> TreeStats {
    let mut stats = TreeStats {
        files: 0,
        dirs: 0,
        links: 0,
        bytes: 0,
    };
    raw_walk(root, &mut stats).unwrap();
    stats
}

fn recover_options() -> RecoverOptions {
    RecoverOptions {
        strict: true,
        truncate: false,
        current_boot_id: Some(BOOT_ID.to_owned()),
    }
}

fn recover_tree(meta: &MetaPaths, options: &RecoverOptions) -> State {
    let fs = RealFs::default();
    recover(&fs, meta, options)
        .expect("strict recovery of the generated tree")
        .expect("a meta directory")
}

fn recovered_counts(state: &State) -> Generated {
    let mut counts = Generated::default();
    let agent = state.agent.as_ref().expect("an agent");
    for framework in agent.frameworks.values() {
        for executor in framework.executors.values() {
            for run in executor.runs.values() {
                for task in run.tasks.values() {
                    counts.tasks += 1;
                    counts.updates += task.updates.len();
                    counts.acks += task.acks.len();
                }
            }
        }
    }
    counts
}

// ---------------------------------------------------------------------------------------
// Timing helpers.

/// Times `a` and `b` `rounds` times each, interleaved (a b, b a, a b, ...). What each
/// returns is dropped outside the timing; the time of those drops is returned too.
fn interleaved<A, B>(
    rounds: usize,
    mut a: impl FnMut() -> A,
    mut b: impl FnMut() -> B,
) -> (Vec<Duration>, Vec<Duration>, Duration) {
    let mut times_a = Vec::with_capacity(rounds);
    let mut times_b = Vec::with_capacity(rounds);
    let mut drops = Duration::ZERO;
    for round in 0..rounds {
        for first in [round % 2 == 0, round % 2 == 1] {
            if first {
                let start = Instant::now();
                let out = a();
                times_a.push(start.elapsed());
                let start = Instant::now();
                drop(out);
                drops += start.elapsed();
            } else {
                let start = Instant::now();
                let out = b();
                times_b.push(start.elapsed());
                drop(out);
            }
        }
    }
    (times_a, times_b, drops)
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    let n = times.len();
    if n % 2 == 1 {
        times[n / 2]
    } else {
        (times[n / 2 - 1] + times[n / 2]) / 2
    }
}

fn millis(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1e3)
}

fn verdict(ratio: f64, target: f64) -> &'static str {
    if ratio <= target {
        "OK"
    } else {
        "MISSED"
    }
}

/// Which parts run: criterion's FILTER argument (the first positional one), matched as a
/// substring of the benchmark ids, as criterion does.
fn filter_from_args() -> Option<String> {
    const TAKES_VALUE: &[&str] = &[
        "-c",
        "--color",
        "--colour",
        "-s",
        "--save-baseline",
        "-b",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--profile-time",
        "--format",
        "--plotting-backend",
        "--output-format",
    ];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if TAKES_VALUE.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            return Some(arg);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// 1. One durable status update.

struct DurableSetup {
    _dir: tempfile::TempDir,
    store: CheckpointStore,
    agent: AgentId,
    framework: FrameworkId,
    executor: ExecutorId,
    container: ContainerId,
    task: TaskId,
    update: StatusUpdate,
    raw: File,
    framed: Vec<u8>,
}

impl DurableSetup {
    fn new() -> DurableSetup {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaPaths::for_work_dir(dir.path());
        let fs: Rc<dyn FileSystem> = Rc::new(RealFs::default());
        let store = CheckpointStore::new(fs, meta.clone());
        // One task with one update, through the real writers; the task's run is then the
        // one the benchmark appends to.
        let mut sink = StoreSink(store.clone());
        generate(
            Shape {
                frameworks: 1,
                executors_per_framework: 1,
                tasks_per_executor: 1,
                updates_per_task: 1,
            },
            &mut sink,
        );
        let state = recover_tree(&meta, &recover_options());
        let agent = state.agent.unwrap();
        let (framework_id, framework) = agent.frameworks.into_iter().next().unwrap();
        let (executor_id, executor) = framework.executors.into_iter().next().unwrap();
        let (container_id, run) = executor.runs.into_iter().next().unwrap();
        let (task_id, task) = run.tasks.into_iter().next().unwrap();
        let mut update = task.updates[0].clone();
        update.status.as_mut().unwrap().state = TaskState::TaskRunning as i32;
        update.status.as_mut().unwrap().message = "health check passed".to_owned();

        // The same bytes append_update appends.
        let mut framed = Vec::new();
        record::frame_into(
            &StatusUpdateRecord {
                r#type: status_update_record::Type::Update as i32,
                update: Some(update.clone()),
                uuid: Vec::new(),
            }
            .encode_to_vec(),
            &mut framed,
        );

        // The raw log: same directory as task.updates, same header, opened once.
        let task_dir = {
            let run_path = RunPath {
                agent: &agent.id,
                framework: &framework_id,
                executor: &executor_id,
                container: &container_id,
            };
            meta.task(&run_path, &task_id)
        };
        let raw_path = task_dir.join("raw.updates");
        fs::write(&raw_path, record::file_header(FileKind::TaskUpdates)).unwrap();
        File::open(&raw_path).unwrap().sync_all().unwrap();
        File::open(&task_dir).unwrap().sync_all().unwrap();
        let raw = OpenOptions::new().append(true).open(&raw_path).unwrap();

        let mut setup = DurableSetup {
            _dir: dir,
            store,
            agent: agent.id,
            framework: framework_id,
            executor: executor_id,
            container: container_id,
            task: task_id,
            update,
            raw,
            framed,
        };
        // Warm both paths (handle cache, inode, journal).
        for _ in 0..5 {
            setup.durable_update();
            setup.raw_append();
        }
        setup
    }

    fn durable_update(&mut self) {
        let run = RunPath {
            agent: &self.agent,
            framework: &self.framework,
            executor: &self.executor,
            container: &self.container,
        };
        self.store
            .append_update(&run, &self.task, black_box(&self.update))
            .unwrap();
    }

    fn raw_append(&mut self) {
        self.raw.write_all(black_box(&self.framed)).unwrap();
        self.raw.sync_data().unwrap();
    }
}

/// What a part prints at the end: details first, then the ratio lines.
struct Ratio {
    lines: Vec<String>,
    details: Vec<String>,
}

fn bench_durable(criterion: &mut Criterion, bench_mode: bool) -> Ratio {
    let mut setup = DurableSetup::new();
    {
        let mut group = criterion.benchmark_group("durable_update");
        group
            .sample_size(20)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        group.bench_function("append_update", |b| b.iter(|| setup.durable_update()));
        group.bench_function("raw_append_fsync", |b| b.iter(|| setup.raw_append()));
        group.finish();
    }
    let rounds = if bench_mode { 300 } else { 4 };
    let setup = std::cell::RefCell::new(setup);
    let (mut store, mut raw, _) = interleaved(
        rounds,
        || setup.borrow_mut().durable_update(),
        || setup.borrow_mut().raw_append(),
    );
    let (store_median, raw_median) = (median(&mut store), median(&mut raw));
    let ratio = store_median.as_secs_f64() / raw_median.as_secs_f64();
    let bytes = setup.borrow().framed.len();
    Ratio {
        lines: vec![format!(
            "ratio durable_update/raw_append_fsync = {ratio:.2} (target <= {DURABLE_TARGET}) {}",
            verdict(ratio, DURABLE_TARGET)
        )],
        details: vec![format!(
            "durable_update: append_update median {}, raw write_all+sync_data median {} \
             ({rounds} interleaved rounds, {bytes} framed bytes per update)",
            millis(store_median),
            millis(raw_median)
        )],
    }
}

// ---------------------------------------------------------------------------------------
// 2. Recovery of a large meta directory.

struct Tree {
    _temp: Option<tempfile::TempDir>,
    work_dir: PathBuf,
}

fn big_tree(shape: Shape) -> Tree {
    let (temp, work_dir) = match std::env::var_os("REVENANT_BENCH_TREE") {
        Some(dir) => (None, PathBuf::from(dir)),
        None => {
            let temp = tempfile::tempdir().unwrap();
            let path = temp.path().to_path_buf();
            (Some(temp), path)
        }
    };
    let meta = MetaPaths::for_work_dir(&work_dir);
    if !meta.root().is_dir() {
        let start = Instant::now();
        let generated = generate(shape, &mut DirectSink(meta.clone()));
        eprintln!(
            "generated {} tasks, {} updates, {} acks under {} in {:.1} s",
            generated.tasks,
            generated.updates,
            generated.acks,
            meta.root().display(),
            start.elapsed().as_secs_f64()
        );
    }
    Tree {
        _temp: temp,
        work_dir,
    }
}

fn bench_recover(criterion: &mut Criterion, bench_mode: bool, shape: Shape) -> Ratio {
    let tree = big_tree(shape);
    let meta = MetaPaths::for_work_dir(&tree.work_dir);
    let options = recover_options();

    // Check the tree (and warm the caches).
    let state = recover_tree(&meta, &options);
    assert!(state.warnings.is_empty(), "{:?}", &state.warnings[..]);
    assert_eq!(state.errors, 0);
    let counts = recovered_counts(&state);
    assert_eq!(counts.tasks, shape.tasks(), "tree of another shape");
    assert_eq!(counts.updates, shape.tasks() * shape.updates_per_task);
    drop(state);
    let stats = walk_tree(meta.root());

    {
        let mut group = criterion.benchmark_group("recover");
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));
        group.bench_function("recover", |b| {
            b.iter_with_large_drop(|| recover_tree(&meta, &options))
        });
        group.bench_function("raw_walk", |b| b.iter(|| walk_tree(meta.root())));
        group.finish();
    }

    // In process: the heap is warm (each State is dropped, untimed, before the next
    // round, so the next recovery reuses its memory).
    let rounds = if bench_mode { 11 } else { 1 };
    let (mut recovering, mut walking, drops) = interleaved(
        rounds,
        || recover_tree(&meta, &options),
        || walk_tree(meta.root()),
    );
    let (recover_median, walk_median) = (median(&mut recovering), median(&mut walking));
    let ratio = recover_median.as_secs_f64() / walk_median.as_secs_f64();
    let mut lines = vec![format!(
        "ratio recover/raw_walk = {ratio:.2} (target <= {RECOVER_TARGET}) {}",
        verdict(ratio, RECOVER_TARGET)
    )];
    let mut details = vec![
        format!(
            "recover: tree of {} tasks, {} updates, {} acks; {} files, {} dirs, {} links, \
             {:.1} MB (page cache warm)",
            counts.tasks,
            counts.updates,
            counts.acks,
            stats.files,
            stats.dirs,
            stats.links,
            stats.bytes as f64 / 1e6,
        ),
        format!(
            "recover (in process, warm heap): recover median {}, raw walk median {} \
             ({rounds} interleaved rounds; dropping the State, not timed, took {} on average)",
            millis(recover_median),
            millis(walk_median),
            millis(drops / rounds as u32)
        ),
    ];

    // In a fresh process each time, as when the agent starts: the recovered State
    // (several times the size of the files) lands on pages the process never touched.
    let fresh_rounds = if bench_mode { 5 } else { 1 };
    match fresh_process_times(&tree.work_dir, fresh_rounds) {
        Ok((mut recovering, mut walking)) => {
            let (recover_median, walk_median) = (median(&mut recovering), median(&mut walking));
            let ratio = recover_median.as_secs_f64() / walk_median.as_secs_f64();
            details.push(format!(
                "recover (fresh process per run, cold heap): recover median {}, raw walk \
                 median {} ({fresh_rounds} interleaved rounds)",
                millis(recover_median),
                millis(walk_median)
            ));
            lines.push(format!(
                "ratio recover/raw_walk, fresh process = {ratio:.2} (informational; \
                 the agent's start looks like this)"
            ));
        }
        Err(error) => details.push(format!("recover (fresh process): not measured: {error}")),
    }
    Ratio { lines, details }
}

/// Runs the profile mode of this very executable on `work_dir`, alternately for
/// `recover` and `walk`; returns the times the children measured.
fn fresh_process_times(
    work_dir: &Path,
    rounds: usize,
) -> Result<(Vec<Duration>, Vec<Duration>), String> {
    let exe = std::env::current_exe().map_err(|error| error.to_string())?;
    let run = |what: &str| -> Result<Duration, String> {
        let output = std::process::Command::new(&exe)
            .arg("--bench")
            .env("REVENANT_BENCH_TREE", work_dir)
            .env("REVENANT_BENCH_PROFILE", what)
            .stderr(std::process::Stdio::null())
            .output()
            .map_err(|error| error.to_string())?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        stdout
            .lines()
            .find_map(|line| line.strip_prefix("elapsed_ns "))
            .and_then(|nanos| nanos.trim().parse().ok())
            .map(Duration::from_nanos)
            .ok_or_else(|| format!("child ({what}) printed no time: {}", output.status))
    };
    let mut recovering = Vec::with_capacity(rounds);
    let mut walking = Vec::with_capacity(rounds);
    for round in 0..rounds {
        if round % 2 == 0 {
            recovering.push(run("recover")?);
            walking.push(run("walk")?);
        } else {
            walking.push(run("walk")?);
            recovering.push(run("recover")?);
        }
    }
    Ok((recovering, walking))
}

// ---------------------------------------------------------------------------------------

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|arg| arg == flag);
    // Criterion's own rule: benchmarks only with `--bench` (cargo bench) and not `--test`.
    let bench_mode = has("--bench") && !has("--test") && !has("--list");
    let full = Shape {
        frameworks: 10,
        executors_per_framework: 10,
        tasks_per_executor: 100,
        updates_per_task: 10,
    };
    let tiny = Shape {
        frameworks: 2,
        executors_per_framework: 2,
        tasks_per_executor: 5,
        updates_per_task: 10,
    };
    let shape = if bench_mode { full } else { tiny };

    if let Ok(what) = std::env::var("REVENANT_BENCH_PROFILE") {
        let tree = big_tree(full);
        let meta = MetaPaths::for_work_dir(&tree.work_dir);
        let start = Instant::now();
        match what.as_str() {
            "recover" => {
                let state = black_box(recover_tree(&meta, &recover_options()));
                let elapsed = start.elapsed();
                println!("elapsed_ns {}", elapsed.as_nanos());
                let start = Instant::now();
                drop(state);
                eprintln!(
                    "recover: {} (then dropping the State: {})",
                    millis(elapsed),
                    millis(start.elapsed())
                );
            }
            "walk" => {
                black_box(walk_tree(meta.root()));
                let elapsed = start.elapsed();
                println!("elapsed_ns {}", elapsed.as_nanos());
                eprintln!("walk: {}", millis(elapsed));
            }
            other => panic!("REVENANT_BENCH_PROFILE={other}: expected recover or walk"),
        }
        return;
    }

    let filter = filter_from_args();
    let wanted = |ids: &[&str]| {
        filter
            .as_deref()
            .is_none_or(|filter| ids.iter().any(|id| id.contains(filter)))
    };

    check_generator_matches_writers();

    let mut criterion = Criterion::default().configure_from_args();
    let mut ratios = Vec::new();
    if wanted(&[
        "durable_update/append_update",
        "durable_update/raw_append_fsync",
    ]) {
        ratios.push(bench_durable(&mut criterion, bench_mode));
    }
    if wanted(&["recover/recover", "recover/raw_walk"]) {
        ratios.push(bench_recover(&mut criterion, bench_mode, shape));
    }
    criterion.final_summary();

    if has("--list") {
        return;
    }
    println!();
    if bench_mode {
        println!("== checkpoint ratios (interleaved manual timing, medians, same process) ==");
    } else {
        println!("== checkpoint ratios: test mode, tiny tree, few rounds: NOT meaningful ==");
    }
    for detail in ratios.iter().flat_map(|ratio| &ratio.details) {
        println!("{detail}");
    }
    for line in ratios.iter().flat_map(|ratio| &ratio.lines) {
        println!("{line}");
    }
}
