//! The agent: launches executors, checkpoints what it must not forget, and recovers after
//! a crash (docs/recovery-rules.md, docs/lifecycle-rules.md, docs/stream-rules.md).
//!
//! The agent is one event loop (`Agent::run`) that owns all of its state; connection
//! readers and writers, and the master connector, are tasks in a `JoinSet` owned by that
//! loop, so dropping the agent's future (a crash, in the simulator) closes every socket.
//! Executors are separate processes launched through the [`crate::os::Processes`] seam
//! and outlive the agent.
//!
//! Group commit (`--status-update-batch`): the loop handles the events already waiting
//! as one batch, syncs the status update logs the batch appended to together at its end,
//! and only then sends the messages the batch produced (see `Agent::batch`).
//!
//! Lifecycle: lock the work directory → recover the checkpointed state → reconnect
//! (wait `executor_reregistration_timeout` for live executors) or clean up → write the
//! boot id → register or re-register with the leading master (with back-off) → run.
//!
//! The rooms (docs/design.md D22), each an `impl Agent` block of one job: [`driver`]
//! (event loop, batches, tick, dispatch), [`recovery`] (applying recovered state),
//! [`executors`] (launch, registration, kill, shutdown), [`lifecycle`] and [`orphans`]
//! (executor lifecycle rules), [`master_link`] (registration, re-registration, pings),
//! [`follow`] (the leader), [`update_flow`] (status updates through the agent, around
//! the sans-IO [`status_updates`] manager), [`gc`] (garbage collection), [`http`].

mod admission;
mod decide;
mod driver;
mod effects;
mod executors;
mod follow;
mod gc;
mod gc_schedule;
mod group_commit;
mod http;
mod lifecycle;
mod link;
mod master_link;
mod orphans;
mod perform;
mod recovery;
mod recovery_plan;
pub mod registration;
pub mod status_updates;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_decide;
mod update_flow;
mod wake;
mod writes;

use std::collections::{BTreeMap, BTreeSet};

use crate::security::executor_secret::{Secret, Verifier, ENV_SECRET};
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::checkpoint::paths::{self, MetaPaths, RunPath};
use crate::checkpoint::recover::State;
use crate::checkpoint::{
    self, CheckpointStore, ForkedPid, RecoverOptions, RecoveryError, StoreError,
};
use crate::domain::resources::is_dynamic_reservation;
pub use crate::domain::resources::{describe_resources, ReconfigurationPolicy};
use crate::domain::status_update::{
    self, state_name_of as update_state, state_of as update_state_enum, task_of as update_task,
    uuid_of as update_uuid,
};
use crate::ids::{AgentId, ContainerId, ExecutorId, FrameworkId, TaskId, Uuid};
use crate::os::{Env, FileLock, LaunchSpec, ProcessId};
use crate::proto::envelope::Body;
use crate::proto::{
    self, AgentInfo, ExecutorInfo, FrameworkInfo, ReregisterAgent, Resource, StatusUpdate,
    StatusUpdateMessage, TaskInfo, TaskReason, TaskReport,
};
use crate::wire::{self, ConnectionId, Incoming, Outbox};
use effects::Effect;
use status_updates::{is_terminal, Classified, StatusUpdateManager};

/// What `--recover` says to do with live executors after a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoverMode {
    /// Reconnect to live executors.
    Reconnect,
    /// Shut every executor down and exit without registering.
    Cleanup,
}

