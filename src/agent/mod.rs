//! The agent: launches executors, checkpoints what it must not forget, and recovers after
//! a crash (seeds 000 to 004; reference part A §6 to §19).
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

mod follow;
mod gc;
mod http;
mod lifecycle;
mod orphans;
pub mod registration;
pub mod status_updates;

use std::collections::{BTreeMap, BTreeSet};

use crate::security::executor_secret::{self, Secret, Verifier, ENV_SECRET};
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
use crate::ids::{AgentId, ContainerId, ExecutorId, FrameworkId, TaskId, Uuid};
use crate::os::{Env, FileLock, LaunchSpec, ProcessId, Signal};
use crate::proto::envelope::Body;
use crate::proto::{
    self, AgentInfo, ExecutorInfo, ExecutorRegistered, FrameworkInfo, ReregisterAgent, Resource,
    ShutdownExecutor, StatusUpdate, StatusUpdateMessage, Task, TaskInfo, TaskReason, TaskReport,
    TaskSource, TaskStatus,
};
use crate::wire::{self, ConnectionId, Incoming, Outbox};
use registration::Backoff;
use status_updates::{is_terminal, Classified, StatusUpdateManager};

/// What `--recover` says to do with live executors after a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoverMode {
    /// Reconnect to live executors.
    Reconnect,
    /// Shut every executor down and exit without registering.
    Cleanup,
}

/// `--reconfiguration_policy`: which changes of the agent's info (its flags) a restart
/// may make and still recover the old agent (docs/recovery-rules.md R9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReconfigurationPolicy {
    /// The address and resources must be exactly as checkpointed (Mesos' default).
    Equal,
    /// The address must be the same; resources may only grow (every checkpointed
    /// resource, by name and role, at least as large).
    Additive,
}

