//! An in-process cluster on loopback, shared by the group-commit test
//! (`tests/group_commit.rs`) and the status update throughput benchmark
//! (`benches/update_throughput.rs`, which includes this file with `#[path]`).
//!
//! The agent is the real one (`revenant::agent::run`, real TCP, the filesystem the caller
//! gives, usually [`revenant::os::real::RealFs`] on a temporary work directory) on a
//! thread and current-thread runtime of its own, as in the binary. Its executors are
//! launched through a stand-in process table that starts, for each launch, a synthetic
//! executor: a task on the cluster thread that speaks the wire protocol to the agent as
//! `revenant executor` does (register, receive its task, send status updates, receive
//! acknowledgements). The master (`revenant::master::run`) and a framework
//! (`revenant::framework::run` with a workload that acknowledges everything) run on the
//! cluster thread too (the caller's).
//!
//! Each task's stream is `updates_per_task` updates: TASK_RUNNING ones, then
//! TASK_FINISHED. The streams start together once every task reached its executor, and
//! each keeps one update in flight end to end: the executor sends update k+1 of a task
//! when the framework received update k (a closed loop with `tasks` updates in flight).
//! The latency of an update is the time from the executor's send to the framework's
//! receipt.
#![allow(clippy::disallowed_methods, clippy::disallowed_types, dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use revenant::agent::{self, AgentConfig};
use revenant::framework::{self, Workload};
use revenant::master::{self, MasterConfig, Standalone};
use revenant::os::{Env, FileSystem, LaunchSpec, Network, ProcessId, Processes, Signal};
use revenant::proto::envelope::Body;
use revenant::proto::{
    self, CommandInfo, FrameworkInfo, RegisterExecutor, StatusUpdate, StatusUpdateMessage,
    TaskInfo, TaskSource, TaskState, TaskStatus,
};
use revenant::tls::TlsNetwork;
use revenant::wire;
use tokio::sync::mpsc;

/// What a run observed, handed to [`Options::observer`] as it happens (on the cluster
/// thread).
#[derive(Debug)]
pub enum Observation {
    /// An executor received the agent's acknowledgement of one of its updates.
    ExecutorAck {
        /// The task.
        task: String,
        /// The update's uuid.
        uuid: Vec<u8>,
    },
    /// The framework received an executor's update.
    FrameworkUpdate {
        /// The task.
        task: String,
        /// The update's uuid.
        uuid: Vec<u8>,
        /// The uuid of the task's update the framework received before this one.
        previous: Option<Vec<u8>>,
    },
}

/// A callback for [`Observation`]s.
pub type Observer = Arc<dyn Fn(Observation) + Send + Sync>;

/// How to run.
pub struct Options {
    /// Concurrent tasks (each with an executor of its own).
    pub tasks: usize,
    /// Updates per task, the last one terminal.
    pub updates_per_task: usize,
    /// The agent's `--status-update-batch` (1: group commit off).
    pub status_update_batch: usize,
    /// The agent's work directory.
    pub work_dir: PathBuf,
    /// Makes the agent's filesystem (called on the agent's thread).
    pub make_fs: Box<dyn FnOnce() -> Rc<dyn FileSystem> + Send>,
    /// Sees every acknowledgement an executor receives and every update the framework
    /// receives.
    pub observer: Option<Observer>,
    /// The longest the run may take.
    pub timeout: Duration,
    /// Mutual TLS on every connection (master, agent, framework, executors), with this
    /// identity for all of them (docs/security.md SEC8); `None`: plain TCP.
    pub tls: Option<revenant::tls::TlsIdentity>,
}

/// What a run measured.
#[derive(Debug)]
pub struct Results {
    /// Executor updates the framework received.
    pub updates: usize,
    /// From the start of the streams to the framework's receipt of the last update.
    pub elapsed: Duration,
    /// Per update, from the executor's send to the framework's receipt.
    pub latencies: Vec<Duration>,
    /// Per update, in order of receipt: when the framework received it, from the start
    /// of the streams.
    pub receipts: Vec<Duration>,
}

impl Results {
    /// Updates per second.
    pub fn throughput(&self) -> f64 {
        self.updates as f64 / self.elapsed.as_secs_f64()
    }