/// The agent's settings (the command line's flags, parsed).
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Master addresses; the agent tries them in turn and follows `NotLeader` hints.
    pub masters: Vec<String>,
    /// With `--master zk://…`: the leader the masters' group names, followed as it
    /// changes (docs/zookeeper.md Z17–Z20); `None` with a list of addresses.
    pub leader: Option<crate::coord::follower::LeaderHandle>,
    /// The address the agent listens on for executors; also its identity to the master.
    pub listen: String,
    /// The work directory (`meta/` and sandboxes below it).
    pub work_dir: PathBuf,
    /// `--recover`.
    pub recover: RecoverMode,
    /// `--strict`.
    pub strict: bool,
    /// `--recovery_timeout`: how long executors wait for a restarted agent.
    pub recovery_timeout: Duration,
    /// `--executor_reregistration_timeout`.
    pub executor_reregistration_timeout: Duration,
    /// `--executor_registration_timeout`: a launched executor that has not registered
    /// within this is destroyed and its tasks fail (docs/lifecycle-rules.md rule 1).
    pub executor_registration_timeout: Duration,
    /// `--executor_reregistration_retry_interval` (none by default): while recovering,
    /// executor connections that have not re-registered are asked again this often
    /// (their re-registration may have been lost).
    pub executor_reregistration_retry_interval: Option<Duration>,
    /// `--gc_delay`.
    pub gc_delay: Duration,
    /// `--disk_watch_interval`.
    pub disk_watch_interval: Duration,
    /// `--registration_backoff_factor`.
    pub registration_backoff_factor: Duration,
    /// `--resources`.
    pub resources: Vec<Resource>,
    /// `--reconfiguration_policy`.
    pub reconfiguration_policy: ReconfigurationPolicy,
    /// `--checkpoint` (the agent checkpoints its own info).
    pub checkpoint: bool,
    /// The program launched as an executor, and its leading arguments.
    pub executor_command: Vec<String>,
    /// How long the master may stay silent before the agent looks for another.
    pub master_ping_timeout: Duration,
    /// `--status-update-batch`: group commit. The event loop handles up to this many
    /// ready events as one batch: their `task.updates` appends are synced together at the
    /// end of the batch (one [`crate::os::FileSystem::sync_files`]), and every message
    /// the batch sends (acknowledgements to executors, updates to the master, ...) is
    /// held until that sync succeeded. 1 turns group commit off: each record is synced
    /// as it is written and messages go out at once.
    pub status_update_batch: usize,
    /// Test-only broken behaviours (see [`crate::breakage`]); only with the `breakage`
    /// feature, which release builds leave off (docs/design.md D11).
    #[cfg(feature = "breakage")]
    pub breakage: crate::breakage::Breakage,
    /// Notified when the operator asks the agent to leave the cluster (SIGUSR1 in the
    /// binary): it unregisters, kills its executors and exits.
    pub unregister: Option<std::rc::Rc<tokio::sync::Notify>>,
    /// More environment variables for every executor launched: the agent's TLS files
    /// when it runs with TLS (docs/security.md SEC12); empty otherwise.
    pub executor_environment: BTreeMap<String, String>,
}