impl ReconfigurationPolicy {
    fn name(self) -> &'static str {
        match self {
            ReconfigurationPolicy::Equal => "equal",
            ReconfigurationPolicy::Additive => "additive",
        }
    }
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
        leader_epoch_seen: 0,
        master_address: config.masters.first().cloned().unwrap_or_default(),
        next_connect_at: None,
        registered: false,
        register_backoff: Backoff::new(config.registration_backoff_factor),
        register_at: None,
        unregister_deadline: None,
        last_master_contact: None,
        executor_connections: BTreeMap::new(),
        reregister_deadline: None,
        reconnect_retry_at: None,
        gc: BTreeMap::new(),
        old_agents_unlisted: None,
        next_disk_check: None,
        unidentified: BTreeMap::new(),
        connected_at: None,
        checkpointed_resources: Vec::new(),
        recovery_errors: 0,
        registrations: 0,
        held: None,
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
    agent.batch(|agent| agent.recover())?;
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
    /// The highest leadership epoch a master registered this agent with
    /// (docs/zookeeper.md Z6).
    leader_epoch_seen: u64,
    master_address: String,
    next_connect_at: Option<Instant>,
    registered: bool,
    register_backoff: Backoff,
    register_at: Option<Instant>,
    /// Unregistering (the operator asked the agent to leave): exit at this time at the
    /// latest, should the master not answer.
    unregister_deadline: Option<Instant>,
    last_master_contact: Option<Instant>,
    executor_connections: BTreeMap<ConnectionId, (FrameworkId, ExecutorId)>,
    reregister_deadline: Option<Instant>,
    /// When to ask unidentified executor connections to re-register again.
    reconnect_retry_at: Option<Instant>,
    gc: BTreeMap<PathBuf, Instant>,
    /// docs/recovery-rules.md R26: the current agent id, while a listing of old agents
    /// the disk failed waits for the next disk check.
    old_agents_unlisted: Option<AgentId>,
    next_disk_check: Option<Instant>,
    /// Executor connections that have not yet said which executor they are.
    unidentified: BTreeMap<ConnectionId, Outbox>,
    /// When the current master connection was made.
    connected_at: Option<Instant>,
    /// What `resources.info` holds.
    checkpointed_resources: Vec<Resource>,
    /// Errors counted by non-strict recovery.
    recovery_errors: u32,
    /// Successful (re-)registrations.
    registrations: u64,
    /// Group commit: while a batch runs, the messages it sends, in order, held until
    /// its checkpoint records are durable.
    held: Option<Vec<(Outbox, Body)>>,
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

    // ----------------------------------------------------------------------------------
    // Recovery.

    fn recover(&mut self) -> Result<(), AgentError> {
        let options = RecoverOptions {
            strict: self.config.strict,
            truncate: true,
            current_boot_id: if broken!(self.config.breakage.ignore_boot_id) {
                None
            } else {
                Some(self.boot_id.clone())
            },
        };
        let latest = self.paths.latest_agent().display().to_string();
        info!(meta = %self.paths.root().display(), strict = self.config.strict, "recovering state");
        let state =
            checkpoint::recover(self.env.fs.as_ref(), &self.paths, &options).map_err(|error| {
                AgentError::Recovery {
                    error,
                    latest: latest.clone(),
                }
            })?;
        let Some(state) = state else {
            crate::coverage::point!("agent_first_start");
            info!("no checkpointed state: first start");
            // Nothing checkpointed claims any process (docs/lifecycle-rules.md rule 20).
            self.destroy_orphan_executors();
            return self.finish_recovery_if_ready();
        };
        // What a previous incarnation left in the page cache is made durable before
        // anything recovered is acted on (docs/recovery-rules.md R14).
        if !broken!(self.config.breakage.skip_recovery_sync) {
            checkpoint::make_durable(self.env.fs.as_ref(), &state)?;
        }
        if broken!(self.config.breakage.panic_on_recovery_warning)
            && state
                .warnings
                .iter()
                .any(|w| !matches!(w.kind, crate::checkpoint::WarningKind::Rebooted))
        {
            panic!("breakage: panic on a recovery warning");
        }
        for warning in &state.warnings {
            info!(path = %warning.path.strip_prefix(self.paths.root()).unwrap_or(&warning.path).display(), "recovery warning: {}", warning.message);
        }
        self.recovery_errors = state.errors;
        if state.errors > 0 {
            warn!(
                errors = state.errors,
                "errors counted during non-strict recovery"
            );
        }
        if let Some(resources) = &state.resources {
            let recovered = if broken!(self.config.breakage.forget_checkpointed_resources) {
                Vec::new()
            } else {
                resources.resources.clone()
            };
            if !recovered.is_empty() {
                info!(resources = %describe_resources(&recovered), "recovered checkpointed resources");
            }
            // Checkpointed resources must still be offered by this agent (docs/recovery-rules.md R10,
            // applyCheckpointedResources): a reservation of something the flags no
            // longer give is an incompatible restart. A dynamic reservation (made at run
            // time through the master) is carved from the unreserved resources of its
            // name: all of them together must fit.
            let dynamic = |r: &&Resource| {
                r.reservation
                    .starts_with(crate::master::DYNAMIC_RESERVATION_PREFIX)
            };
            for resource in &recovered {
                let is_dynamic = dynamic(&resource);
                let offered: f64 = self
                    .config
                    .resources
                    .iter()
                    .filter(|r| {
                        r.name == resource.name
                            && if is_dynamic {
                                r.role.is_empty()
                            } else {
                                r.role == resource.role
                            }
                    })
                    .map(|r| r.scalar)
                    .sum();
                let wanted: f64 = if is_dynamic {
                    recovered
                        .iter()
                        .filter(dynamic)
                        .filter(|r| r.name == resource.name)
                        .map(|r| r.scalar)
                        .sum()
                } else {
                    resource.scalar
                };
                if offered < wanted {
                    return Err(AgentError::IncompatibleResources {
                        checkpointed: describe_resources(&recovered),
                        flags: describe_resources(&self.config.resources),
                        resources_info: self.paths.resources_info().display().to_string(),
                    });
                }
            }
            self.checkpointed_resources = recovered;
        }
        if state.rebooted {
            crate::coverage::point!("agent_reboot_detected");
            info!("machine rebooted: agent state not recovered, registering as a new agent");
            // docs/recovery-rules.md R1: the old agent is gone for good. `slaves/latest`
            // goes, durably, before `finish_recovery` writes the new boot id, so a stop
            // before the first registration cannot bring the pre-reboot agent back.
            self.store.forget_latest_agent()?;
        }
        self.recover_agent(&state, latest)?;
        // Executors no recovered run awaits are destroyed (docs/lifecycle-rules.md
        // rule 20), before anything is sent: a task reported failed does not run on.
        self.destroy_orphan_executors();
        self.finish_recovery_if_ready()
    }

    fn recover_agent(&mut self, state: &State, latest: String) -> Result<(), AgentError> {
        let Some(agent) = &state.agent else {
            return Ok(());
        };
        let Some(old) = &agent.info else {
            return Ok(());
        };
        let mut expected = self.info.clone();
        expected.id = old.id.clone();
        let policy = self.config.reconfiguration_policy;
        if self.config.recover == RecoverMode::Reconnect {
            if let Some(mismatch) = info_mismatch(old, &expected, policy) {
                return Err(AgentError::Incompatible {
                    old: format!(
                        "{}:{} with resources {}",
                        old.hostname,
                        old.port,
                        describe_resources(&old.resources)
                    ),
                    new: format!(
                        "{}:{} with resources {} ({mismatch}; --reconfiguration_policy={})",
                        expected.hostname,
                        expected.port,
                        describe_resources(&expected.resources),
                        policy.name()
                    ),
                    latest,
                });
            }
        }
        self.info = old.clone();
        if self.config.recover == RecoverMode::Reconnect && expected.resources != old.resources {
            // A compatible change (additive): the agent keeps its id and tells the master
            // its new resources when it re-registers.
            crate::coverage::point!("agent_resources_changed_compatibly");
            info!(old = %describe_resources(&old.resources), new = %describe_resources(&expected.resources), "agent resources changed compatibly");
            self.info.resources = expected.resources.clone();
            if self.config.checkpoint {
                self.store.write_agent_info(&self.info)?;
            }
        }
        crate::coverage::point!("agent_recovered");
        info!(agent = %agent.id, "recovered agent");
        // Runs whose executor was never launched (no forked.pid).
        let mut never_launched: BTreeSet<(FrameworkId, ExecutorId)> = BTreeSet::new();
        for framework_state in agent.frameworks.values() {
            let fid = framework_state.id.clone();
            let Some(framework_info) = framework_state.info.clone() else {
                info!(framework = %fid, "skipping framework without info");
                if framework_state.executors.is_empty() {
                    // Died while writing it: nothing else records these directories
                    // (docs/lifecycle-rules.md rule 5).
                    self.reschedule_completed_framework(&agent.id, &fid);
                }
                continue;
            };
            if framework_state.executors.is_empty() {
                self.schedule_gc(self.paths.framework(&agent.id, &fid), Duration::ZERO);
                continue;
            }
            let mut framework = Framework {
                info: framework_info,
                executors: BTreeMap::new(),
                shutting_down: false,
            };
            for executor_state in framework_state.executors.values() {
                let eid = executor_state.id.clone();
                let (Some(executor_info), Some(latest_run)) =
                    (executor_state.info.clone(), executor_state.latest.clone())
                else {
                    info!(framework = %fid, executor = %eid, "skipping executor without info or latest run");
                    self.schedule_gc(self.paths.executor(&agent.id, &fid, &eid), Duration::ZERO);
                    continue;
                };
                for old_run in executor_state.runs.keys().filter(|id| **id != latest_run) {
                    // Only the latest run can be live: earlier ones completed, and their
                    // directories, meta and sandbox, are scheduled with what is left of
                    // their gc_delay (docs/lifecycle-rules.md rules 5, 9).
                    self.reschedule_old_run(&agent.id, &fid, &eid, old_run);
                }
                let run_state = &executor_state.runs[&latest_run];
                if run_state.completed {
                    crate::coverage::point!("agent_completed_run_recovered");
                    info!(framework = %fid, executor = %eid, run = %latest_run, "executor run completed before the restart");
                    // Its directories, meta and sandbox, run and executor, with what is
                    // left of their gc_delay (docs/lifecycle-rules.md rule 5).
                    self.reschedule_completed_run(&agent.id, &fid, &eid, &latest_run);
                    continue;
                }
                let mut executor = Executor {
                    info: executor_info,
                    container: latest_run.clone(),
                    phase: ExecutorPhase::Reregistering,
                    process: None,
                    outbox: None,
                    queued: Vec::new(),
                    tasks: BTreeMap::new(),
                    kill_at: None,
                    register_by: None,
                    // docs/security.md SEC17: the checkpointed verifier, so that the
                    // live executor is still recognised after the restart.
                    secret: run_state
                        .forked_pid
                        .as_ref()
                        .and_then(|forked| forked.secret.clone()),
                };
                for task_state in run_state.tasks.values() {
                    if task_state.info.is_none() {
                        info!(task = %task_state.id, "skipping task without info");
                        continue;
                    }
                    let mut state = proto::TaskState::TaskStaging;
                    for update in &task_state.updates {
                        if let Some(status) = &update.status {
                            state = status.state();
                            if is_terminal(state) {
                                break;
                            }
                        }
                    }
                    self.updates.recover(&fid, task_state);
                    let pending = task_state.unacknowledged().count();
                    info!(framework = %fid, task = %task_state.id, state = state.as_str_name(), updates = task_state.updates.len(), unacknowledged = pending, bytes_cut = task_state.bytes_cut, "recovered task");
                    executor
                        .tasks
                        .insert(task_state.id.clone(), TaskEntry { state });
                }
                let alive = match &run_state.forked_pid {
                    Some(forked) if forked.boot_id == self.boot_id => {
                        self.env.processes.is_alive(&forked.process)
                    }
                    _ => false,
                };
                // Keep the pid of a dead executor of this boot (a later destroy checks it is
                // still gone), never one from another boot: that pid and start time may
                // name a stranger of this boot, which must be neither adopted nor
                // signalled (docs/recovery-rules.md R15).
                executor.process = run_state
                    .forked_pid
                    .as_ref()
                    .filter(|f| f.boot_id == self.boot_id)
                    .map(|f| f.process.clone());
                if run_state.forked_pid.is_none() {
                    never_launched.insert((fid.clone(), eid.clone()));
                }
                if alive {
                    crate::coverage::point!("agent_live_executor_awaited");
                    info!(framework = %fid, executor = %eid, run = %latest_run, "executor alive: waiting for it to re-register");
                } else {
                    let reason = if run_state.forked_pid.is_none() {
                        "executor was never launched (agent died before launch)"
                    } else {
                        "executor process is gone"
                    };
                    crate::coverage::point!("agent_executor_gone_at_recovery");
                    info!(framework = %fid, executor = %eid, run = %latest_run, "{reason}");
                    executor.phase = ExecutorPhase::Terminated;
                }
                framework.executors.insert(eid, executor);
            }
            if !framework.executors.is_empty() {
                self.frameworks.insert(fid, framework);
            } else {
                // Every executor completed: so did the framework (rules 3, 5).
                self.reschedule_completed_framework(&agent.id, &fid);
            }
        }
        // Executors that died while the agent was down, or were never started (the agent
        // died between checkpointing the launch and starting the process): their tasks
        // fail now (docs/recovery-rules.md R3).
        let dead: Vec<(FrameworkId, ExecutorId, bool)> = self
            .frameworks
            .iter()
            .flat_map(|(fid, f)| {
                f.executors
                    .iter()
                    .filter(|(_, e)| e.phase == ExecutorPhase::Terminated)
                    .map(|(eid, _)| {
                        let never = never_launched.contains(&(fid.clone(), eid.clone()));
                        (fid.clone(), eid.clone(), never)
                    })
            })
            .collect();
        for (fid, eid, never_started) in dead {
            let message = if never_started {
                "Executor never started: the agent died before launching it"
            } else {
                "Executor terminated while the agent was down"
            };
            self.executor_terminated(
                &fid,
                &eid,
                proto::TaskState::TaskFailed,
                TaskReason::ReasonExecutorTerminated,
                message,
            )?;
        }
        Ok(())
    }

    /// Recovering an agent with an id while waiting for executors to re-register: such
    /// an agent keeps a connection to the master and answers its pings
    /// (docs/recovery-rules.md R4).
    fn recovering_with_id(&self) -> bool {
        self.phase == Phase::Recovering
            && self.reregister_deadline.is_some()
            && !self.info.id.is_empty()
    }

    fn finish_recovery_if_ready(&mut self) -> Result<(), AgentError> {
        let waiting = self
            .executors()
            .any(|(_, _, e)| e.phase == ExecutorPhase::Reregistering);
        if waiting && self.config.recover == RecoverMode::Reconnect {
            let deadline = self.now() + self.config.executor_reregistration_timeout;
            self.reregister_deadline = Some(deadline);
            self.reconnect_retry_at = self
                .config
                .executor_reregistration_retry_interval
                .map(|interval| self.now() + interval);
            info!(
                timeout_ms = self.config.executor_reregistration_timeout.as_millis() as u64,
                "waiting for executors to re-register"
            );
            // docs/recovery-rules.md R4: tell the master now, not once the executors are
            // back (that may take the whole timeout).
            if self.recovering_with_id() {
                self.next_connect_at = Some(self.now());
            }
            return Ok(());
        }
        self.finish_recovery()
    }

    fn finish_recovery(&mut self) -> Result<(), AgentError> {
        self.reregister_deadline = None;
        self.reconnect_retry_at = None;
        self.store.write_boot_id(&self.boot_id)?;
        self.phase = Phase::Disconnected;
        self.next_connect_at = Some(self.now());
        if self.master.is_some() {
            // Connected while recovering (docs/recovery-rules.md R4): re-register there.
            self.start_registration();
        }
        self.next_disk_check = Some(self.now() + self.config.disk_watch_interval);
        info!("recovery complete");
        Ok(())
    }

    fn reregistration_timed_out(&mut self) -> Result<(), AgentError> {
        let late: Vec<(FrameworkId, ExecutorId)> = self
            .executors()
            .filter(|(_, _, e)| e.phase == ExecutorPhase::Reregistering)
            .map(|(f, e, _)| (f.clone(), e.clone()))
            .collect();
        for (fid, eid) in late {
            crate::coverage::point!("agent_executor_reregistration_timeout");
            info!(framework = %fid, executor = %eid, "executor did not re-register in time: destroying it");
            if let Some(process) = self
                .executor_mut(&fid, &eid)
                .and_then(|e| e.process.clone())
            {
                let _ = self.env.processes.signal(&process, Signal::Kill);
            }
            let message = format!(
                "Executor did not re-register within {:?}",
                self.config.executor_reregistration_timeout
            );
            let state = if broken!(self.config.breakage.reregistration_timeout_fails_tasks) {
                proto::TaskState::TaskFailed
            } else {
                proto::TaskState::TaskLost
            };
            self.executor_terminated(
                &fid,
                &eid,
                state,
                TaskReason::ReasonExecutorReregistrationTimeout,
                &message,
            )?;
        }
        self.finish_recovery()
    }

    /// `--executor_reregistration_retry_interval`: executor connections that have said
    /// nothing yet (their re-registration may have been lost) are asked again
    /// (docs/recovery-rules.md R12).
    fn retry_executor_reconnect(&mut self, now: Instant) {
        let interval = self
            .config
            .executor_reregistration_retry_interval
            .unwrap_or(IDLE_WAIT);
        self.reconnect_retry_at = Some(now + interval);
        if self.unidentified.is_empty() {
            return;
        }
        info!(
            connections = self.unidentified.len(),
            "asking executors that have not re-registered to reconnect"
        );
        for outbox in self.unidentified.values() {
            outbox.send(Body::ReconnectExecutor(proto::ReconnectExecutor {
                agent_id: self.info.id.clone(),
            }));
        }
    }

    async fn cleanup(&mut self) -> AgentExit {
        let live: Vec<(FrameworkId, ExecutorId, Option<ProcessId>)> = self
            .executors()
            .filter(|(_, _, e)| e.phase == ExecutorPhase::Reregistering)
            .map(|(f, e, x)| (f.clone(), e.clone(), x.process.clone()))
            .collect();
        for (fid, eid, process) in live {
            crate::coverage::point!("agent_cleanup_shuts_executor_down");
            info!(framework = %fid, executor = %eid, "recover=cleanup: shutting executor down");
            if let Some(process) = process {
                let _ = self.env.processes.signal(&process, Signal::Kill);
            }
        }
        info!("recover=cleanup: exiting without registering");
        AgentExit::CleanedUp
    }

    // ----------------------------------------------------------------------------------
    // The event loop.

    async fn event_loop(
        &mut self,
        mut inbox: mpsc::UnboundedReceiver<Event>,
    ) -> Result<AgentExit, AgentError> {
        let mut next_tick = self.now();
        let unregister = self.config.unregister.clone();
        loop {
            let now = self.now();
            let wait = next_tick.saturating_duration_since(now);
            let sleep = self.env.clock.sleep(wait);
            let asked_to_leave = async {
                match &unregister {
                    Some(notify) => notify.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                event = inbox.recv() => {
                    let Some(event) = event else { continue };
                    if let Some(exit) = self.handle_events(event, &mut inbox)? {
                        return Ok(exit);
                    }
                    // The events may have armed an earlier timer.
                    next_tick = next_tick.min(self.next_deadline());
                }
                _ = asked_to_leave => {
                    if let Some(exit) = self.unregister() {
                        return Ok(exit);
                    }
                    next_tick = next_tick.min(self.next_deadline());
                }
                _ = sleep => {
                    self.batch(|agent| agent.on_tick())?;
                    if self.unregister_deadline.is_some_and(|at| self.now() >= at) {
                        info!("the master did not answer the unregistration: leaving anyway");
                        return Ok(self.shut_down("unregistered by the operator".into()));
                    }
                    next_tick = self.next_deadline();
                }
            }
        }
    }

    /// Handles `first` and, with group commit on, the events already waiting behind it
    /// (up to [`AgentConfig::status_update_batch`] in all) as one batch.
    fn handle_events(
        &mut self,
        first: Event,
        inbox: &mut mpsc::UnboundedReceiver<Event>,
    ) -> Result<Option<AgentExit>, AgentError> {
        let limit = self.config.status_update_batch;
        self.batch(|agent| {
            let mut outcome = agent.handle_event(first)?;
            let mut handled = 1;
            while outcome.is_none() && handled < limit {
                let Ok(event) = inbox.try_recv() else {
                    break;
                };
                outcome = agent.handle_event(event)?;
                handled += 1;
            }
            Ok(outcome)
        })
    }

    /// Runs `work` as one group-commit batch when group commit is on: log syncs are
    /// deferred and messages held; at the end every touched log is synced at once, and
    /// only then are the held messages sent, in order. When anything fails (the work, or
    /// the sync) the held messages are dropped, never sent, and the error stops the agent
    /// as a failed single sync does. With group commit off, `work` just runs.
    fn batch<T>(
        &mut self,
        work: impl FnOnce(&mut Agent) -> Result<T, AgentError>,
    ) -> Result<T, AgentError> {
        if self.config.status_update_batch <= 1 {
            return work(self);
        }
        self.store.defer_log_syncs();
        self.held = Some(Vec::new());
        let result = work(self);
        let held = self.held.take().unwrap_or_default();
        let value = match result {
            Ok(value) => value,
            Err(error) => {
                self.store.abandon_deferred();
                return Err(error);
            }
        };
        self.store.commit()?;
        for (outbox, body) in held {
            outbox.send(body);
        }
        Ok(value)
    }

    /// Sends `body` on `outbox`, or holds it until the current batch is durable.
    fn send(&mut self, outbox: &Outbox, body: Body) -> bool {
        match &mut self.held {
            Some(held) => {
                held.push((outbox.clone(), body));
                true
            }
            None => outbox.send(body),
        }
    }

    fn handle_event(&mut self, event: Event) -> Result<Option<AgentExit>, AgentError> {
        match event {
            Event::MasterConnected(stream, address) => {
                self.master_connecting = false;
                let outbox = self.serve(stream, address.clone());
                info!(master = %address, "connected to master");
                self.master = Some(outbox);
                self.registered = false;
                if self.phase == Phase::Recovering {
                    // docs/recovery-rules.md R4: say so, answer pings, re-register later.
                    info!(agent = %self.info.id, "telling the master the agent is recovering");
                    let body = Body::AgentRecovering(proto::AgentRecovering {
                        agent_id: self.info.id.clone(),
                    });
                    self.send_to_master(body);
                    self.register_at = None;
                } else {
                    self.start_registration();
                }
            }
            Event::MasterConnectFailed(address, error) => {
                self.master_connecting = false;
                info!(master = %address, %error, "failed to connect to master");
                self.next_master();
            }
            Event::ExecutorConnected(stream, peer) => {
                // docs/security.md SEC4: a bounded number of connections not yet
                // identified; the oldest makes room.
                if self.unidentified.len() >= wire::UNIDENTIFIED_CONNECTIONS_MAX {
                    if let Some((_, oldest)) = self.unidentified.pop_first() {
                        warn!(connection = %oldest.id(), %peer, "too many unidentified connections: the oldest closed");
                        oldest.close();
                    }
                }
                let outbox = self.serve(stream, peer);
                self.unidentified.insert(outbox.id(), outbox);
            }
            Event::Wire(Incoming::Closed(id, reason)) => self.connection_closed(id, &reason),
            Event::Wire(Incoming::Http(id, path)) => self.http(id, &path),
            Event::Wire(Incoming::Message(id, body)) => return self.handle_message(id, body),
        }
        Ok(None)
    }

    fn connection_closed(&mut self, id: ConnectionId, reason: &str) {
        if self.master.as_ref().is_some_and(|m| m.id() == id) {
            info!(%reason, "master connection closed");
            self.master_lost();
            return;
        }
        self.unidentified.remove(&id);
        if let Some((fid, eid)) = self.executor_connections.remove(&id) {
            if let Some(executor) = self.executor_mut(&fid, &eid) {
                if executor.outbox.as_ref().is_some_and(|o| o.id() == id) {
                    executor.outbox = None;
                    info!(framework = %fid, executor = %eid, %reason, "executor disconnected");
                }
            }
        }
    }

    /// Registration on the current master connection, after the first back-off delay.
    fn start_registration(&mut self) {
        self.connected_at = Some(self.now());
        self.register_backoff = Backoff::new(self.config.registration_backoff_factor);
        let delay = self.register_backoff.first(self.env.random.as_ref());
        self.register_at = Some(self.now() + delay);
    }

    /// docs/zookeeper.md Z6: a registration answer from a master whose leadership epoch
    /// is older than one already seen comes from a deposed leader. It is refused, and
    /// the agent looks for the leader elsewhere.
    fn deposed_leader(&mut self, epoch: u64) -> bool {
        if epoch < self.leader_epoch_seen {
            warn!(
                epoch,
                seen = self.leader_epoch_seen,
                master = %self.master_address,
                "registration answer from a deposed leader (older epoch): refused"
            );
            self.master_lost();
            self.next_master();
            return true;
        }
        self.leader_epoch_seen = epoch;
        false
    }

    fn master_lost(&mut self) {
        self.ask_for_leader();
        self.master = None;
        self.registered = false;
        self.register_at = None;
        self.updates.pause();
        if self.phase == Phase::Running {
            self.phase = Phase::Disconnected;
        }
        if self.phase == Phase::Disconnected || self.recovering_with_id() {
            let delay = self
                .env
                .random
                .duration_up_to(self.config.registration_backoff_factor);
            self.next_connect_at = Some(self.now() + delay);
        }
    }

    fn next_master(&mut self) {
        if let Some(leader) = self.detected_leader() {
            // docs/zookeeper.md Z20: the leader the group names, not the next address.
            self.master_address = leader;
        } else if !self.config.masters.is_empty() {
            self.master_index = (self.master_index + 1) % self.config.masters.len();
            self.master_address = self.config.masters[self.master_index].clone();
        }
        let delay = self.register_backoff.next(self.env.random.as_ref());
        self.next_connect_at = Some(self.now() + delay);
    }

    fn connect_master(&mut self) {
        self.master_connecting = true;
        self.next_connect_at = None;
        let address = self.master_address.clone();
        let net = self.env.net.clone();
        let clock = self.env.clock.clone();
        let sender = self.inbox_sender.clone();
        self.tasks.spawn_local(async move {
            let event = match wire::connect(net, clock, address.clone(), CONNECT_TIMEOUT).await {
                Ok(stream) => Event::MasterConnected(stream, address),
                Err(error) => Event::MasterConnectFailed(address, error),
            };
            let _ = sender.send(event);
        });
    }

    fn send_to_master(&mut self, body: Body) -> bool {
        match self.master.clone() {
            Some(master) => self.send(&master, body),
            None => false,
        }
    }

    fn send_registration(&mut self) {
        let body =
            if self.info.id.is_empty() {
                info!("registering with master");
                Body::RegisterAgent(proto::RegisterAgent {
                    info: Some(self.info.clone()),
                })
            } else {
                let mut tasks = Vec::new();
                let mut executors = Vec::new();
                let mut frameworks = Vec::new();
                for (fid, framework) in &self.frameworks {
                    frameworks.push(framework.info.clone());
                    for (eid, executor) in &framework.executors {
                        if executor.phase != ExecutorPhase::Terminated {
                            executors.push(executor.info.clone());
                        }
                        for (tid, entry) in &executor.tasks {
                            let terminal_acked = is_terminal(entry.state)
                                && !self
                                    .updates
                                    .streams()
                                    .contains_key(&(fid.clone(), tid.clone()));
                            if !terminal_acked {
                                tasks.push(TaskReport {
                                    task_id: tid.to_string(),
                                    framework_id: fid.to_string(),
                                    executor_id: eid.to_string(),
                                    state: entry.state as i32,
                                });
                            }
                        }
                        // A queued task is also in `tasks` (run_task records both): once.
                        for queued in executor.queued.iter().filter(|q| {
                            !executor.tasks.contains_key(&TaskId::new(q.task_id.clone()))
                        }) {
                            tasks.push(TaskReport {
                                task_id: queued.task_id.clone(),
                                framework_id: fid.to_string(),
                                executor_id: eid.to_string(),
                                state: proto::TaskState::TaskStaging as i32,
                            });
                        }
                    }
                }
                info!(agent = %self.info.id, tasks = tasks.len(), "re-registering with master");
                Body::ReregisterAgent(ReregisterAgent {
                    info: Some(self.info.clone()),
                    frameworks,
                    tasks,
                    executors,
                    // The master ignores this when it has a view of its own and sends
                    // that view back (CheckpointResources).
                    checkpointed_resources: self.checkpointed_resources.clone(),
                })
            };
        self.send_to_master(body);
    }

    /// When the agent next has something to do without a message: the earliest armed
    /// timer, or the next executor liveness poll (every [`IDLE_WAIT`]).
    fn next_deadline(&self) -> Instant {
        let now = self.now();
        let mut at = now + IDLE_WAIT;
        let mut consider = |candidate: Option<Instant>| {
            if let Some(candidate) = candidate {
                at = at.min(candidate.max(now + TICK_MIN));
            }
        };
        consider(self.reregister_deadline);
        consider(self.leader_poll_at(now));
        consider(self.unregister_deadline);
        consider(self.reconnect_retry_at);
        if self.recovering_with_id() && self.master.is_none() && !self.master_connecting {
            consider(self.next_connect_at);
        }
        if self.phase != Phase::Recovering {
            if self.master.is_none() && !self.master_connecting {
                consider(self.next_connect_at);
            }
            if self.master.is_some() && !self.registered {
                consider(self.register_at);
                consider(
                    self.connected_at
                        .map(|t| t + self.config.master_ping_timeout),
                );
            }
            if self.registered {
                consider(
                    self.last_master_contact
                        .map(|t| t + self.config.master_ping_timeout),
                );
            }
            consider(self.updates.next_retry());
        }
        consider(self.gc.values().min().copied());
        consider(self.next_disk_check);
        consider(self.executors().filter_map(|(_, _, e)| e.kill_at).min());
        consider(self.next_registration_deadline());
        at
    }

    fn on_tick(&mut self) -> Result<(), AgentError> {
        let now = self.now();
        self.follow_leader(now);
        if let Some(deadline) = self.reregister_deadline {
            if now >= deadline {
                self.reregistration_timed_out()?;
            }
        }
        if let Some(at) = self.reconnect_retry_at {
            if now >= at && self.phase == Phase::Recovering {
                self.retry_executor_reconnect(now);
            }
        }
        if self.recovering_with_id()
            && self.master.is_none()
            && !self.master_connecting
            && self.next_connect_at.is_some_and(|at| now >= at)
        {
            // docs/recovery-rules.md R4.
            self.connect_master();
        }
        if self.phase != Phase::Recovering {
            if self.master.is_none()
                && !self.master_connecting
                && self.next_connect_at.is_some_and(|at| now >= at)
            {
                self.connect_master();
            }
            if self.master.is_some()
                && !self.registered
                && self.connected_at.is_some_and(|at| {
                    now.saturating_duration_since(at) > self.config.master_ping_timeout
                })
            {
                // A connection that never answers our registration may be dead (a
                // partition that dropped segments): start over on a fresh one.
                info!("no answer to registration within the ping timeout: reconnecting");
                self.master = None;
                self.master_lost();
                self.next_master();
            }
            if self.master.is_some()
                && !self.registered
                && self.register_at.is_some_and(|at| now >= at)
            {
                self.send_registration();
                let delay = self.register_backoff.next(self.env.random.as_ref());
                self.register_at = Some(now + delay);
            }
            if self.registered
                && self.last_master_contact.is_some_and(|at| {
                    now.saturating_duration_since(at) > self.config.master_ping_timeout
                })
            {
                info!("no ping from the master within the ping timeout: looking for a master");
                self.master = None;
                self.master_lost();
                self.next_master();
            }
            for update in self.updates.due_retries(now) {
                crate::coverage::point!("agent_update_retried");
                info!(task = %update_task(&update), uuid = %update_uuid(&update), "retrying status update");
                self.forward(update);
            }
        }
        self.kill_overdue_executors(now)?;
        self.registration_timed_out(now)?;
        self.check_executors()?;
        self.collect_garbage(now);
        Ok(())
    }

    /// Executors asked to shut down that have not exited within the grace period are
    /// killed (one that never got a process is terminated then).
    fn kill_overdue_executors(&mut self, now: Instant) -> Result<(), AgentError> {
        let overdue: Vec<(FrameworkId, ExecutorId, Option<ProcessId>)> = self
            .executors()
            .filter(|(_, _, e)| e.kill_at.is_some_and(|at| now >= at))
            .map(|(f, e, x)| (f.clone(), e.clone(), x.process.clone()))
            .collect();
        for (fid, eid, process) in overdue {
            if let Some(executor) = self.executor_mut(&fid, &eid) {
                executor.kill_at = None;
            }
            match process {
                Some(process) if self.env.processes.is_alive(&process) => {
                    crate::coverage::point!("agent_executor_killed_after_grace_period");
                    info!(framework = %fid, executor = %eid, grace_s = EXECUTOR_SHUTDOWN_GRACE_PERIOD.as_secs(), "executor did not exit within the shutdown grace period: killing it");
                    let _ = self.env.processes.signal(&process, Signal::Kill);
                }
                Some(_) => {}
                None => self.executor_terminated(
                    &fid,
                    &eid,
                    proto::TaskState::TaskKilled,
                    TaskReason::ReasonFrameworkRemoved,
                    "Framework shut down",
                )?,
            }
        }
        Ok(())
    }

    /// The master tells the agent to shut a torn-down framework down: each executor is
    /// asked to shut down and killed after [`EXECUTOR_SHUTDOWN_GRACE_PERIOD`], the
    /// framework's pending updates are dropped (nobody will acknowledge them) and none
    /// are forwarded again; once its executors are gone its directories are scheduled
    /// for collection, as for any completed framework.
    fn shutdown_framework(&mut self, fid: FrameworkId) -> Result<(), AgentError> {
        if broken!(self.config.breakage.ignore_shutdown_framework) {
            return Ok(());
        }
        let deadline = self.now() + EXECUTOR_SHUTDOWN_GRACE_PERIOD;
        let Some(framework) = self.frameworks.get_mut(&fid) else {
            info!(framework = %fid, "shutdown of a framework the agent does not run: nothing to do");
            return Ok(());
        };
        if framework.shutting_down {
            return Ok(());
        }
        framework.shutting_down = true;
        crate::coverage::point!("agent_framework_shut_down");
        info!(framework = %fid, executors = framework.executors.len(), "shutting down framework");
        let mut ask = Vec::new();
        let mut done = Vec::new();
        for (eid, executor) in framework.executors.iter_mut() {
            executor.queued.clear();
            if executor.phase == ExecutorPhase::Terminated {
                done.push(eid.clone());
                continue;
            }
            executor.kill_at = Some(deadline);
            if let Some(outbox) = executor.outbox.clone() {
                ask.push((eid.clone(), outbox));
            }
        }
        self.updates.remove_framework(&fid);
        for (eid, outbox) in ask {
            info!(framework = %fid, executor = %eid, "asking executor to shut down");
            self.send(
                &outbox,
                Body::ShutdownExecutor(ShutdownExecutor {
                    reason: "framework shut down".into(),
                }),
            );
        }
        for eid in done {
            self.maybe_complete_executor(&fid, &eid)?;
        }
        Ok(())
    }

    /// The master's view of the resources this agent must checkpoint: `resources.info`
    /// is replaced with exactly those (durably: written, synced and renamed into place).
    fn checkpoint_resources(&mut self, resources: Vec<Resource>) -> Result<(), AgentError> {
        if broken!(self.config.breakage.ignore_checkpoint_resources) {
            return Ok(());
        }
        if resources == self.checkpointed_resources {
            info!(resources = %describe_resources(&resources), "checkpointed resources unchanged");
            return Ok(());
        }
        if self.config.checkpoint {
            self.store.replace_resources(&resources)?;
            info!(resources = %describe_resources(&resources), "checkpointed resources");
        }
        self.checkpointed_resources = resources;
        Ok(())
    }

    fn check_executors(&mut self) -> Result<(), AgentError> {
        let mut dead = Vec::new();
        for (fid, framework) in &self.frameworks {
            for (eid, executor) in &framework.executors {
                if matches!(
                    executor.phase,
                    ExecutorPhase::Running
                        | ExecutorPhase::Launching
                        | ExecutorPhase::Reregistering
                ) {
                    if let Some(process) = &executor.process {
                        if !self.env.processes.is_alive(process) {
                            dead.push((fid.clone(), eid.clone()));
                        }
                    }
                }
            }
        }
        for (fid, eid) in dead {
            info!(framework = %fid, executor = %eid, "executor process exited");
            self.executor_terminated(
                &fid,
                &eid,
                proto::TaskState::TaskFailed,
                TaskReason::ReasonExecutorTerminated,
                "Executor terminated",
            )?;
        }
        Ok(())
    }

    // ----------------------------------------------------------------------------------
    // Messages.

    fn handle_message(
        &mut self,
        id: ConnectionId,
        body: Body,
    ) -> Result<Option<AgentExit>, AgentError> {
        let from_master = self.master.as_ref().is_some_and(|m| m.id() == id);
        if from_master {
            self.last_master_contact = Some(self.now());
            return self.handle_master_message(body);
        }
        match body {
            Body::RegisterExecutor(message) => self.executor_registering(
                id,
                message.framework_id,
                message.executor_id,
                message.container_id,
                &message.secret,
                None,
            )?,
            Body::ReregisterExecutor(message) => {
                let updates = message.updates.clone();
                self.executor_registering(
                    id,
                    message.framework_id,
                    message.executor_id,
                    message.container_id,
                    &message.secret,
                    Some((updates, message.tasks)),
                )?
            }
            Body::StatusUpdate(StatusUpdateMessage {
                update: Some(update),
            }) => {
                let Some((fid, eid)) = self.executor_connections.get(&id).cloned() else {
                    warn!(connection = %id, "status update from an unregistered connection: dropped");
                    return Ok(None);
                };
                self.executor_update(&fid, &eid, update)?;
            }
            other => {
                warn!(connection = %id, kind = wire::kind(&other), "unexpected message from an executor")
            }
        }
        Ok(None)
    }

    /// docs/security.md SEC16: whether the registration on `connection` presented the
    /// secret of the executor's current run. One that does not is closed (nothing is
    /// sent on it) and nothing of the executor changes; it is logged, without the secret.
    fn secret_verifies(
        &mut self,
        connection: ConnectionId,
        fid: &FrameworkId,
        eid: &ExecutorId,
        secret: &str,
        outbox: &Outbox,
    ) -> bool {
        let verifier = self.executor_mut(fid, eid).and_then(|e| e.secret.clone());
        match executor_secret::check(verifier.as_ref(), secret) {
            Ok(()) => true,
            Err(reason) => {
                warn!(connection = %connection, framework = %fid, executor = %eid, reason, "executor registration refused: its secret does not verify; connection closed");
                outbox.close();
                false
            }
        }
    }

    fn handle_master_message(&mut self, body: Body) -> Result<Option<AgentExit>, AgentError> {
        match body {
            Body::AgentRegistered(message) => {
                if self.deposed_leader(message.leader_epoch) {
                    return Ok(None);
                }
                self.registered_with(message.agent_id, message.reconciliations)?
            }
            Body::AgentReregistered(message) => {
                if self.deposed_leader(message.leader_epoch) {
                    return Ok(None);
                }
                self.registered_with(message.agent_id, message.reconciliations)?
            }
            Body::NotLeader(message) => {
                info!(leader = %message.leader, "master is not the leader");
                self.master = None;
                self.master_lost();
                if !message.leader.is_empty() {
                    self.master_address = message.leader;
                } else {
                    self.next_master();
                }
            }
            Body::Ping(ping) => {
                self.send_to_master(Body::Pong(proto::Pong {
                    sequence: ping.sequence,
                }));
            }
            Body::RunTask(message) => self.run_task(message)?,
            Body::KillTask(message) => self.kill_task(
                FrameworkId::new(message.framework_id),
                TaskId::new(message.task_id),
            )?,
            Body::Acknowledgement(ack) => self.acknowledgement(ack)?,
            Body::ShutdownFramework(message) => {
                self.shutdown_framework(FrameworkId::new(message.framework_id))?
            }
            Body::CheckpointResources(message) => {
                if message.agent_id == self.info.id {
                    self.checkpoint_resources(message.resources)?
                } else {
                    warn!(agent = %message.agent_id, "checkpoint_resources for another agent: dropped");
                }
            }
            Body::ShutdownAgent(message) => {
                info!(reason = %message.reason, "master asked the agent to shut down");
                return Ok(Some(self.shut_down(message.reason)));
            }
            other => warn!(
                kind = wire::kind(&other),
                "unexpected message from the master"
            ),
        }
        Ok(None)
    }

    /// Leaves the cluster for good: kills every executor and forgets the agent's id (the
    /// `latest` link), so that the next start registers as a new agent.
    fn shut_down(&mut self, reason: String) -> AgentExit {
        let processes: Vec<ProcessId> = self
            .executors()
            .filter_map(|(_, _, e)| e.process.clone())
            .collect();
        for process in processes {
            let _ = self.env.processes.signal(&process, Signal::Kill);
        }
        let _ = self.store.forget_latest_agent();
        AgentExit::ShutDown(reason)
    }

    /// The operator asked the agent to leave (SIGUSR1): tell the master, which removes
    /// the agent, reports its tasks lost and answers with `ShutdownAgent`; without a
    /// master to tell, leave at once.
    fn unregister(&mut self) -> Option<AgentExit> {
        if self.registered && self.master.is_some() && !self.info.id.is_empty() {
            crate::coverage::point!("agent_left_cluster");
            info!(agent = %self.info.id, "asked to leave the cluster: unregistering");
            let body = Body::UnregisterAgent(proto::UnregisterAgent {
                agent_id: self.info.id.clone(),
            });
            self.send_to_master(body);
            self.unregister_deadline = Some(self.now() + UNREGISTER_TIMEOUT);
            return None;
        }
        info!("asked to leave the cluster while not registered: shutting down");
        Some(self.shut_down("unregistered by the operator".into()))
    }

    fn registered_with(
        &mut self,
        agent_id: String,
        reconciliations: Vec<TaskReport>,
    ) -> Result<(), AgentError> {
        if self.registered {
            return Ok(());
        }
        let first = self.info.id.is_empty();
        if first {
            self.info.id = agent_id.clone();
            if self.config.checkpoint {
                self.store.write_agent_info(&self.info)?;
            }
            info!(agent = %agent_id, "registered with master");
            // docs/lifecycle-rules.md rule 7.
            self.schedule_old_agents(&AgentId::new(agent_id.clone()));
            // Reserved resources (a role other than `*`) persist across agents and
            // reboots in `resources.info`.
            let reserved: Vec<Resource> = self
                .config
                .resources
                .iter()
                .filter(|r| !r.role.is_empty())
                .cloned()
                .collect();
            if self.config.checkpoint && reserved != self.checkpointed_resources {
                self.store.replace_resources(&reserved)?;
                info!(resources = %describe_resources(&reserved), "checkpointed resources");
                self.checkpointed_resources = reserved;
            }
        } else {
            info!(agent = %agent_id, reconciliations = reconciliations.len(), "re-registered with master");
            // Old agents scheduled by an earlier incarnation (docs/lifecycle-rules.md rule 7).
            self.schedule_old_agents(&AgentId::new(agent_id.clone()));
        }
        self.registered = true;
        self.registrations += 1;
        self.register_at = None;
        self.phase = Phase::Running;
        self.last_master_contact = Some(self.now());
        // Resume first, so that the reconciliation updates below are forwarded once, as
        // new updates, and not again as resumed ones.
        let now = self.now();
        if !broken!(self.config.breakage.no_resume_after_registration) {
            for update in self.updates.resume(now) {
                crate::coverage::point!("agent_update_resent_after_reregistration");
                info!(task = %update_task(&update), state = update_state(&update), "resending unacknowledged status update");
                self.forward(update);
            }
        }
        // Tasks the master thinks open here, after a re-registration or a retried first
        // registration (docs/stream-rules.md S2): those the agent does not know are lost.
        for report in reconciliations {
            let fid = FrameworkId::new(report.framework_id.clone());
            let tid = TaskId::new(report.task_id.clone());
            if self.find_task(&fid, &tid).is_none() {
                crate::coverage::point!("agent_master_task_unknown_reported_lost");
                info!(framework = %fid, task = %tid, "master knows a task the agent does not: reporting it lost");
                let update = self.make_update(
                    &fid,
                    &ExecutorId::new(report.executor_id),
                    &tid,
                    proto::TaskState::TaskLost,
                    TaskReason::ReasonReconciliation,
                    "Reconciliation: task unknown to the agent",
                );
                self.accept_update(&fid, update, false)?;
            }
        }
        Ok(())
    }

    fn run_task(&mut self, message: proto::RunTask) -> Result<(), AgentError> {
        let (Some(framework_info), Some(executor_info), Some(task_info)) =
            (message.framework, message.executor, message.task)
        else {
            warn!("run_task without framework, executor or task: dropped");
            return Ok(());
        };
        if self.phase != Phase::Running {
            // The master reconciles it when it answers the retried registration
            // (docs/stream-rules.md S2).
            info!(task = %task_info.task_id, "ignoring run_task while not registered");
            return Ok(());
        }
        let fid = FrameworkId::new(framework_info.id.clone());
        let eid = ExecutorId::new(executor_info.executor_id.clone());
        let tid = TaskId::new(task_info.task_id.clone());
        if self.find_task(&fid, &tid).is_some() {
            info!(task = %tid, "duplicate run_task ignored");
            return Ok(());
        }
        if !broken!(self.config.breakage.relaunch_ended_task)
            && self.terminal_update_unacknowledged(&fid, &tid)
        {
            // docs/task-lifecycle.md L23: the task already ended here; the framework
            // learns how from the terminal update the agent keeps retrying.
            return Ok(());
        }
        if self.frameworks.get(&fid).is_some_and(|f| f.shutting_down) {
            info!(framework = %fid, task = %tid, "run_task for a framework being shut down: dropped");
            return Ok(());
        }
        if self.executor_terminating(&fid, &eid) {
            // docs/lifecycle-rules.md rule 14: a run of this executor id has ended and is
            // still waiting for its tasks' terminal updates to be acknowledged; a new run
            // is launched only once it completed.
            return self.refuse_task_for_terminated_executor(&fid, &eid, &tid);
        }
        let checkpoint = framework_info.checkpoint && self.config.checkpoint;
        let agent = self.agent_id();
        if !self.frameworks.contains_key(&fid) {
            if checkpoint {
                self.store.write_framework(&agent, &framework_info, "")?;
            }
            self.frameworks.insert(
                fid.clone(),
                Framework {
                    info: framework_info.clone(),
                    executors: BTreeMap::new(),
                    shutting_down: false,
                },
            );
        }
        let needs_launch = match self.frameworks[&fid].executors.get(&eid) {
            Some(executor) => executor.phase == ExecutorPhase::Terminated,
            None => true,
        };
        if needs_launch {
            let container = ContainerId::new(format!("{:016x}", self.env.random.next_u64()));
            // docs/lifecycle-rules.md rule 4.
            self.unschedule_for_launch(&fid, &eid, &container);
            if checkpoint {
                let run = RunPath {
                    agent: &agent,
                    framework: &fid,
                    executor: &eid,
                    container: &container,
                };
                self.store.write_executor(&agent, &executor_info)?;
                self.store.write_run(&run)?;
            }
            let executor = Executor {
                info: executor_info.clone(),
                container: container.clone(),
                phase: ExecutorPhase::Launching,
                process: None,
                outbox: None,
                queued: Vec::new(),
                tasks: BTreeMap::new(),
                kill_at: None,
                register_by: None,
                secret: None,
            };
            self.frameworks
                .get_mut(&fid)
                .expect("inserted")
                .executors
                .insert(eid.clone(), executor);
        }
        let task = Task {
            task_id: task_info.task_id.clone(),
            name: task_info.name.clone(),
            framework_id: fid.to_string(),
            executor_id: eid.to_string(),
            agent_id: agent.to_string(),
            state: proto::TaskState::TaskStaging as i32,
            resources: task_info.resources.clone(),
            command: task_info.command.clone(),
        };
        let container = self.frameworks[&fid].executors[&eid].container.clone();
        if checkpoint {
            let run = RunPath {
                agent: &agent,
                framework: &fid,
                executor: &eid,
                container: &container,
            };
            self.store.write_task(&run, &task)?;
        }
        info!(framework = %fid, executor = %eid, task = %tid, "task checkpointed");
        let executor = self.executor_mut(&fid, &eid).expect("executor exists");
        executor.tasks.insert(
            tid.clone(),
            TaskEntry {
                state: proto::TaskState::TaskStaging,
            },
        );
        match executor.phase {
            ExecutorPhase::Running => {
                let outbox = executor.outbox.clone();
                if let Some(outbox) = outbox {
                    self.send(
                        &outbox,
                        Body::RunTask(proto::RunTask {
                            framework: Some(framework_info),
                            executor: Some(executor_info),
                            task: Some(task_info),
                        }),
                    );
                }
            }
            _ => executor.queued.push(task_info),
        }
        if needs_launch {
            self.launch_executor(&fid, &eid, checkpoint)?;
        }
        Ok(())
    }

    fn launch_executor(
        &mut self,
        fid: &FrameworkId,
        eid: &ExecutorId,
        checkpoint: bool,
    ) -> Result<(), AgentError> {
        let agent = self.agent_id();
        let container = self.frameworks[fid].executors[eid].container.clone();
        let run = RunPath {
            agent: &agent,
            framework: fid,
            executor: eid,
            container: &container,
        };
        let mut arguments: Vec<String> = self
            .config
            .executor_command
            .iter()
            .skip(1)
            .cloned()
            .collect();
        arguments.shrink_to_fit();
        let mut environment = self.config.executor_environment.clone();
        environment.insert(
            "REVENANT_AGENT_ADDRESS".to_owned(),
            self.config.listen.clone(),
        );
        // The agent's tag, inherited by the tasks too (docs/lifecycle-rules.md rule 20).
        environment.insert(crate::os::AGENT_TAG_VARIABLE.to_owned(), self.agent_tag());
        environment.insert("REVENANT_FRAMEWORK_ID".to_owned(), fid.to_string());
        environment.insert("REVENANT_EXECUTOR_ID".to_owned(), eid.to_string());
        environment.insert("REVENANT_CONTAINER_ID".to_owned(), container.to_string());
        environment.insert(
            "REVENANT_CHECKPOINT".to_owned(),
            if checkpoint { "1" } else { "0" }.to_owned(),
        );
        environment.insert(
            "REVENANT_RECOVERY_TIMEOUT_MS".to_owned(),
            self.config.recovery_timeout.as_millis().to_string(),
        );
        environment.insert(
            "REVENANT_SUBSCRIPTION_BACKOFF_MAX_MS".to_owned(),
            self.config
                .executor_reregistration_timeout
                .as_millis()
                .to_string(),
        );
        // docs/security.md SEC14: a fresh secret for this process, in its environment only.
        let secret = Secret::generate(self.env.random.as_ref());
        environment.insert(ENV_SECRET.to_owned(), secret.expose().to_owned());
        if let Some(executor) = self.executor_mut(fid, eid) {
            executor.secret = Some(secret.verifier());
        }
        let sandbox = paths::sandbox(&self.config.work_dir, &run);
        if let Err(error) = self.create_sandbox(&sandbox) {
            warn!(framework = %fid, executor = %eid, %error, "failed to create the executor's sandbox");
            return self.executor_terminated(
                fid,
                eid,
                proto::TaskState::TaskFailed,
                TaskReason::ReasonCommandExecutorFailed,
                &format!("Failed to create the sandbox: {error}"),
            );
        }
        let spec = LaunchSpec {
            program: self
                .config
                .executor_command
                .first()
                .cloned()
                .unwrap_or_default(),
            arguments,
            environment,
            working_dir: sandbox,
        };
        if broken!(self.config.breakage.launch_executor_twice) {
            // Test-only breakage: a second process of the same executor.
            let _ = self.env.processes.launch(&spec);
        }
        match self.env.processes.launch(&spec) {
            Ok(process) => {
                if checkpoint {
                    let forked = ForkedPid {
                        process: process.clone(),
                        boot_id: self.boot_id.clone(),
                        secret: Some(secret.verifier()),
                    };
                    self.store.write_forked_pid(&run, &forked)?;
                }
                info!(framework = %fid, executor = %eid, run = %container, "executor launched");
                let register_by = lifecycle::registration_deadline(
                    self.now(),
                    self.config.executor_registration_timeout,
                );
                if let Some(executor) = self.executor_mut(fid, eid) {
                    executor.process = Some(process);
                    executor.register_by = Some(register_by);
                }
            }
            Err(error) => {
                warn!(framework = %fid, executor = %eid, %error, "failed to launch executor");
                self.executor_terminated(
                    fid,
                    eid,
                    proto::TaskState::TaskFailed,
                    TaskReason::ReasonCommandExecutorFailed,
                    &format!("Failed to launch executor: {error}"),
                )?;
            }
        }
        Ok(())
    }

    fn executor_registering(
        &mut self,
        connection: ConnectionId,
        framework_id: String,
        executor_id: String,
        container_id: String,
        secret: &str,
        reregistration: Option<(Vec<StatusUpdate>, Vec<TaskInfo>)>,
    ) -> Result<(), AgentError> {
        let Some(outbox) = self.unidentified.remove(&connection) else {
            return Ok(());
        };
        let fid = FrameworkId::new(framework_id);
        let eid = ExecutorId::new(executor_id);
        let reregistering = reregistration.is_some();
        let phase = self
            .executor_mut(&fid, &eid)
            .filter(|e| e.container.as_str() == container_id)
            .map(|e| e.phase);
        if phase == Some(ExecutorPhase::Reregistering) && !reregistering {
            // It never registered before the restart, so it has nothing to re-register
            // with: it is left alone (its connection kept open, unanswered) and destroyed
            // at the re-registration timeout like any executor that did not re-register
            // (executors of unknown type are killed later by the re-registration timeout).
            if !self.secret_verifies(connection, &fid, &eid, secret, &outbox) {
                return Ok(());
            }
            info!(framework = %fid, executor = %eid, "executor that never registered before the restart registered: left to the re-registration timeout");
            if let Some(executor) = self.executor_mut(&fid, &eid) {
                executor.outbox = Some(outbox);
            }
            return Ok(());
        }
        let shutting_down = self.frameworks.get(&fid).is_some_and(|f| f.shutting_down);
        let acceptable = !shutting_down
            && match phase {
                Some(ExecutorPhase::Launching) => !reregistering && self.phase != Phase::Recovering,
                Some(ExecutorPhase::Reregistering) => reregistering,
                // An executor that lost its connection comes back while the agent runs.
                Some(ExecutorPhase::Running) => reregistering,
                _ => false,
            };
        if !acceptable {
            crate::coverage::point!("agent_executor_registration_refused");
            info!(framework = %fid, executor = %eid, run = %container_id, ?phase, "refusing executor registration: shutting it down");
            self.send(
                &outbox,
                Body::ShutdownExecutor(ShutdownExecutor {
                    reason: "unknown executor".into(),
                }),
            );
            return Ok(());
        }
        if !self.secret_verifies(connection, &fid, &eid, secret, &outbox) {
            return Ok(());
        }
        self.executor_connections
            .insert(connection, (fid.clone(), eid.clone()));
        let agent = self.agent_id();
        let checkpoint = self.frameworks[&fid].info.checkpoint && self.config.checkpoint;
        let executor = self.executor_mut(&fid, &eid).expect("checked above");
        let container = executor.container.clone();
        executor.phase = ExecutorPhase::Running;
        executor.register_by = None;
        executor.outbox = Some(outbox.clone());
        let queued = std::mem::take(&mut executor.queued);
        self.send(
            &outbox,
            Body::ExecutorRegistered(ExecutorRegistered {
                agent_id: agent.to_string(),
            }),
        );
        let framework_info = self.frameworks[&fid].info.clone();
        let executor_info = self.frameworks[&fid].executors[&eid].info.clone();
        for task in queued {
            self.send(
                &outbox,
                Body::RunTask(proto::RunTask {
                    framework: Some(framework_info.clone()),
                    executor: Some(executor_info.clone()),
                    task: Some(task),
                }),
            );
        }
        if checkpoint && !reregistering {
            let run = RunPath {
                agent: &agent,
                framework: &fid,
                executor: &eid,
                container: &container,
            };
            self.store
                .write_libprocess_pid(&run, &format!("executor({eid})@{}", connection))?;
        }
        match reregistration {
            None => info!(framework = %fid, executor = %eid, "executor registered"),
            Some((updates, tasks)) => {
                crate::coverage::point!("agent_executor_reregistered");
                info!(framework = %fid, executor = %eid, unacknowledged_updates = updates.len(), "executor re-registered");
                let known: Vec<String> = tasks
                    .iter()
                    .map(|t| t.task_id.clone())
                    .chain(updates.iter().map(update_task))
                    .collect();
                for update in updates {
                    self.executor_update(&fid, &eid, update)?;
                }
                // Tasks the agent launched that the executor never got (they end TASK_LOST).
                let staging: Vec<TaskId> = self.frameworks[&fid].executors[&eid]
                    .tasks
                    .iter()
                    .filter(|(tid, entry)| {
                        entry.state == proto::TaskState::TaskStaging
                            && !known.contains(&tid.to_string())
                    })
                    .map(|(tid, _)| tid.clone())
                    .collect();
                for tid in staging {
                    crate::coverage::point!("agent_task_lost_never_reached_executor");
                    info!(framework = %fid, task = %tid, "task was launched during the agent restart and never reached the executor: lost");
                    let update = self.make_update(
                        &fid,
                        &eid,
                        &tid,
                        proto::TaskState::TaskLost,
                        TaskReason::ReasonAgentRestarted,
                        "Task launched during agent restart",
                    );
                    self.accept_update(&fid, update, checkpoint)?;
                }
            }
        }
        if self.phase == Phase::Recovering
            && !self
                .executors()
                .any(|(_, _, e)| e.phase == ExecutorPhase::Reregistering)
        {
            self.finish_recovery()?;
        }
        Ok(())
    }

    fn kill_task(&mut self, fid: FrameworkId, tid: TaskId) -> Result<(), AgentError> {
        let Some(eid) = self.find_task(&fid, &tid) else {
            info!(framework = %fid, task = %tid, "kill for an unknown task: reporting it lost");
            let update = self.make_update(
                &fid,
                &ExecutorId::default(),
                &tid,
                proto::TaskState::TaskLost,
                TaskReason::ReasonReconciliation,
                "Task unknown to the agent",
            );
            return self.accept_update(&fid, update, false);
        };
        let executor = self.executor_mut(&fid, &eid).expect("found");
        if let Some(index) = executor
            .queued
            .iter()
            .position(|t| t.task_id == tid.as_str())
        {
            executor.queued.remove(index);
            let checkpoint = self.frameworks[&fid].info.checkpoint && self.config.checkpoint;
            let update = self.make_update(
                &fid,
                &eid,
                &tid,
                proto::TaskState::TaskKilled,
                TaskReason::ReasonTaskKilledDuringLaunch,
                "Killed before delivery to the executor",
            );
            self.accept_update(&fid, update, checkpoint)?;
            return self.destroy_if_idle_unregistered(&fid, &eid);
        }
        let registered = executor.outbox.is_some();
        if broken!(self.config.breakage.kill_leaves_executor_running) && registered {
            let checkpoint = self.frameworks[&fid].info.checkpoint && self.config.checkpoint;
            let update = self.make_update(
                &fid,
                &eid,
                &tid,
                proto::TaskState::TaskKilled,
                TaskReason::ReasonNone,
                "breakage: killed without stopping the executor",
            );
            return self.accept_update(&fid, update, checkpoint);
        }
        let outbox = self
            .executor_mut(&fid, &eid)
            .and_then(|executor| executor.outbox.clone());
        if let Some(outbox) = outbox {
            self.send(
                &outbox,
                Body::KillTask(proto::KillTask {
                    framework_id: fid.to_string(),
                    task_id: tid.to_string(),
                }),
            );
        }
        Ok(())
    }

    // ----------------------------------------------------------------------------------
    // Status updates.

    fn executor_update(
        &mut self,
        fid: &FrameworkId,
        eid: &ExecutorId,
        update: StatusUpdate,
    ) -> Result<(), AgentError> {
        if self.frameworks.get(fid).is_some_and(|f| f.shutting_down) {
            info!(framework = %fid, task = %update_task(&update), "status update of a framework being shut down: dropped");
            return Ok(());
        }
        let checkpoint =
            self.frameworks.get(fid).is_some_and(|f| f.info.checkpoint) && self.config.checkpoint;
        let uuid = update.uuid.clone();
        let task = update_task(&update);
        let classified = match self.updates.classify(fid, &update) {
            Err(error) => {
                warn!(framework = %fid, %error, "invalid status update dropped");
                return Ok(());
            }
            // The stream may be gone (its terminal update was acknowledged) while the
            // task is still known terminal: refused all the same (docs/stream-rules.md S1).
            Ok(Classified::New) if self.task_terminal(fid, &TaskId::new(task.clone())) => {
                Classified::AfterTerminal
            }
            Ok(classified) => classified,
        };
        match classified {
            Classified::Duplicate => {
                crate::coverage::point!("agent_duplicate_update_reacknowledged");
                info!(framework = %fid, task = %task, uuid = %update_uuid(&update), "duplicate status update: re-acknowledging");
            }
            Classified::AfterTerminal => {
                // Neither checkpointed nor forwarded; acknowledged so that the executor
                // stops resending it (docs/stream-rules.md S1).
                crate::coverage::point!("agent_update_after_terminal_refused");
                info!(framework = %fid, task = %task, uuid = %update_uuid(&update), state = update_state(&update), "status update after the task's terminal update: refused, re-acknowledging");
            }
            Classified::New => self.accept_update(fid, update, checkpoint)?,
        }
        // The update is durable (or a duplicate): now the executor may forget it. (Under
        // group commit the record is synced at the end of the batch, and this
        // acknowledgement is held until then.)
        if let Some(outbox) = self.executor_mut(fid, eid).and_then(|e| e.outbox.clone()) {
            info!(framework = %fid, task = %task, uuid = %Uuid::from_bytes(&uuid).unwrap_or_default(), "acknowledged status update to executor");
            let ack = Body::Acknowledgement(proto::Acknowledgement {
                agent_id: self.info.id.clone(),
                framework_id: fid.to_string(),
                task_id: task,
                uuid,
            });
            self.send(&outbox, ack);
        }
        Ok(())
    }

    /// Checkpoints (if the framework checkpoints) and queues a new update.
    fn accept_update(
        &mut self,
        fid: &FrameworkId,
        mut update: StatusUpdate,
        checkpoint: bool,
    ) -> Result<(), AgentError> {
        if self.frameworks.get(fid).is_some_and(|f| f.shutting_down) {
            return Ok(());
        }
        let tid = TaskId::new(update_task(&update));
        update.agent_id = self.info.id.clone();
        if let Some(status) = update.status.as_mut() {
            status.agent_id = self.info.id.clone();
        }
        let state = update_state_enum(&update);
        let eid = self.find_task(fid, &tid);
        if checkpoint && !broken!(self.config.breakage.skip_update_checkpoint) {
            if let Some(eid) = &eid {
                let agent = self.agent_id();
                let container = self.frameworks[fid].executors[eid].container.clone();
                let run = RunPath {
                    agent: &agent,
                    framework: fid,
                    executor: eid,
                    container: &container,
                };
                self.store.append_update(&run, &tid, &update)?;
            }
        }
        info!(framework = %fid, task = %tid, state = state.as_str_name(), uuid = %update_uuid(&update), checkpointed = checkpoint && eid.is_some(), "status update accepted");
        if let Some(eid) = &eid {
            if let Some(entry) = self
                .executor_mut(fid, eid)
                .and_then(|e| e.tasks.get_mut(&tid))
            {
                if !is_terminal(entry.state) {
                    entry.state = state;
                }
            }
        }
        let now = self.now();
        if let Some(update) = self.updates.accept(fid, update, now) {
            self.forward(update);
        }
        Ok(())
    }

    fn forward(&mut self, mut update: StatusUpdate) {
        if self.phase != Phase::Running {
            return;
        }
        let fid = FrameworkId::new(update.framework_id.clone());
        let tid = TaskId::new(update_task(&update));
        if let Some(eid) = self.find_task(&fid, &tid) {
            update.latest_state = self.frameworks[&fid].executors[&eid].tasks[&tid].state as i32;
        }
        info!(task = %tid, state = update_state(&update), uuid = %update_uuid(&update), "forwarding status update to master");
        self.send_to_master(Body::StatusUpdate(StatusUpdateMessage {
            update: Some(update),
        }));
    }

    fn acknowledgement(&mut self, ack: proto::Acknowledgement) -> Result<(), AgentError> {
        let fid = FrameworkId::new(ack.framework_id.clone());
        let tid = TaskId::new(ack.task_id.clone());
        let Some(uuid) = Uuid::from_bytes(&ack.uuid) else {
            warn!(task = %tid, "acknowledgement without a uuid dropped");
            return Ok(());
        };
        if let Err(error) = self.updates.check_ack(&fid, &tid, uuid) {
            info!(task = %tid, %uuid, reason = error.reason(), "acknowledgement ignored");
            return Ok(());
        }
        let checkpoint =
            self.frameworks.get(&fid).is_some_and(|f| f.info.checkpoint) && self.config.checkpoint;
        let eid = self.find_task(&fid, &tid);
        if checkpoint {
            if let Some(eid) = &eid {
                let agent = self.agent_id();
                let container = self.frameworks[&fid].executors[eid].container.clone();
                let run = RunPath {
                    agent: &agent,
                    framework: &fid,
                    executor: eid,
                    container: &container,
                };
                self.store.append_ack(&run, &tid, uuid)?;
            }
        }
        let now = self.now();
        let head = broken!(self.config.breakage.resend_acknowledged_update)
            .then(|| {
                self.updates
                    .streams()
                    .get(&(fid.clone(), tid.clone()))
                    .and_then(|s| s.pending().next().cloned())
            })
            .flatten();
        let (next, terminated) = self.updates.acknowledged(&fid, &tid, uuid, now);
        info!(task = %tid, %uuid, terminal = terminated, "status update acknowledged by framework");
        if let Some(next) = next {
            self.forward(next);
            if let Some(head) = head {
                // Test-only breakage: an acknowledged update again, behind a later one.
                self.forward(head);
            }
        }
        if terminated && broken!(self.config.breakage.second_terminal_update) {
            let update = self.make_update(
                &fid,
                &eid.clone().unwrap_or_default(),
                &tid,
                proto::TaskState::TaskFailed,
                TaskReason::ReasonNone,
                "breakage: terminal twice",
            );
            self.forward(update);
        }
        if terminated && broken!(self.config.breakage.resurrect_after_terminal) {
            let update = self.make_update(
                &fid,
                &eid.clone().unwrap_or_default(),
                &tid,
                proto::TaskState::TaskRunning,
                TaskReason::ReasonNone,
                "breakage: resurrected",
            );
            self.forward(update);
        }
        if terminated {
            if let Some(eid) = eid {
                self.maybe_complete_executor(&fid, &eid)?;
            }
        }
        Ok(())
    }

    fn make_update(
        &self,
        fid: &FrameworkId,
        eid: &ExecutorId,
        tid: &TaskId,
        state: proto::TaskState,
        reason: TaskReason,
        message: &str,
    ) -> StatusUpdate {
        let uuid = self.env.random.uuid().to_vec();
        let timestamp = self.env.wall_seconds();
        StatusUpdate {
            framework_id: fid.to_string(),
            executor_id: eid.to_string(),
            agent_id: self.info.id.clone(),
            status: Some(TaskStatus {
                task_id: tid.to_string(),
                state: state as i32,
                source: TaskSource::SourceAgent as i32,
                reason: reason as i32,
                message: message.to_owned(),
                agent_id: self.info.id.clone(),
                executor_id: eid.to_string(),
                timestamp,
                uuid: uuid.clone(),
            }),
            timestamp,
            uuid,
            latest_state: state as i32,
        }
    }

    /// An executor is gone: every non-terminal task gets a terminal update.
    fn executor_terminated(
        &mut self,
        fid: &FrameworkId,
        eid: &ExecutorId,
        state: proto::TaskState,
        reason: TaskReason,
        message: &str,
    ) -> Result<(), AgentError> {
        let checkpoint =
            self.frameworks.get(fid).is_some_and(|f| f.info.checkpoint) && self.config.checkpoint;
        let shutting_down = self.frameworks.get(fid).is_some_and(|f| f.shutting_down);
        let Some(executor) = self.executor_mut(fid, eid) else {
            return Ok(());
        };
        executor.phase = ExecutorPhase::Terminated;
        executor.outbox = None;
        executor.kill_at = None;
        if shutting_down {
            // Its framework was torn down: no updates, nobody to acknowledge them.
            executor.queued.clear();
            info!(framework = %fid, executor = %eid, "executor of a framework being shut down terminated");
            return self.maybe_complete_executor(fid, eid);
        }
        let mut open: Vec<TaskId> = executor
            .tasks
            .iter()
            .filter(|(_, e)| !is_terminal(e.state))
            .map(|(t, _)| t.clone())
            .collect();
        let queued: Vec<TaskId> = executor
            .queued
            .drain(..)
            .map(|t| TaskId::new(t.task_id))
            .collect();
        for tid in queued {
            if !open.contains(&tid) {
                open.push(tid);
            }
        }
        // docs/recovery-rules.md R3: a task of an executor that never started failed (the
        // agent knows it is not running); it is not reported lost.
        for tid in open {
            let update = self.make_update(fid, eid, &tid, state, reason, message);
            self.accept_update(fid, update, checkpoint)?;
        }
        self.maybe_complete_executor(fid, eid)
    }

    /// A terminated executor whose tasks' terminal updates were all acknowledged is
    /// complete: write its sentinel and schedule its directories for collection.
    fn maybe_complete_executor(
        &mut self,
        fid: &FrameworkId,
        eid: &ExecutorId,
    ) -> Result<(), AgentError> {
        let Some(executor) = self.frameworks.get(fid).and_then(|f| f.executors.get(eid)) else {
            return Ok(());
        };
        if executor.phase != ExecutorPhase::Terminated {
            return Ok(());
        }
        let pending = executor.tasks.keys().any(|tid| {
            self.updates
                .streams()
                .contains_key(&(fid.clone(), tid.clone()))
        });
        if pending {
            return Ok(());
        }
        let checkpoint = self.frameworks[fid].info.checkpoint && self.config.checkpoint;
        let agent = self.agent_id();
        let container = executor.container.clone();
        let run = RunPath {
            agent: &agent,
            framework: fid,
            executor: eid,
            container: &container,
        };
        if checkpoint && !agent.as_str().is_empty() {
            self.store.write_sentinel(&run)?;
        }
        crate::coverage::point!("agent_executor_run_completed");
        info!(framework = %fid, executor = %eid, run = %container, "executor run completed");
        let framework = self.frameworks.get_mut(fid).expect("exists");
        framework.executors.remove(eid);
        let framework_done = framework.executors.is_empty();
        let shut_down = framework.shutting_down;
        // Its run, its executor and, if it was the last, its framework (meta and
        // sandbox) are collected after gc_delay (docs/lifecycle-rules.md rule 3).
        self.schedule_completed_run(fid, eid, &container, checkpoint, framework_done);
        if framework_done {
            self.frameworks.remove(fid);
            self.updates.remove_framework(fid);
            if shut_down {
                info!(framework = %fid, "framework shut down: all its executors are gone");
            }
        }
        Ok(())
    }

    // ----------------------------------------------------------------------------------
    // Garbage collection (docs/lifecycle-rules.md rules 3-7).

    fn schedule_gc(&mut self, path: PathBuf, delay: Duration) {
        let at = self.now() + delay;
        info!(path = %path.strip_prefix(&self.config.work_dir).unwrap_or(&path).display(), delay_s = delay.as_secs(), "scheduled for garbage collection");
        self.gc.insert(path, at);
    }

    fn collect_garbage(&mut self, now: Instant) {
        if self.next_disk_check.is_some_and(|at| now >= at) {
            self.next_disk_check = Some(now + self.config.disk_watch_interval);
            self.retry_old_agents();
            if let Ok(usage) = self.env.fs.disk_usage(&self.config.work_dir) {
                // Prune sooner as the disk fills: age = gc_delay * max(0, 1 - headroom - usage).
                let headroom = 0.1;
                let factor = (1.0 - headroom - usage).max(0.0);
                let max_age = self.config.gc_delay.mul_f64(factor);
                let prune_before = now + self.config.gc_delay.saturating_sub(max_age);
                for at in self.gc.values_mut() {
                    if *at <= prune_before && *at > now {
                        *at = now;
                    }
                }
            }
        }
        let mut due: Vec<PathBuf> = self
            .gc
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(p, _)| p.clone())
            .collect();
        // docs/lifecycle-rules.md rule 6.
        self.removal_order(&mut due);
        for path in due {
            self.gc.remove(&path);
            match self.store.remove_dir(&path) {
                Ok(()) => {
                    crate::coverage::point!("agent_garbage_collected");
                    info!(path = %path.strip_prefix(&self.config.work_dir).unwrap_or(&path).display(), "garbage collected")
                }
                Err(error) => {
                    // Tried again later, or it would leak (docs/lifecycle-rules.md rule 6).
                    warn!(%error, "garbage collection failed: retrying later");
                    self.gc.insert(path, now + self.config.disk_watch_interval);
                }
            }
        }
    }

    // ----------------------------------------------------------------------------------
    // Lookups.

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