    /// Updates per second in the steady middle of the run: between the receipts of the
    /// first `skip` fraction and the last `skip` fraction of the updates, so that
    /// neither the ramp up (connections, the first batches) nor the tail (the last
    /// streams finishing one by one) weighs on it (docs/recovery-latency.md P50). The
    /// whole run's throughput when there are too few updates for a window.
    pub fn steady_throughput(&self, skip: f64) -> f64 {
        let n = self.receipts.len();
        let first = (n as f64 * skip).floor() as usize;
        let last = n.saturating_sub(1 + first);
        if n < 10 || last <= first {
            return self.throughput();
        }
        let span = self.receipts[last].saturating_sub(self.receipts[first]);
        if span.is_zero() {
            return self.throughput();
        }
        (last - first) as f64 / span.as_secs_f64()
    }

    /// The `q` quantile (0.0 to 1.0) of the latencies.
    pub fn latency(&self, q: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted[index.min(sorted.len() - 1)]
    }
}

/// A free loopback address.
pub fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").to_string()
}

/// The agent's process table: a launch starts a synthetic executor on the cluster thread.
struct SyntheticProcesses {
    launches: mpsc::UnboundedSender<LaunchSpec>,
    next_pid: Cell<u32>,
}

impl Processes for SyntheticProcesses {
    fn launch(&self, spec: &LaunchSpec) -> io::Result<ProcessId> {
        let pid = self.next_pid.get();
        self.next_pid.set(pid + 1);
        self.launches
            .send(spec.clone())
            .map_err(|_| io::Error::other("the cluster thread is gone"))?;
        Ok(ProcessId { pid, start_time: 1 })
    }
    /// Synthetic executors are tasks of the cluster thread, not processes: none is ever
    /// left from an earlier agent (the harness never restarts one).
    fn tagged(&self, _tag: &str) -> io::Result<Vec<revenant::os::TaggedProcess>> {
        Ok(Vec::new())
    }
    fn is_alive(&self, _process: &ProcessId) -> bool {
        true
    }
    fn signal(&self, _process: &ProcessId, _signal: Signal) -> io::Result<()> {
        Ok(())
    }
}

struct Shared {
    tasks: usize,
    updates_per_task: usize,
    /// Per task: the executor's "send your next update" channel.
    triggers: BTreeMap<String, mpsc::UnboundedSender<()>>,
    /// Uuids sent and not yet received by the framework, with their send times.
    in_flight: BTreeMap<Vec<u8>, Instant>,
    /// Per task: the last update the framework received.
    last: BTreeMap<String, Vec<u8>>,
    next_uuid: u64,
    received: usize,
    latencies: Vec<Duration>,
    /// When the framework received each update, in order.
    receipts: Vec<Instant>,
    started: Option<Instant>,
    finished: Option<Instant>,
    observer: Option<Observer>,
}

impl Shared {
    fn observe(&self, observation: Observation) {
        if let Some(observer) = &self.observer {
            observer(observation);
        }
    }

    /// A uuid no other update of the run has, with a recognisable upper half.
    fn uuid(&mut self) -> Vec<u8> {
        self.next_uuid += 1;
        let mut bytes = self.next_uuid.to_le_bytes().to_vec();
        bytes.extend_from_slice(&0x5eed_c0de_a5a5_5a5a_u64.to_le_bytes());
        bytes
    }
}