impl AgentConfig {
    /// Settings with the Mesos defaults.
    pub fn new(masters: Vec<String>, listen: String, work_dir: PathBuf) -> AgentConfig {
        AgentConfig {
            masters,
            leader: None,
            listen,
            work_dir,
            recover: RecoverMode::Reconnect,
            strict: true,
            recovery_timeout: Duration::from_secs(15 * 60),
            executor_reregistration_timeout: Duration::from_secs(2),
            executor_registration_timeout: Duration::from_secs(60),
            executor_reregistration_retry_interval: None,
            gc_delay: Duration::from_secs(7 * 24 * 3600),
            disk_watch_interval: Duration::from_secs(60),
            registration_backoff_factor: Duration::from_secs(1),
            resources: vec![
                Resource {
                    name: "cpus".into(),
                    scalar: 2.0,
                    ..Default::default()
                },
                Resource {
                    name: "mem".into(),
                    scalar: 1024.0,
                    ..Default::default()
                },
            ],
            reconfiguration_policy: ReconfigurationPolicy::Equal,
            checkpoint: true,
            executor_command: vec!["revenant".into(), "executor".into()],
            master_ping_timeout: Duration::from_secs(75),
            status_update_batch: STATUS_UPDATE_BATCH_DEFAULT,
            #[cfg(feature = "breakage")]
            breakage: crate::breakage::Breakage::default(),
            unregister: None,
            executor_environment: BTreeMap::new(),
        }
    }
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Recovery failed (strict mode, or an incompatible checkpoint).
    #[error("{error}\nTo start afresh as a new agent, remove '{latest}' (the executors of the old agent will be lost).")]
    Recovery {
        /// What failed.
        error: RecoveryError,
        /// The `slaves/latest` link to remove.
        latest: String,
    },
    /// The recovered agent info does not match this agent's flags.
    #[error("incompatible agent info: checkpointed {old}, flags say {new}; to start afresh, remove '{latest}'")]
    Incompatible {
        /// What was checkpointed.
        old: String,
        /// What the flags say.
        new: String,
        /// The `slaves/latest` link to remove.
        latest: String,
    },
    /// A checkpointed reservation is not offered by this agent's flags (docs/recovery-rules.md
    /// R10). Recovered across reboots too, so removing `slaves/latest` does not help.
    #[error("incompatible resources: {resources_info} holds {checkpointed}, which --resources {flags} does not cover (docs/recovery-rules.md R10); give --resources that cover it, or remove '{resources_info}' to drop the checkpointed reservations")]
    IncompatibleResources {
        /// What `resources.info` holds.
        checkpointed: String,
        /// What the flags give.
        flags: String,
        /// The `resources.info` file.
        resources_info: String,
    },
    /// Another agent holds the work directory.
    #[error(transparent)]
    Lock(#[from] crate::os::LockError),
    /// A checkpoint write failed: the agent cannot keep its promises and stops.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The machine's boot id could not be read, or was empty (docs/design.md D13).
    #[error("cannot read the machine's boot id ({source}): without it the agent cannot tell a reboot from a restart, so it does not start")]
    BootId {
        /// What went wrong, naming the file.
        source: std::io::Error,
    },
    /// The agent could not listen for executors.
    #[error("failed to listen on {address}: {source}")]
    Listen {
        /// The address.
        address: String,
        /// The error.
        source: std::io::Error,
    },
}

/// How the agent ended without error.
#[derive(Debug, PartialEq, Eq)]
pub enum AgentExit {
    /// `--recover cleanup`: executors shut down, the agent exits without registering.
    CleanedUp,
    /// The master told the agent to shut down.
    ShutDown(String),
}

/// The agent's phase (docs/recovery-rules.md R11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Recovering,
    Disconnected,
    Running,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ExecutorPhase {
    /// Launched; waiting for it to register.
    Launching,
    /// Recovered alive; waiting for it to re-register.
    Reregistering,
    Running,
    /// Gone; waiting for its tasks' terminal updates to be acknowledged.
    Terminated,
}

/// What the agent keeps of a task: its latest state. (Its `task.info` stays on disk; the
/// whole `Task` for each of 10,000 recovered tasks cost about 8 MB and nothing read it.)
struct TaskEntry {
    state: proto::TaskState,
}

struct Executor {
    info: ExecutorInfo,
    container: ContainerId,
    phase: ExecutorPhase,
    process: Option<ProcessId>,
    outbox: Option<Outbox>,
    /// Tasks not yet sent to the executor.
    queued: Vec<TaskInfo>,
    tasks: BTreeMap<TaskId, TaskEntry>,
    /// Asked to shut down: killed at this time if still alive.
    kill_at: Option<Instant>,
    /// Launched and not registered yet: destroyed at this time (docs/lifecycle-rules.md
    /// rule 1).
    register_by: Option<Instant>,
    /// What verifies the secret of the current run's process (docs/security.md SEC14,
    /// SEC16); `None` until it is launched, or when recovery found none.
    secret: Option<Verifier>,
    /// Where the executor listens for wakes (docs/recovery-rules.md R31), once known.
    endpoint: Option<String>,
}

struct Framework {
    info: FrameworkInfo,
    executors: BTreeMap<ExecutorId, Executor>,
    /// The master told the agent to shut the framework down (it was torn down): its
    /// executors are being shut down and none of its updates are forwarded.
    shutting_down: bool,
}

#[allow(clippy::large_enum_variant)] // events are moved once; boxing buys nothing
enum Event {
    Wire(Incoming),
    MasterConnected(crate::os::BoxStream, String),
    MasterConnectFailed(String, String),
    ExecutorConnected(crate::os::BoxStream, String),
}

/// How long the agent sleeps with no timer armed; also how often it polls whether its
/// executors are alive (Mesos reaps every second too).
/// How long an unregistering agent waits for the master's answer.
const UNREGISTER_TIMEOUT: Duration = Duration::from_secs(5);
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// How long an executor asked to shut down (its framework was torn down) has to exit
/// before the agent kills it (Mesos' default `--executor_shutdown_grace_period`).
pub const EXECUTOR_SHUTDOWN_GRACE_PERIOD: Duration = Duration::from_secs(5);
/// The shortest sleep, so a deadline in the past does not spin.
const TICK_MIN: Duration = Duration::from_millis(10);
/// How long a connection attempt to a master may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The default of [`AgentConfig::status_update_batch`].
pub const STATUS_UPDATE_BATCH_DEFAULT: usize = 256;

/// Runs an agent until it exits.
pub async fn run(env: Env, config: AgentConfig) -> Result<AgentExit, AgentError> {
    let holder = format!("revenant agent listening on {}", config.listen);
    let _lock: Box<dyn FileLock> =
        checkpoint::lock_work_dir(env.fs.as_ref(), &config.work_dir, &holder)?;
    let paths = MetaPaths::for_work_dir(&config.work_dir);
    let boot_id = read_boot_id(env.boot.as_ref())?;
    let store = CheckpointStore::new(env.fs.clone(), paths.clone());
    #[cfg(feature = "breakage")]
    let store = {
        let mut store = store;
        store.non_atomic = config.breakage.non_atomic_checkpoints;
        store.skip_dir_sync = config.breakage.skip_dir_sync;
        store
    };
    let listener = env
        .net
        .listen(&config.listen)
        .await
        .map_err(|source| AgentError::Listen {
            address: config.listen.clone(),
            source,
        })?;
    let (inbox_sender, inbox) = mpsc::unbounded_channel();
    let mut agent = Agent {
        boot_id,
        env,
        store,
        paths,
        info: AgentInfo::default(),
        phase: Phase::Recovering,
        frameworks: BTreeMap::new(),
        updates: StatusUpdateManager::new(),
        tasks: JoinSet::new(),
        inbox_sender,
        next_connection: 0,
        master: None,
        master_connecting: false,
        master_index: 0,
        master_address: config.masters.first().cloned().unwrap_or_default(),
        next_connect_at: None,
        link: link::Link::new(
            config.registration_backoff_factor,
            config.master_ping_timeout,
        ),
        unregister_deadline: None,
        executor_connections: BTreeMap::new(),
        reregister_deadline: None,
        reconnect_retry_at: None,
        gc: gc_schedule::GcSchedule::default(),
        old_agents_unlisted: None,
        next_disk_check: None,
        unidentified: BTreeMap::new(),
        checkpointed_resources: Vec::new(),
        recovery_errors: 0,
        registrations: 0,
        held: None,
        pipeline: group_commit::Pipeline::default(),
        wakes: wake::WakeQueue::default(),
        config,
    };
    agent.info = AgentInfo {
        id: String::new(),
        hostname: agent
            .config
            .listen
            .rsplit_once(':')
            .map(|(h, _)| h.to_owned())
            .unwrap_or_default(),
        port: agent
            .config
            .listen
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(0),
        resources: agent.config.resources.clone(),
        checkpoint: agent.config.checkpoint,
    };
    agent.accept_executors(listener);
    // Recovery tells no one anything (updates are forwarded only once registered), so
    // the updates it writes (tasks of executors that died while the agent was down)
    // share one group commit too.
    agent.batch(group_commit::Durability::Now, |agent| agent.recover())?;
    // The simulator's tap: what `/metrics` answers once recovery has read the disk
    // (docs/recovery-rules.md R43).
    #[cfg(feature = "coverage")]
    if crate::observe::agent_metrics_wanted() {
        crate::observe::report_agent_metrics(&agent.config.listen, agent.metrics_text());
    }
    // The recovered tree is gone; what it took need not stay resident.
    agent.env.processes.release_free_memory();
    if agent.config.recover == RecoverMode::Cleanup {
        return Ok(agent.cleanup().await);
    }
    agent.event_loop(inbox).await
}

/// The machine's boot id, or [`AgentError::BootId`]: fails closed, never `""`, which
/// recovery would take for a reboot and then checkpoint (docs/design.md D13).
pub fn read_boot_id(boot: &dyn crate::os::BootId) -> Result<String, AgentError> {
    match boot.boot_id() {
        Ok(id) if !id.trim().is_empty() => Ok(id),
        Ok(_) => Err(AgentError::BootId {
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "the boot id is empty"),
        }),
        Err(source) => Err(AgentError::BootId { source }),
    }
}