/// What makes the flags' agent info incompatible with the checkpointed one under
/// `policy`, if anything (docs/recovery-rules.md R9).
fn info_mismatch(
    old: &AgentInfo,
    new: &AgentInfo,
    policy: ReconfigurationPolicy,
) -> Option<String> {
    if old.hostname != new.hostname || old.port != new.port {
        return Some(format!(
            "address changed from {}:{} to {}:{}",
            old.hostname, old.port, new.hostname, new.port
        ));
    }
    // A fold from +0.0: an empty f64 sum is -0.0, which would print as "-0".
    let total = |list: &[Resource], name: &str, role: &str| -> f64 {
        list.iter()
            .filter(|r| r.name == name && r.role == role)
            .fold(0.0, |sum, r| sum + r.scalar)
    };
    // Every resource either side names, by (name, role), in a stable order.
    let mut keys: Vec<(&str, &str)> = old
        .resources
        .iter()
        .chain(&new.resources)
        .map(|r| (r.name.as_str(), r.role.as_str()))
        .collect();
    keys.sort();
    keys.dedup();
    let mismatch = keys.into_iter().find_map(|(name, role)| {
        let was = total(&old.resources, name, role);
        let now = total(&new.resources, name, role);
        let incompatible = match policy {
            ReconfigurationPolicy::Equal => was != now,
            ReconfigurationPolicy::Additive => now < was,
        };
        let role = if role.is_empty() { "*" } else { role };
        incompatible.then(|| format!("{name}({role}) changed from {was} to {now}"))
    });
    match (mismatch, policy) {
        (Some(mismatch), _) => Some(mismatch),
        // Same totals in another order or split: still not byte-equal.
        (None, ReconfigurationPolicy::Equal) if old.resources != new.resources => {
            Some("resources listed differently".to_owned())
        }
        (None, _) => None,
    }
}