/// One synthetic executor: registers, takes its task, sends a task's updates when
/// triggered, and reports acknowledgements.
async fn executor(spec: LaunchSpec, shared: Rc<RefCell<Shared>>, net: Rc<dyn Network>) {
    let variable = |name: &str| spec.environment.get(name).cloned().unwrap_or_default();
    let framework_id = variable("REVENANT_FRAMEWORK_ID");
    let executor_id = variable("REVENANT_EXECUTOR_ID");
    let Ok(stream) = net.connect(&variable("REVENANT_AGENT_ADDRESS")).await else {
        return;
    };
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (incoming, mut inbox) = mpsc::unbounded_channel::<Body>();
    tokio::task::spawn_local(async move {
        while let Ok(body) = wire::read_envelope(&mut reader).await {
            if incoming.send(body).is_err() {
                return;
            }
        }
    });
    let register = Body::RegisterExecutor(RegisterExecutor {
        framework_id: framework_id.clone(),
        executor_id: executor_id.clone(),
        container_id: variable("REVENANT_CONTAINER_ID"),
        secret: variable(revenant::security::executor_secret::ENV_SECRET),
        // A synthetic executor: no wake endpoint (docs/recovery-rules.md R31).
        endpoint: String::new(),
    });
    if wire::write_envelope(&mut writer, register).await.is_err() {
        return;
    }
    let (trigger, mut triggered) = mpsc::unbounded_channel::<()>();
    let mut task: Option<String> = None;
    let mut sent = 0usize;
    loop {
        tokio::select! {
            body = inbox.recv() => match body {
                None | Some(Body::ShutdownExecutor(_)) => return,
                Some(Body::RunTask(run)) => {
                    let Some(info) = run.task else { continue };
                    task = Some(info.task_id.clone());
                    let mut state = shared.borrow_mut();
                    state.triggers.insert(info.task_id, trigger.clone());
                    if state.triggers.len() == state.tasks {
                        // Every task reached its executor: start every stream at once.
                        state.started = Some(Instant::now());
                        for start in state.triggers.values() {
                            let _ = start.send(());
                        }
                    }
                }
                Some(Body::Acknowledgement(ack)) => {
                    shared.borrow().observe(Observation::ExecutorAck {
                        task: ack.task_id,
                        uuid: ack.uuid,
                    });
                }
                Some(_) => {}
            },
            Some(()) = triggered.recv() => {
                let Some(task_id) = task.clone() else { continue };
                sent += 1;
                let (uuid, terminal) = {
                    let mut state = shared.borrow_mut();
                    let uuid = state.uuid();
                    state.in_flight.insert(uuid.clone(), Instant::now());
                    (uuid, sent >= state.updates_per_task)
                };
                let state = if terminal { TaskState::TaskFinished } else { TaskState::TaskRunning };
                let update = StatusUpdate {
                    framework_id: framework_id.clone(),
                    executor_id: executor_id.clone(),
                    agent_id: String::new(),
                    status: Some(TaskStatus {
                        task_id,
                        state: state as i32,
                        source: TaskSource::SourceExecutor as i32,
                        reason: 0,
                        message: format!("update {sent}"),
                        agent_id: String::new(),
                        executor_id: executor_id.clone(),
                        timestamp: 0.0,
                        uuid: Vec::new(),
                    }),
                    timestamp: 0.0,
                    uuid,
                    latest_state: state as i32,
                };
                let message = Body::StatusUpdate(StatusUpdateMessage { update: Some(update) });
                if wire::write_envelope(&mut writer, message).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The framework's side: submits the tasks, times each executor update, and asks the
/// task's executor for the next one.
struct Measure {
    shared: Rc<RefCell<Shared>>,
    submitted: bool,
}

impl Workload for Measure {
    fn registered(&mut self, _framework_id: &str) -> Vec<TaskInfo> {
        if self.submitted {
            return Vec::new();
        }
        self.submitted = true;
        let tasks = self.shared.borrow().tasks;
        (0..tasks)
            .map(|index| TaskInfo {
                task_id: format!("task-{index:04}"),
                name: format!("synthetic {index}"),
                command: Some(CommandInfo {
                    value: "synthetic".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect()
    }

    fn update(&mut self, update: &StatusUpdate) {
        let now = Instant::now();
        let mut state = self.shared.borrow_mut();
        let Some(sent) = state.in_flight.remove(&update.uuid) else {
            return;
        };
        let Some(status) = &update.status else {
            return;
        };
        state.latencies.push(now - sent);
        state.receipts.push(now);
        state.received += 1;
        let previous = state
            .last
            .insert(status.task_id.clone(), update.uuid.clone());
        state.observe(Observation::FrameworkUpdate {
            task: status.task_id.clone(),
            uuid: update.uuid.clone(),
            previous,
        });
        if status.state() == proto::TaskState::TaskRunning {
            if let Some(trigger) = state.triggers.get(&status.task_id) {
                let _ = trigger.send(());
            }
        }
        if state.received == state.tasks * state.updates_per_task {
            state.finished = Some(now);
        }
    }

    fn done(&self) -> bool {
        self.shared.borrow().finished.is_some()
    }
}

/// Runs one cluster until every update reached the framework, or the timeout.
pub fn run(options: Options) -> Result<Results, String> {
    assert!(options.tasks > 0 && options.updates_per_task > 0);
    let master_address = free_address();
    let agent_address = free_address();
    let (launches, mut launched) = mpsc::unbounded_channel::<LaunchSpec>();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent_thread = {
        let master_address = master_address.clone();
        let agent_address = agent_address.clone();
        let make_fs = options.make_fs;
        let work_dir = options.work_dir.clone();
        let batch = options.status_update_batch;
        let tls = options.tls.clone();
        std::thread::spawn(move || -> Option<String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async move {
                let mut env = Env::real();
                if let Some(identity) = tls {
                    env.net = Rc::new(TlsNetwork::new(env.net.clone(), identity));
                }
                env.fs = make_fs();
                env.processes = Rc::new(SyntheticProcesses {
                    launches,
                    next_pid: Cell::new(1_000_000),
                });
                let mut config = AgentConfig::new(vec![master_address], agent_address, work_dir);
                config.status_update_batch = batch;
                config.registration_backoff_factor = Duration::from_millis(10);
                tokio::select! {
                    result = agent::run(env, config) => Some(format!("the agent stopped: {result:?}")),
                    _ = stopped => None,
                }
            })
        })
    };
    let shared = Rc::new(RefCell::new(Shared {
        tasks: options.tasks,
        updates_per_task: options.updates_per_task,
        triggers: BTreeMap::new(),
        in_flight: BTreeMap::new(),
        last: BTreeMap::new(),
        next_uuid: 0,
        received: 0,
        latencies: Vec::new(),
        receipts: Vec::new(),
        started: None,
        finished: None,
        observer: options.observer,
    }));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    let outcome = local.block_on(&runtime, {
        let shared = shared.clone();
        async move {
            let mut env = Env::real();
            if let Some(identity) = options.tls {
                env.net = Rc::new(TlsNetwork::new(env.net.clone(), identity));
            }
            let master = tokio::task::spawn_local(master::run(
                env.clone(),
                MasterConfig::new(master_address.clone()),
                Box::new(Standalone),
            ));
            let executors = {
                let shared = shared.clone();
                let net = env.net.clone();
                tokio::task::spawn_local(async move {
                    while let Some(spec) = launched.recv().await {
                        tokio::task::spawn_local(executor(spec, shared.clone(), net.clone()));
                    }
                })
            };
            let mut workload = Measure {
                shared: shared.clone(),
                submitted: false,
            };
            let info = FrameworkInfo {
                name: "update-throughput".into(),
                checkpoint: true,
                ..Default::default()
            };
            let finished = tokio::time::timeout(
                options.timeout,
                framework::run(env, vec![master_address], info, &mut workload),
            )
            .await;
            master.abort();
            executors.abort();
            finished.is_ok()
        }
    });
    // Close the cluster's connections, then stop the agent.
    drop(local);
    drop(runtime);
    let _ = stop.send(());
    let agent_error = agent_thread.join().expect("the agent thread panicked");
    let shared = Rc::try_unwrap(shared)
        .ok()
        .expect("every task of the cluster is gone")
        .into_inner();
    if !outcome {
        return Err(format!(
            "timed out after {:?}: {} of {} updates received; {}",
            options.timeout,
            shared.received,
            shared.tasks * shared.updates_per_task,
            agent_error.unwrap_or_else(|| "the agent was still running".into())
        ));
    }
    let (Some(started), Some(finished)) = (shared.started, shared.finished) else {
        return Err("the streams never started".into());
    };
    Ok(Results {
        updates: shared.received,
        elapsed: finished - started,
        latencies: shared.latencies,
        receipts: shared
            .receipts
            .iter()
            .map(|at| at.saturating_duration_since(started))
            .collect(),
    })
}