struct Agent {
    env: Env,
    config: AgentConfig,
    store: CheckpointStore,
    paths: MetaPaths,
    boot_id: String,
    info: AgentInfo,
    phase: Phase,
    frameworks: BTreeMap<FrameworkId, Framework>,
    updates: StatusUpdateManager,
    tasks: JoinSet<()>,
    inbox_sender: mpsc::UnboundedSender<Event>,
    next_connection: u64,
    master: Option<Outbox>,
    master_connecting: bool,
    master_index: usize,
    master_address: String,
    next_connect_at: Option<Instant>,
    /// Registration with the current master, its back-off and its timers (the sans-IO
    /// link: docs/design.md D49-D51).
    link: link::Link,
    /// Unregistering (the operator asked the agent to leave): exit at this time at the
    /// latest, should the master not answer.
    unregister_deadline: Option<Instant>,
    executor_connections: BTreeMap<ConnectionId, (FrameworkId, ExecutorId)>,
    reregister_deadline: Option<Instant>,
    /// When to ask unidentified executor connections to re-register again.
    reconnect_retry_at: Option<Instant>,
    /// What garbage collection will take, and when (docs/design.md D52).
    gc: gc_schedule::GcSchedule,
    /// docs/recovery-rules.md R26: the current agent id, while a listing of old agents
    /// the disk failed waits for the next disk check.
    old_agents_unlisted: Option<AgentId>,
    next_disk_check: Option<Instant>,
    /// Executor connections that have not yet said which executor they are.
    unidentified: BTreeMap<ConnectionId, Outbox>,
    /// What `resources.info` holds.
    checkpointed_resources: Vec<Resource>,
    /// Errors counted by non-strict recovery.
    recovery_errors: u32,
    /// Successful (re-)registrations.
    registrations: u64,
    /// Group commit: while a batch runs, the messages it sends, in order, held until
    /// its checkpoint records are durable.
    held: Option<Vec<(Outbox, Body)>>,
    /// Group commit pipelined: the groups whose sync was started, with the messages
    /// they hold (docs/recovery-latency.md P11-P16).
    pipeline: group_commit::Pipeline,
    /// Executors still to wake, paced (docs/recovery-latency.md P20).
    wakes: wake::WakeQueue,
}