/// Resources as `name(role):scalar;...` in a stable order, for logs and traces.
pub fn describe_resources(resources: &[Resource]) -> String {
    let mut parts: Vec<String> = resources
        .iter()
        .map(|r| {
            let role = if r.role.is_empty() {
                "*"
            } else {
                r.role.as_str()
            };
            format!("{}({role}):{}", r.name, r.scalar)
        })
        .collect();
    parts.sort();
    parts.join(";")
}

fn update_task(update: &StatusUpdate) -> String {
    update
        .status
        .as_ref()
        .map(|s| s.task_id.clone())
        .unwrap_or_default()
}

fn update_state_enum(update: &StatusUpdate) -> proto::TaskState {
    update
        .status
        .as_ref()
        .map(|s| s.state())
        .unwrap_or(proto::TaskState::TaskStaging)
}

fn update_state(update: &StatusUpdate) -> &'static str {
    update_state_enum(update).as_str_name()
}

fn update_uuid(update: &StatusUpdate) -> Uuid {
    Uuid::from_bytes(&update.uuid).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(resources: &[(&str, &str, f64)]) -> AgentInfo {
        AgentInfo {
            id: "agent-1".into(),
            hostname: "agent1".into(),
            port: 5051,
            resources: resources
                .iter()
                .map(|(name, role, scalar)| Resource {
                    name: (*name).into(),
                    role: (*role).into(),
                    scalar: *scalar,
                    ..Default::default()
                })
                .collect(),
            checkpoint: true,
        }
    }

    #[test]
    fn equal_policy_names_any_change() {
        let old = info(&[("cpus", "", 2.0), ("mem", "", 1024.0)]);
        assert_eq!(
            info_mismatch(&old, &old, ReconfigurationPolicy::Equal),
            None
        );
        let grown = info(&[("cpus", "", 4.0), ("mem", "", 1024.0)]);
        assert_eq!(
            info_mismatch(&old, &grown, ReconfigurationPolicy::Equal).as_deref(),
            Some("cpus(*) changed from 2 to 4")
        );
    }

    #[test]
    fn additive_policy_allows_growth_only() {
        let old = info(&[("cpus", "", 2.0), ("mem", "", 1024.0)]);
        let grown = info(&[("cpus", "", 4.0), ("mem", "", 1024.0), ("disk", "", 10.0)]);
        assert_eq!(
            info_mismatch(&old, &grown, ReconfigurationPolicy::Additive),
            None
        );
        let shrunk = info(&[("cpus", "", 4.0)]);
        assert_eq!(
            info_mismatch(&old, &shrunk, ReconfigurationPolicy::Additive).as_deref(),
            Some("mem(*) changed from 1024 to 0")
        );
        let mut moved = old.clone();
        moved.port = 5052;
        assert_eq!(
            info_mismatch(&old, &moved, ReconfigurationPolicy::Additive).as_deref(),
            Some("address changed from agent1:5051 to agent1:5052")
        );
    }
}