impl Agent {
    fn now(&self) -> Instant {
        self.env.clock.now()
    }

    fn agent_id(&self) -> AgentId {
        AgentId::new(self.info.id.clone())
    }

    fn connection_id(&mut self) -> ConnectionId {
        self.next_connection += 1;
        ConnectionId(self.next_connection)
    }

    /// Forwards executor connections into the event loop.
    fn accept_executors(&mut self, mut listener: Box<dyn crate::os::Listener>) {
        let sender = self.inbox_sender.clone();
        self.tasks.spawn_local(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        if sender.send(Event::ExecutorConnected(stream, peer)).is_err() {
                            return;
                        }
                    }
                    Err(error) => warn!(%error, "failed to accept an executor connection"),
                }
            }
        });
    }

    fn serve(&mut self, stream: crate::os::BoxStream, peer: String) -> Outbox {
        let id = self.connection_id();
        let link = wire::Link {
            id,
            peer,
            clock: self.env.clock.clone(),
        };
        wire::serve(
            stream,
            link,
            &mut self.tasks,
            self.inbox_sender.clone(),
            Event::Wire,
        )
    }

    fn executors(&self) -> impl Iterator<Item = (&FrameworkId, &ExecutorId, &Executor)> {
        self.frameworks
            .iter()
            .flat_map(|(fid, f)| f.executors.iter().map(move |(eid, e)| (fid, eid, e)))
    }

    fn executor_mut(&mut self, fid: &FrameworkId, eid: &ExecutorId) -> Option<&mut Executor> {
        self.frameworks.get_mut(fid)?.executors.get_mut(eid)
    }

    /// Whether the agent holds a terminal state for the task (docs/stream-rules.md S1).
    fn task_terminal(&self, fid: &FrameworkId, tid: &TaskId) -> bool {
        self.frameworks.get(fid).is_some_and(|f| {
            f.executors
                .values()
                .any(|e| e.tasks.get(tid).is_some_and(|t| is_terminal(t.state)))
        })
    }

    fn find_task(&self, fid: &FrameworkId, tid: &TaskId) -> Option<ExecutorId> {
        let framework = self.frameworks.get(fid)?;
        framework
            .executors
            .iter()
            .find(|(_, e)| {
                e.tasks.contains_key(tid) || e.queued.iter().any(|t| t.task_id == tid.as_str())
            })
            .map(|(eid, _)| eid.clone())
    }
}
