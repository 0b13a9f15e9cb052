//! A cluster from a scenario and a seed: masters, one agent machine (its agent processes,
//! one by default, and their executors as processes in one turmoil host), and
//! frameworks, all running the real role code on simulated seams. The driver applies the
//! fault schedule between turmoil steps, and the oracles check the rules during and after
//! the run.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use revenant::agent::{self, AgentConfig, AgentError, AgentExit, RecoverMode};
use revenant::ids::Uuid;
use revenant::master::{self, MasterConfig};
use revenant::os::{Env, FileSystem};
use revenant::proto::{CommandInfo, FrameworkInfo, StatusUpdate, TaskInfo, TaskState};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

use crate::fs::SimFs;
use crate::oracles::{self, Violation};
use crate::scenario::{
    parse_resources, AgentTarget, FaultKind, FaultSpec, RestartFlags, Scenario,
    AGENT_PROCESS_FAULTS,
};
use crate::seams::{
    derive_seed, ProcessDeath, ProcessFs, ProcessTable, SeededRandom, SimBootId, SimClock, SimNet,
    SimProcesses,
};
use crate::trace::{self, Recorder, TraceBuffer, TraceEvent};

/// The agent machine's host name.
pub const AGENT_HOST: &str = "agent1";
/// The framework's host name.
pub const FRAMEWORK_HOST: &str = "framework";
/// The agent's port.
pub const AGENT_PORT: u16 = 5051;
/// The masters' port.
pub const MASTER_PORT: u16 = 5050;
/// The agent's work directory on its machine.
pub const WORK_DIR: &str = "/var/lib/revenant";

/// The trace host of agent process `index` (1, 2, ...) of the agent machine: `agent1`
/// for the first, `agent1/2` for the second, ...
pub fn agent_trace_host(index: u32) -> String {
    if index <= 1 {
        AGENT_HOST.to_owned()
    } else {
        format!("{AGENT_HOST}/{index}")
    }
}

/// The agent process (1, 2, ...) a trace host names (`agent1` is 1, `agent1/2` is 2);
/// `None` for other hosts.
pub fn agent_of_host(host: &str) -> Option<u32> {
    let rest = host.strip_prefix(AGENT_HOST)?;
    if rest.is_empty() {
        return Some(1);
    }
    rest.strip_prefix('/')?.parse().ok()
}

/// The port of agent process `index`: 5051, 5052, ...
pub fn agent_port(index: u32) -> u16 {
    AGENT_PORT + index.max(1) as u16 - 1
}

/// The work directory of agent process `index`: [`WORK_DIR`] for the first,
/// `/var/lib/revenant-2` for the second, ...
pub fn agent_work_dir(index: u32) -> PathBuf {
    if index <= 1 {
        PathBuf::from(WORK_DIR)
    } else {
        PathBuf::from(format!("{WORK_DIR}-{index}"))
    }
}

/// What the framework saw.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    /// When.
    pub time: Duration,
    /// The task.
    pub task: String,
    /// Its state.
    pub state: TaskState,
    /// The reason, by name.
    pub reason: String,
    /// The update's uuid (agent updates have one; master updates do not).
    pub uuid: Option<Uuid>,
}

/// Facts the oracles read, gathered during the run.
#[derive(Debug, Default)]
pub struct Observations {
    /// The run's seed.
    pub seed: u64,
    /// Every update the framework received, in order.
    pub seen: Vec<Seen>,
    /// Tasks submitted.
    pub submitted: BTreeSet<String>,
    /// When the agent machine lost power.
    pub reboots: Vec<Duration>,
    /// How each agent incarnation ended: (time, agent (1, 2, ...), outcome).
    pub agent_exits: Vec<(Duration, u32, AgentOutcome)>,
    /// Faults applied: (time, description).
    pub faults: Vec<(Duration, String)>,
    /// The kinds of fault that actually happened.
    pub fault_kinds: BTreeSet<FaultKind>,
    /// Whether corruption was injected (strict recovery may then fail legitimately).
    pub corruption_injected: bool,
    /// Executors seen alive after their agent was away past `recovery_timeout`.
    pub overstaying_executors: Vec<(Duration, String)>,
    /// Agent incarnations started: (time, agent (1, 2, ...), boot number).
    pub agent_starts: Vec<(Duration, u32, u64)>,
    /// Frameworks (1, 2, ...) whose scheduler was made to tear them down, and when.
    pub torn_down: BTreeMap<u32, Duration>,
    /// The tasks of those frameworks.
    pub torn_down_tasks: BTreeSet<String>,
    /// Framework checkpoints an operator removed (`wipe_framework_meta`): (time, agent
    /// (1, 2, ...), the fault's description, which names each removed directory).
    pub framework_meta_wiped: Vec<(Duration, u32, String)>,
    /// Checkpoints the agent acted on that a power loss took away
    /// (`crate::durability`, docs/task-lifecycle.md L22).
    pub durability_losses: Vec<crate::durability::Loss>,
    /// Directory trees the agent removed, with the runs and tasks they held
    /// (`crate::gc_watch`, docs/lifecycle-rules.md rule 18).
    pub gc_removals: Vec<crate::gc_watch::Removal>,
    /// Frameworks (1, 2, ...) the master confirmed removed (FrameworkRemoved).
    pub removed_frameworks: BTreeSet<u32>,
    /// Frameworks (1, 2, ...) whose scheduler left for good (`framework_leave`), and when.
    pub left_frameworks: BTreeMap<u32, Duration>,
    /// Tasks of frameworks gone for good other than by a teardown: their scheduler left
    /// for good, or the master told it the framework was removed
    /// (docs/lifecycle-rules.md rule 16).
    pub gone_tasks: BTreeSet<String>,
    /// Whether an agent incarnation was running when the run ended.
    pub agent_running_at_end: bool,
    /// Executors (by id) whose processes were alive when the run ended.
    pub live_executors_at_end: BTreeSet<String>,
    /// The run's history, recorded outside the code under test (`crate::history`).
    pub history: crate::history::History,
    /// The agent machine's disk when the run ended, below agent 1's work directory:
    /// each path, what it is, and its modification time.
    pub disk_at_end: BTreeMap<PathBuf, (crate::fs::Entry, std::time::SystemTime)>,
    /// The agent machine's wall clock when the run ended.
    pub wall_at_end: Option<std::time::SystemTime>,
}

impl Observations {
    /// Whether `task` belongs to a framework that is gone for good: torn down, left for
    /// good, or removed by the master. Nobody is left to hear how such a task ends
    /// (docs/lifecycle-rules.md rule 16).
    pub fn framework_gone(&self, task: &str) -> bool {
        self.torn_down_tasks.contains(task) || self.gone_tasks.contains(task)
    }
}

/// The host of framework `index` (1, 2, ...): `framework`, `framework2`, ...
pub fn framework_host(index: u32) -> String {
    if index <= 1 {
        FRAMEWORK_HOST.to_owned()
    } else {
        format!("{FRAMEWORK_HOST}{index}")
    }
}

/// How an agent incarnation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentOutcome {
    /// Crashed by the simulator (abort or death at a filesystem operation).
    Crashed,
    /// Returned normally.
    Exited(String),
    /// Returned an error.
    Failed(String),
    /// Panicked.
    Panicked(String),
    /// Stopped on an injected disk error (it cannot keep its promises; restarted).
    DiskFailure(String),
}

impl AgentOutcome {
    /// Whether the incarnation left the cluster: it shut down at the operator's request
    /// (SIGUSR1) or the master's, forgetting its id.
    pub fn is_shutdown(&self) -> bool {
        matches!(self, AgentOutcome::Exited(text) if text.starts_with("ShutDown"))
    }
}

/// The agent machine as one agent process on it sees it: state that survives agent
/// crashes (and, for the filesystem, reboots). With several agent processes (`agents`)
/// each has a `Machine` of its own whose disk, boot counter, process table, clock and
/// masters' disk are handles on the same ones; the rest is the process's own.
pub struct Machine {
    /// Which agent process of the machine (1, 2, ...).
    pub index: u32,
    /// Its work directory.
    pub work_dir: PathBuf,
    /// The disk.
    pub fs: SimFs,
    /// Boot counter; the boot id derives from it.
    pub boot: Rc<Cell<u64>>,
    /// The process table (executors).
    pub processes: Rc<RefCell<ProcessTable>>,
    /// The running agent incarnation.
    pub agent: RefCell<Option<tokio::task::JoinHandle<Result<AgentExit, AgentError>>>>,
    /// When to start the agent next (simulated time); `None`: stay down.
    pub agent_start_at: Cell<Option<Duration>>,
    /// Since when the agent has been down, if it is.
    pub agent_down_since: Cell<Option<Duration>>,
    /// Incarnation counter.
    pub incarnation: Cell<u64>,
    /// Arms a death at a filesystem operation for the current incarnation.
    pub crash_after: Rc<Cell<Option<u64>>>,
    /// Set when the incarnation died at a filesystem or process operation.
    pub crashed: Rc<Cell<bool>>,
    /// Arms a death at a process operation (launch, signal) for the current incarnation.
    pub process_crash_after: Rc<Cell<Option<u64>>>,
    /// Wall-clock jump.
    pub wall_offset: Rc<Cell<i64>>,
    /// Set while injected disk errors may be failing the agent (cleared when it restarts).
    pub disk_faulted: Cell<bool>,
    /// The masters' shared disk (registry and leader lease), kept here so that the driver
    /// can tell which master leads.
    pub masters_disk: SimFs,
    /// The operator's SIGUSR1 to the running agent incarnation (a fresh one for each, so
    /// that a signal never outlives the process it was sent to).
    pub leave: RefCell<Rc<tokio::sync::Notify>>,
    /// Flags that crash and reboot faults changed for the incarnations after them.
    pub restart_flags: RefCell<RestartFlags>,
}

/// Where the masters keep their registry and lease on their shared disk.
pub const MASTERS_WORK_DIR: &str = "/var/lib/revenant-master";

/// Settings of one run besides the scenario.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Test-only switches that break a rule on purpose (oracle self-tests).
    pub breakage: revenant::breakage::Breakage,
    /// Crash points (`crate::crash_points`): agent 1 dies at its filesystem operation
    /// with this index, counted over the whole run from 0.
    pub crash_at_agent_op: Option<u64>,
    /// Crash points: the agent machine loses power at agent 1's filesystem operation with
    /// this index, leaving crash state `power_loss_state` of at most
    /// `power_loss_states` distinct ones.
    pub power_loss_at_agent_op: Option<u64>,
    /// Which crash state (see `power_loss_at_agent_op`).
    pub power_loss_state: usize,
    /// How many distinct crash states a power-loss point considers.
    pub power_loss_states: usize,
    /// Crash points: record every filesystem operation of agent 1.
    pub record_agent_ops: bool,
}

/// The result of a run.
#[derive(Debug)]
pub struct RunResult {
    /// The scenario's name.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// Every violated rule.
    pub violations: Vec<Violation>,
    /// The trace.
    pub trace: Vec<TraceEvent>,
    /// The trace's hash.
    pub trace_hash: u64,
    /// Facts gathered.
    pub observations: Observations,
    /// The final state of each task as the framework saw it.
    pub final_states: BTreeMap<String, (TaskState, String)>,
    /// How often the run reached each coverage point (`revenant::coverage`).
    pub coverage: BTreeMap<&'static str, u64>,
}

fn secs(value: f64) -> Duration {
    Duration::from_secs_f64(value.max(0.0))
}

fn master_addresses(scenario: &Scenario) -> Vec<String> {
    (1..=scenario.masters)
        .map(|i| format!("master{i}:{MASTER_PORT}"))
        .collect()
}

/// The task list of a run (fixed plus generated from the seed).
pub fn tasks_for(scenario: &Scenario, seed: u64) -> Vec<(TaskInfo, Duration)> {
    let mut out: Vec<(TaskInfo, Duration)> = scenario
        .tasks
        .iter()
        .map(|t| {
            (
                TaskInfo {
                    task_id: t.id.clone(),
                    name: t.id.clone(),
                    executor_id: t.executor.clone().unwrap_or_default(),
                    command: Some(CommandInfo {
                        value: t.command.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                secs(t.submit_at_s),
            )
        })
        .collect();
    if let Some(generated) = &scenario.generated_tasks {
        let mut rng = rand::rngs::StdRng::seed_from_u64(derive_seed(seed, "tasks"));
        for index in 0..generated.count {
            let run_s = rng.gen_range(generated.min_s..=generated.max_s.max(generated.min_s));
            let fails = rng.gen_bool(generated.failure_fraction.clamp(0.0, 1.0));
            let submit = rng.gen_range(0.0..=generated.submit_within_s.max(0.0));
            let command = if fails {
                format!("sleep {run_s:.1}; exit 1")
            } else {
                format!("sleep {run_s:.1}")
            };
            let command = crate::faults::large_command(scenario, seed, index, command);
            let task_id = format!("task-{index:03}");
            let executor_id = shared_executor(scenario, seed, index, &task_id);
            out.push((
                TaskInfo {
                    task_id: task_id.clone(),
                    name: task_id,
                    executor_id,
                    command: Some(CommandInfo {
                        value: command,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                secs(submit),
            ));
        }
    }
    out
}

/// The executor id a generated task names: with the swarm's `shared_executor_fraction`,
/// one of three ids of its framework (drawn from a stream of its own, so other draws stay
/// as they were); otherwise none (a command executor named after the task).
fn shared_executor(scenario: &Scenario, seed: u64, index: u32, task: &str) -> String {
    let fraction = scenario
        .swarm
        .as_ref()
        .map_or(0.0, |s| s.shared_executor_fraction);
    if fraction <= 0.0 {
        return String::new();
    }
    let mut rng =
        rand::rngs::StdRng::seed_from_u64(derive_seed(seed, &format!("shared-executor-{index}")));
    if !rng.gen_bool(fraction.clamp(0.0, 1.0)) {
        return String::new();
    }
    let framework = framework_of(scenario, task);
    format!("exec-{framework}-{}", rng.gen_range(0..3))
}

/// The executor id each task of the run runs on (a command executor is named after its
/// task), by task id.
pub fn executors_of_tasks(scenario: &Scenario, seed: u64) -> BTreeMap<String, String> {
    tasks_for(scenario, seed)
        .into_iter()
        .map(|(task, _)| {
            let executor = if task.executor_id.is_empty() {
                task.task_id.clone()
            } else {
                task.executor_id.clone()
            };
            (task.task_id, executor)
        })
        .collect()
}

/// Which framework (1, 2, ...) submits a task: a listed task's `framework`; generated
/// tasks are dealt round the frameworks (`task-NNN` to framework NNN mod N, plus 1).
pub fn framework_of(scenario: &Scenario, task: &str) -> u32 {
    if let Some(listed) = scenario.tasks.iter().find(|t| t.id == task) {
        return listed.framework;
    }
    // Generated tasks (`task-NNN`) are dealt round the frameworks.
    let frameworks = scenario.frameworks.max(1);
    task.strip_prefix("task-")
        .and_then(|index| index.parse::<u32>().ok())
        .map_or(1, |index| index % frameworks + 1)
}

/// Turns the scenario's faults (fixed, or rates) into a schedule for this seed.
pub fn schedule_for(scenario: &Scenario, seed: u64) -> Vec<FaultSpec> {
    let mut schedule = scenario.faults.clone();
    if let Some(swarm) = &scenario.swarm {
        let mut rng = rand::rngs::StdRng::seed_from_u64(derive_seed(seed, "swarm"));
        let minutes = scenario.fault_phase_s / 60.0;
        for (kind, rate) in &swarm.per_minute {
            // Kinds added later draw from streams of their own (below).
            if !crate::faults::draws_from_shared_stream(*kind) {
                continue;
            }
            if !rng.gen_bool(swarm.kind_on_probability.clamp(0.0, 1.0)) {
                continue;
            }
            // A Poisson count by thinning: at most 4x the mean, each with probability 1/4.
            let expected = rate * minutes;
            let trials = (expected * 4.0).ceil() as u32;
            for _ in 0..trials {
                if !rng.gen_bool(0.25) {
                    continue;
                }
                let at_s = rng.gen_range(1.0..scenario.fault_phase_s.max(2.0));
                let restart = rng.gen_range(
                    swarm.restart_after_s[0]
                        ..=swarm.restart_after_s[1].max(swarm.restart_after_s[0]),
                );
                let masters = scenario.masters;
                let hosts = [
                    "agent1".to_owned(),
                    "framework".to_owned(),
                    format!("master{}", rng.gen_range(1..=masters)),
                ];
                let a = rng.gen_range(0..hosts.len());
                let mut b = rng.gen_range(0..hosts.len());
                if a == b {
                    b = (b + 1) % hosts.len();
                }
                schedule.push(FaultSpec {
                    at_s,
                    kind: *kind,
                    restart_after_s: Some(restart),
                    ops: Some(rng.gen_range(1..40)),
                    duration_s: Some(rng.gen_range(1.0..30.0)),
                    a: Some(hosts[a].clone()),
                    b: Some(hosts[b].clone()),
                    max_ms: Some(rng.gen_range(10..500)),
                    jump_s: Some(rng.gen_range(-3600.0..3600.0)),
                    task: None,
                    error: None,
                    message: None,
                    from: None,
                    to: None,
                    count: None,
                    state: None,
                    agent: None,
                    framework: None,
                    path: None,
                    op: None,
                    boot: None,
                    how: None,
                    // Drawn last, and only with several agents, so that one-agent
                    // schedules stay as they were.
                    on_agent: (scenario.agents > 1)
                        .then(|| AgentTarget::One(rng.gen_range(1..=scenario.agents))),
                });
            }
        }
        let fixed = scenario.faults.len();
        crate::faults::weight_boundaries(scenario, seed, &mut schedule[fixed..]);
        crate::disk_faults::aim_drawn(scenario, seed, &mut schedule[fixed..]);
        let at_recovery = crate::disk_faults::at_recovery(scenario, seed, &schedule[fixed..]);
        schedule.extend(at_recovery);
        let mut extras = crate::faults::swarm_extras(scenario, seed);
        crate::faults::tear_headers(scenario, seed, &mut extras);
        schedule.extend(extras);
    }
    schedule.sort_by(|x, y| x.at_s.total_cmp(&y.at_s));
    schedule
}

struct Recording {
    observations: Rc<RefCell<Observations>>,
    /// Which framework this is (1, 2, ...).
    index: u32,
    tasks: Vec<(TaskInfo, Duration)>,
    kills: Vec<(String, Duration)>,
    /// Reservations to ask for, and when.
    reservations: Vec<(Vec<revenant::proto::Resource>, Duration)>,
    /// Reconciliations to ask for (task ids and believed states; none: implicit), and
    /// when; the scheduler's memory says which were asked for already.
    reconcile: Vec<(BTreeMap<String, String>, Duration)>,
    /// Set by a `framework_teardown` fault; kept across scheduler failovers.
    teardown: Rc<Cell<bool>>,
    memory: Rc<RefCell<SchedulerMemory>>,
    finished: Rc<Cell<bool>>,
}

/// What a scheduler keeps across its own failover (a real one would keep it in its own
/// durable store): its framework id, what it submitted, heard of and killed.
#[derive(Default)]
struct SchedulerMemory {
    framework_id: String,
    submitted: BTreeSet<String>,
    heard: BTreeSet<String>,
    killed: BTreeSet<String>,
    ended: BTreeSet<String>,
    /// The scenario reconciliations asked for (by position): once one was, the master's
    /// reconciliation answers are written to the trace.
    reconciled: BTreeSet<usize>,
}

impl Recording {
    /// The tasks whose submission time has come and that `wanted` selects, recorded as
    /// submitted.
    fn due(&mut self, wanted: impl Fn(&str) -> bool) -> Vec<TaskInfo> {
        let now = turmoil::sim_elapsed().unwrap_or_default();
        let due: Vec<TaskInfo> = self
            .tasks
            .iter()
            .filter(|(task, at)| *at <= now && wanted(&task.task_id))
            .map(|(task, _)| task.clone())
            .collect();
        for task in &due {
            self.memory
                .borrow_mut()
                .submitted
                .insert(task.task_id.clone());
            self.observations
                .borrow_mut()
                .submitted
                .insert(task.task_id.clone());
        }
        due
    }
}

impl revenant::framework::Workload for Recording {
    fn registered(&mut self, framework_id: &str) -> Vec<TaskInfo> {
        self.memory.borrow_mut().framework_id = framework_id.to_owned();
        // Tasks never heard of (the master that took them may have died) go again; the
        // master refuses a task id it already knows.
        let heard = self.memory.borrow().heard.clone();
        self.due(|task| !heard.contains(task))
    }

    fn submissions(&mut self) -> Vec<TaskInfo> {
        let submitted = self.memory.borrow().submitted.clone();
        self.due(|task| !submitted.contains(task))
    }

    fn update(&mut self, update: &StatusUpdate) {
        let status = update.status.clone().unwrap_or_default();
        if !self.memory.borrow().reconciled.is_empty()
            && update.uuid.is_empty()
            && status.reason() == revenant::proto::TaskReason::ReasonReconciliation
        {
            tracing::info!(
                target: "revenant_sim",
                framework = self.index,
                task = %status.task_id,
                state = status.state().as_str_name(),
                "framework heard a reconciliation answer"
            );
        }
        let mut memory = self.memory.borrow_mut();
        memory.heard.insert(status.task_id.clone());
        if revenant::agent::status_updates::is_terminal(status.state()) {
            memory.ended.insert(status.task_id.clone());
        }
        drop(memory);
        crate::history::delivered(self.index, update);
        self.observations.borrow_mut().seen.push(Seen {
            time: turmoil::sim_elapsed().unwrap_or_default(),
            task: status.task_id.clone(),
            state: status.state(),
            reason: status.reason().as_str_name().to_owned(),
            uuid: Uuid::from_bytes(&update.uuid),
        });
    }

    fn done(&self) -> bool {
        self.finished.get()
    }

    fn known_open_tasks(&self) -> Vec<String> {
        let memory = self.memory.borrow();
        memory
            .submitted
            .iter()
            .filter(|task| !memory.ended.contains(*task))
            .cloned()
            .collect()
    }

    fn teardown(&self) -> bool {
        self.teardown.get()
    }

    fn removed(&mut self, _message: &str) {
        crate::history::framework_removed(self.index);
        let mut observations = self.observations.borrow_mut();
        observations.removed_frameworks.insert(self.index);
        for (task, _) in &self.tasks {
            observations.gone_tasks.insert(task.task_id.clone());
        }
    }

    fn reconciliations(&mut self) -> Vec<Vec<String>> {
        let now = turmoil::sim_elapsed().unwrap_or_default();
        let mut memory = self.memory.borrow_mut();
        let due: Vec<BTreeMap<String, String>> = self
            .reconcile
            .iter()
            .enumerate()
            .filter(|(position, (_, at))| *at <= now && memory.reconciled.insert(*position))
            .map(|(_, (tasks, _))| tasks.clone())
            .collect();
        due.into_iter()
            .map(|tasks| {
                let believed: Vec<String> = tasks
                    .iter()
                    .map(|(task, state)| format!("{task}={state}"))
                    .collect();
                tracing::info!(
                    target: "revenant_sim",
                    framework = self.index,
                    kind = if tasks.is_empty() { "implicit" } else { "explicit" },
                    believed = %believed.join(","),
                    "framework asks the master to reconcile"
                );
                tasks.into_keys().collect()
            })
            .collect()
    }

    fn reservations(&mut self) -> Vec<(String, Vec<revenant::proto::Resource>)> {
        let now = turmoil::sim_elapsed().unwrap_or_default();
        let due: Vec<(String, Vec<revenant::proto::Resource>)> = self
            .reservations
            .iter()
            .filter(|(_, at)| *at <= now)
            .map(|(resources, _)| (String::new(), resources.clone()))
            .collect();
        self.reservations.retain(|(_, at)| *at > now);
        due
    }

    fn kills(&mut self) -> Vec<String> {
        let now = turmoil::sim_elapsed().unwrap_or_default();
        let due: Vec<String> = self
            .kills
            .iter()
            .filter(|(task, at)| *at <= now && !self.memory.borrow().killed.contains(task))
            .map(|(t, _)| t.clone())
            .collect();
        self.kills.retain(|(_, at)| *at > now);
        self.memory.borrow_mut().killed.extend(due.iter().cloned());
        due
    }
}

fn agent_config(scenario: &Scenario, index: u32) -> AgentConfig {
    let mut config = AgentConfig::new(
        master_addresses(scenario),
        format!("{AGENT_HOST}:{}", agent_port(index)),
        agent_work_dir(index),
    );
    let flags = &scenario.agent;
    config.recover = if flags.recover == "cleanup" {
        RecoverMode::Cleanup
    } else {
        RecoverMode::Reconnect
    };
    config.strict = flags.strict;
    config.recovery_timeout = secs(flags.recovery_timeout_s);
    config.executor_reregistration_timeout = secs(flags.executor_reregistration_timeout_s);
    config.executor_registration_timeout = secs(flags.executor_registration_timeout_s);
    config.gc_delay = secs(flags.gc_delay_s);
    config.registration_backoff_factor = secs(flags.registration_backoff_factor_s);
    config.master_ping_timeout = secs(flags.master_ping_timeout_s);
    config.executor_reregistration_retry_interval =
        flags.executor_reregistration_retry_interval_s.map(secs);
    if flags.reconfiguration_policy.as_deref() == Some("additive") {
        config.reconfiguration_policy = agent::ReconfigurationPolicy::Additive;
    }
    config.executor_command = vec!["revenant".into(), "executor".into()];
    match &flags.resources {
        Some(text) => config.resources = parse_resources(text).expect("validated"),
        // A reservation, so that resources.info is checkpointed and recovered.
        None => config.resources.push(revenant::proto::Resource {
            name: "cpus".into(),
            scalar: 1.0,
            role: "web".into(),
            // A static reservation, as `--resources cpus(web):1` gives (docs/design.md D14).
            reservation: String::new(),
        }),
    }
    config
}

fn machine_env(
    machine: &Rc<Machine>,
    seed: u64,
    label: &str,
    fs: Rc<dyn FileSystem>,
    death: ProcessDeath,
) -> Env {
    let table = machine.processes.clone();
    let env_machine = machine.clone();
    let incarnation_seed = derive_seed(seed, label);
    Env {
        clock: Rc::new(SimClock {
            wall_offset: machine.wall_offset.clone(),
        }),
        fs,
        net: Rc::new(SimNet::for_process(
            AGENT_HOST,
            &agent_trace_host(machine.index),
        )),
        processes: Rc::new(SimProcesses {
            table,
            env_for: Rc::new(move |pid| {
                let label = format!("executor-{pid}-boot-{}", env_machine.boot.get());
                Env {
                    clock: Rc::new(SimClock {
                        wall_offset: env_machine.wall_offset.clone(),
                    }),
                    fs: Rc::new(env_machine.fs.clone()),
                    net: Rc::new(SimNet::on(AGENT_HOST)),
                    processes: Rc::new(SimProcesses {
                        table: env_machine.processes.clone(),
                        env_for: Rc::new(|_| unreachable!("executors launch no processes")),
                        owner: env_machine.index,
                        death: None,
                    }),
                    boot: Rc::new(SimBootId(env_machine.boot.clone(), AGENT_HOST.into())),
                    random: Rc::new(SeededRandom::new(derive_seed(incarnation_seed, &label))),
                }
            }),
            owner: machine.index,
            death: Some(death),
        }),
        boot: Rc::new(SimBootId(machine.boot.clone(), AGENT_HOST.into())),
        random: Rc::new(SeededRandom::new(incarnation_seed)),
    }
}

/// The environment of a host that launches no processes (a master, the framework): its
/// own disk, turmoil's network and clock, a boot id per incarnation, seeded randomness.
fn host_env(host: &str, incarnation: u64, random: Rc<SeededRandom>) -> Env {
    Env {
        clock: Rc::new(SimClock {
            wall_offset: Rc::new(Cell::new(0)),
        }),
        fs: Rc::new(SimFs::new()),
        net: Rc::new(SimNet::on(host)),
        processes: Rc::new(SimProcesses {
            table: Rc::new(RefCell::new(ProcessTable::default())),
            env_for: Rc::new(|_| unreachable!("only the agent machine launches processes")),
            owner: 0,
            death: None,
        }),
        boot: Rc::new(SimBootId(Rc::new(Cell::new(incarnation)), host.to_owned())),
        random,
    }
}

/// The agent machine's software: a supervisor that starts agent incarnations when told,
/// records how each ended, and keeps executors running beside them (one supervisor per
/// agent process, in the agent's host span).
async fn machine_main(
    machine: Rc<Machine>,
    config: AgentConfig,
    restart_recover: Option<String>,
    seed: u64,
    observations: Rc<RefCell<Observations>>,
) -> turmoil::Result {
    loop {
        let now = turmoil::sim_elapsed().unwrap_or_default();
        let finished = machine
            .agent
            .borrow()
            .as_ref()
            .is_some_and(|h| h.is_finished());
        if finished {
            let handle = machine.agent.borrow_mut().take().expect("checked");
            let outcome = match handle.await {
                Ok(Ok(exit)) => AgentOutcome::Exited(format!("{exit:?}")),
                // Death at a filesystem operation unwinds (or aborts) the task.
                Ok(Err(_)) | Err(_) if machine.crashed.get() => AgentOutcome::Crashed,
                Ok(Err(error)) if machine.disk_faulted.get() => {
                    AgentOutcome::DiskFailure(error.to_string())
                }
                Ok(Err(error)) => AgentOutcome::Failed(error.to_string()),
                Err(error) if error.is_panic() => AgentOutcome::Panicked(format!("{error}")),
                Err(_) => AgentOutcome::Crashed,
            };
            tracing::info!(target: "revenant_sim", outcome = ?outcome, "agent process ended");
            // Like systemd with Restart=always: a crashed agent, or one the master told to
            // shut down (it forgot its id and comes back as a new agent), is restarted.
            // An agent that exited on its own for good (cleanup) or failed recovery stays
            // down, so that the failure is seen.
            let restart = match &outcome {
                AgentOutcome::Crashed | AgentOutcome::DiskFailure(_) => true,
                AgentOutcome::Exited(_) => outcome.is_shutdown(),
                _ => false,
            };
            if restart {
                machine
                    .agent_start_at
                    .set(Some(now + Duration::from_secs(1)));
            }
            observations
                .borrow_mut()
                .agent_exits
                .push((now, machine.index, outcome));
            machine.agent_down_since.set(Some(now));
        }
        let start = machine.agent.borrow().is_none()
            && machine.agent_start_at.get().is_some_and(|at| now >= at);
        if start {
            machine.agent_start_at.set(None);
            machine.crashed.set(false);
            machine.process_crash_after.set(None);
            if machine.disk_faulted.replace(false) {
                // The disk was replaced (or freed): the new incarnation starts clean,
                // but for an error kept for this start (docs/simulator-reach.md 12k).
                machine.fs.clear_faults();
                machine.disk_faulted.set(machine.fs.has_faults());
            }
            machine.incarnation.set(machine.incarnation.get() + 1);
            let label = if machine.index == 1 {
                format!("agent-{}", machine.incarnation.get())
            } else {
                format!("agent{}-{}", machine.index, machine.incarnation.get())
            };
            let mut config = config.clone();
            let leave = Rc::new(tokio::sync::Notify::new());
            *machine.leave.borrow_mut() = leave.clone();
            config.unregister = Some(leave);
            if machine.incarnation.get() > 1 {
                if let Some(recover) = &restart_recover {
                    config.recover = if recover == "cleanup" {
                        RecoverMode::Cleanup
                    } else {
                        RecoverMode::Reconnect
                    };
                }
            }
            apply_restart_flags(&mut config, &machine.restart_flags.borrow());
            let task = Rc::new(RefCell::new(None));
            let fs: Rc<dyn FileSystem> = Rc::new(ProcessFs::new(
                machine.fs.clone(),
                machine.crash_after.clone(),
                machine.crashed.clone(),
                task.clone(),
            ));
            let fs = if machine.index == 1 {
                crate::crash_points::wrap(
                    fs,
                    machine.fs.clone(),
                    machine.crash_after.clone(),
                    machine.incarnation.get(),
                )
            } else {
                fs
            };
            let death = ProcessDeath {
                crash_after: machine.process_crash_after.clone(),
                crashed: machine.crashed.clone(),
                task: task.clone(),
            };
            let env = machine_env(&machine, seed, &label, fs, death);
            tracing::info!(target: "revenant_sim", incarnation = machine.incarnation.get(), boot = machine.boot.get(), "agent process starting");
            observations
                .borrow_mut()
                .agent_starts
                .push((now, machine.index, machine.boot.get()));
            crate::history::agent_started(
                machine.index,
                machine.incarnation.get(),
                crate::history::resources_on_disk(&machine.fs, &machine.work_dir),
            );
            let span = crate::trace::host_span(&agent_trace_host(machine.index));
            // docs/zookeeper.md Z17: with ZooKeeper, the agent follows the group's leader.
            let agent_host = AGENT_HOST;
            let handle = tokio::task::spawn_local(
                crate::zk::following(agent_host, move |leader| {
                    let mut config = config;
                    config.leader = leader;
                    agent::run(env, config)
                })
                .instrument(span),
            );
            *task.borrow_mut() = Some(handle.abort_handle());
            *machine.agent.borrow_mut() = Some(handle);
            machine.agent_down_since.set(None);
        }
        // Restarts are scheduled to 100 ms; the driver's faults act between steps anyway.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs a scenario with a seed.
pub fn run(scenario: &Scenario, seed: u64, options: &RunOptions) -> RunResult {
    // The swarm's workload knobs, drawn for this seed.
    let scenario = &crate::faults::with_knobs(scenario, seed);
    let buffer: TraceBuffer = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(Recorder::new(buffer.clone()));
    revenant::coverage::reset();
    let (violations, observations) =
        tracing::subscriber::with_default(subscriber, || drive(scenario, seed, options));
    let coverage = revenant::coverage::take();
    let trace = std::mem::take(&mut *buffer.lock().expect("trace buffer"));
    let mut violations = violations;
    let observations = Rc::try_unwrap(observations)
        .map(RefCell::into_inner)
        .unwrap_or_default();
    violations.extend(oracles::check_after(scenario, &trace, &observations));
    violations.sort_by(|a, b| a.time.cmp(&b.time).then(a.oracle.cmp(b.oracle)));
    let mut final_states = BTreeMap::new();
    for seen in &observations.seen {
        final_states.insert(seen.task.clone(), (seen.state, seen.reason.clone()));
    }
    RunResult {
        scenario: scenario.name.clone(),
        seed,
        trace_hash: trace::hash(&trace),
        trace,
        violations,
        observations,
        final_states,
        coverage,
    }
}

fn drive(
    scenario: &Scenario,
    seed: u64,
    options: &RunOptions,
) -> (Vec<Violation>, Rc<RefCell<Observations>>) {
    let tick = Duration::from_millis(scenario.tick_ms.max(1));
    let duration = secs(scenario.duration_s);
    let latency = scenario.latency_ms.unwrap_or(if scenario.swarm.is_some() {
        [1, 20]
    } else {
        [5, 5]
    });
    let mut sim = turmoil::Builder::new()
        .tick_duration(tick)
        .simulation_duration(duration + Duration::from_secs(3600))
        .epoch(std::time::UNIX_EPOCH + Duration::from_secs(crate::seams::EPOCH_SECONDS))
        .rng_seed(seed)
        .min_message_latency(Duration::from_millis(latency[0]))
        .max_message_latency(Duration::from_millis(latency[1].max(latency[0])))
        .build();
    let observations = Rc::new(RefCell::new(Observations {
        seed,
        ..Observations::default()
    }));
    crate::drops::clear();
    crate::history::begin();
    crate::durability::begin();
    crate::gc_watch::begin();
    crate::seams::hang_executors(
        seed,
        scenario
            .swarm
            .as_ref()
            .map_or(0.0, |s| s.hanging_executor_fraction),
    );
    crate::seams::break_executors(options.breakage);
    crate::crash_points::install(options);

    // With [zookeeper], a ZooKeeper host that the masters elect their leader through
    // (docs/zookeeper.md Z11).
    crate::zk::clear();
    let zk_timeout = scenario.zookeeper.as_ref().map(|zk| {
        let world = crate::zk::begin();
        sim.host(crate::zk::ZK_HOST, move || {
            crate::zk::server_host(world.clone())
        });
        secs(zk.session_timeout_s)
    });
    // Masters, sharing one disk for their registry and leader lease.
    let masters_disk = SimFs::new();
    for index in 1..=scenario.masters {
        let name = format!("master{index}");
        let config = MasterConfig {
            listen: format!("{name}:{MASTER_PORT}"),
            agent_ping_timeout: secs(scenario.master.agent_ping_timeout_s),
            max_agent_ping_timeouts: scenario.master.max_agent_ping_timeouts,
            agent_reregister_timeout: secs(scenario.master.agent_reregister_timeout_s),
            work_dir: Some(MASTERS_WORK_DIR.into()),
            breakage: options.breakage,
            acls: Default::default(),
        };
        let lease = secs(scenario.master.leader_lease_s);
        let incarnation = Rc::new(Cell::new(0u64));
        let host_name = name.clone();
        let disk = masters_disk.clone();
        sim.host(name.as_str(), move || {
            let config = config.clone();
            incarnation.set(incarnation.get() + 1);
            let mut env = host_env(
                &host_name,
                incarnation.get(),
                Rc::new(SeededRandom::new(derive_seed(
                    seed,
                    &format!("{host_name}-{}", incarnation.get()),
                ))),
            );
            env.fs = Rc::new(disk.clone());
            let detector = master::LeaseContender::new(
                env.fs.clone(),
                env.clock.clone(),
                std::path::Path::new(MASTERS_WORK_DIR),
                config.listen.clone(),
                incarnation.get(),
                lease,
            );
            let span = crate::trace::host_span(&host_name);
            let host = host_name.clone();
            async move {
                match zk_timeout {
                    Some(timeout) => crate::zk::master_process(env, config, timeout, host).await?,
                    None => master::run(env, config, Box::new(detector)).await?,
                }
                Ok(())
            }
            .instrument(span)
        });
    }

    // The agent machine.
    let machine = Rc::new(Machine {
        index: 1,
        work_dir: agent_work_dir(1),
        fs: SimFs::new(),
        boot: Rc::new(Cell::new(1)),
        processes: Rc::new(RefCell::new(ProcessTable::default())),
        agent: RefCell::new(None),
        agent_start_at: Cell::new(Some(Duration::ZERO)),
        agent_down_since: Cell::new(None),
        incarnation: Cell::new(0),
        crash_after: Rc::new(Cell::new(None)),
        crashed: Rc::new(Cell::new(false)),
        process_crash_after: Rc::new(Cell::new(None)),
        wall_offset: Rc::new(Cell::new(0)),
        disk_faulted: Cell::new(false),
        masters_disk: masters_disk.clone(),
        leave: RefCell::new(Rc::new(tokio::sync::Notify::new())),
        restart_flags: RefCell::new(RestartFlags::default()),
    });
    machine.fs.set_fault_seed(derive_seed(seed, "fs-faults"));
    // Modification times follow the machine's wall clock, jumps included (the agent
    // ages directories by them: docs/lifecycle-rules.md rule 5).
    let fs_clock = SimClock {
        wall_offset: machine.wall_offset.clone(),
    };
    machine
        .fs
        .set_clock(Rc::new(move || revenant::os::Clock::wall(&fs_clock)));
    // Further agent processes share the machine's disk, boot, processes and clock.
    let mut machines = vec![machine.clone()];
    for index in 2..=scenario.agents {
        machines.push(Rc::new(Machine {
            index,
            work_dir: agent_work_dir(index),
            fs: machine.fs.clone(),
            boot: machine.boot.clone(),
            processes: machine.processes.clone(),
            agent: RefCell::new(None),
            agent_start_at: Cell::new(Some(Duration::ZERO)),
            agent_down_since: Cell::new(None),
            incarnation: Cell::new(0),
            crash_after: Rc::new(Cell::new(None)),
            crashed: Rc::new(Cell::new(false)),
            process_crash_after: Rc::new(Cell::new(None)),
            wall_offset: machine.wall_offset.clone(),
            disk_faulted: Cell::new(false),
            masters_disk: masters_disk.clone(),
            leave: RefCell::new(Rc::new(tokio::sync::Notify::new())),
            restart_flags: RefCell::new(RestartFlags::default()),
        }));
    }
    {
        let agents: Vec<(Rc<Machine>, AgentConfig)> = machines
            .iter()
            .map(|machine| {
                let mut config = agent_config(scenario, machine.index);
                config.breakage = options.breakage;
                (machine.clone(), config)
            })
            .collect();
        let observations = observations.clone();
        let restart_recover = scenario.agent.restart_recover.clone();
        sim.host(AGENT_HOST, move || {
            // Agents 2, ... have supervisors of their own beside agent 1's; all of them
            // die with the machine.
            let others = agents[1..].to_vec();
            let observations = observations.clone();
            let restart_recover = restart_recover.clone();
            let (machine, config) = agents[0].clone();
            async move {
                for (machine, config) in others {
                    let span = crate::trace::host_span(&agent_trace_host(machine.index));
                    let main = machine_main(
                        machine,
                        config,
                        restart_recover.clone(),
                        seed,
                        observations.clone(),
                    );
                    tokio::task::spawn_local(main.instrument(span));
                }
                machine_main(machine, config, restart_recover, seed, observations).await
            }
            .instrument(crate::trace::host_span(AGENT_HOST))
        });
    }

    // The framework.
    let tasks = tasks_for(scenario, seed);
    let kills: Vec<(String, Duration)> = scenario
        .tasks
        .iter()
        .filter_map(|t| t.kill_at_s.map(|k| (t.id.clone(), secs(k))))
        .collect();
    let framework_done = Rc::new(Cell::new(false));
    let teardowns: Vec<Rc<Cell<bool>>> = (0..scenario.frameworks.max(1))
        .map(|_| Rc::new(Cell::new(false)))
        .collect();
    for index in 1..=scenario.frameworks.max(1) {
        // Framework 1 keeps the host name, name and seed of a one-framework cluster.
        let (host, label, name) = if index == 1 {
            (
                FRAMEWORK_HOST.to_owned(),
                "framework".to_owned(),
                "sim-framework".to_owned(),
            )
        } else {
            (
                format!("{FRAMEWORK_HOST}{index}"),
                format!("framework-{index}"),
                format!("sim-framework-{index}"),
            )
        };
        let mine = |task: &str| framework_of(scenario, task) == index;
        let observations = observations.clone();
        let masters = master_addresses(scenario);
        let checkpoint = scenario.checkpoint;
        let framework_done = framework_done.clone();
        let tasks: Vec<(TaskInfo, Duration)> = tasks
            .iter()
            .filter(|(task, _)| mine(&task.task_id))
            .cloned()
            .collect();
        let kills: Vec<(String, Duration)> = kills
            .iter()
            .filter(|(task, _)| mine(task))
            .cloned()
            .collect();
        let reservations: Vec<(Vec<revenant::proto::Resource>, Duration)> = scenario
            .reservations
            .iter()
            .filter(|r| r.framework == index)
            .map(|r| {
                (
                    parse_resources(&r.resources).expect("validated"),
                    secs(r.at_s),
                )
            })
            .collect();
        let reconcile: Vec<(BTreeMap<String, String>, Duration)> = scenario
            .reconcile
            .iter()
            .filter(|r| r.framework == index)
            .map(|r| (r.tasks.clone(), secs(r.at_s)))
            .collect();
        let failover_timeout_seconds = scenario.framework_failover_timeout_s;
        let teardown = teardowns[(index - 1) as usize].clone();
        let span_host = host.clone();
        let memory = Rc::new(RefCell::new(SchedulerMemory::default()));
        sim.host(host.as_str(), move || {
            let env = host_env(
                &span_host,
                1,
                Rc::new(SeededRandom::new(derive_seed(seed, &label))),
            );
            let mut workload = Recording {
                observations: observations.clone(),
                index,
                tasks: tasks.clone(),
                kills: kills.clone(),
                reservations: reservations.clone(),
                reconcile: reconcile.clone(),
                teardown: teardown.clone(),
                memory: memory.clone(),
                finished: framework_done.clone(),
            };
            // A restarted scheduler fails over: it registers with its framework id.
            let framework_id = memory.borrow().framework_id.clone();
            let masters = masters.clone();
            let span = crate::trace::host_span(&span_host);
            let name = name.clone();
            let host_name = span_host.clone();
            async move {
                let info = FrameworkInfo {
                    id: framework_id,
                    name,
                    user: "sim".into(),
                    checkpoint,
                    failover_timeout_seconds,
                    ..Default::default()
                };
                // docs/zookeeper.md Z17: with ZooKeeper, it follows the group's leader.
                crate::zk::following(&host_name, |leader| {
                    revenant::framework::run_following(env, masters, leader, info, &mut workload)
                })
                .await;
                Ok(())
            }
            .instrument(span)
        });
    }

    // The driver.
    let left: RefCell<BTreeMap<u32, Duration>> = RefCell::new(BTreeMap::new());
    // A branch of `sweep --explore` redraws the faults after its moment (explore.rs).
    let schedule = crate::explore::schedule(scenario, seed);
    let mut next_fault = 0usize;
    let mut fault_rng = rand::rngs::StdRng::seed_from_u64(derive_seed(seed, "fault-choices"));
    let mut pending: Vec<(Duration, Pending)> = Vec::new();
    let mut violations = Vec::new();
    let mut down_since_reboot: Option<Duration> = None;
    let recovery_timeout = secs(scenario.agent.recovery_timeout_s);
    loop {
        let now = sim.elapsed();
        if now >= duration {
            break;
        }
        crate::trace::DRIVER_TIME.with(|t| t.set(now));
        while next_fault < schedule.len() && secs(schedule[next_fault].at_s) <= now {
            let fault = schedule[next_fault].clone();
            next_fault += 1;
            // Agent process faults hit the agents they name; the rest hit the machine.
            let targets: Vec<&Rc<Machine>> = if AGENT_PROCESS_FAULTS.contains(&fault.kind) {
                AgentTarget::agents(fault.on_agent.as_ref(), scenario.agents)
                    .into_iter()
                    .filter_map(|index| machines.get(index as usize - 1))
                    .collect()
            } else {
                vec![&machine]
            };
            for target in targets {
                let torn_before: Vec<bool> = teardowns.iter().map(|t| t.get()).collect();
                let Some(mut description) = apply_fault(
                    &mut sim,
                    target,
                    &machines,
                    &fault,
                    now,
                    &mut fault_rng,
                    &mut pending,
                    scenario,
                    &teardowns,
                    &left,
                ) else {
                    continue;
                };
                for (index, at) in left.borrow().iter() {
                    let mut observations = observations.borrow_mut();
                    if observations.left_frameworks.insert(*index, *at).is_none() {
                        for (task, _) in &tasks {
                            if framework_of(scenario, &task.task_id) == *index {
                                observations.gone_tasks.insert(task.task_id.clone());
                            }
                        }
                    }
                }
                for (offset, flag) in teardowns.iter().enumerate() {
                    if flag.get() && !torn_before[offset] {
                        let index = offset as u32 + 1;
                        let mut observations = observations.borrow_mut();
                        observations.torn_down.insert(index, now);
                        for (task, _) in &tasks {
                            if framework_of(scenario, &task.task_id) == index {
                                observations.torn_down_tasks.insert(task.task_id.clone());
                            }
                        }
                    }
                }
                if scenario.agents > 1 && AGENT_PROCESS_FAULTS.contains(&fault.kind) {
                    description.push_str(&format!(" on {}", agent_trace_host(target.index)));
                }
                tracing::info!(target: "revenant_sim", fault = %description, "fault injected");
                if fault.kind == FaultKind::Reboot {
                    observations.borrow_mut().reboots.push(now);
                    down_since_reboot = Some(now);
                }
                if fault.kind == FaultKind::WipeFrameworkMeta {
                    let wiped = (now, target.index, description.clone());
                    observations.borrow_mut().framework_meta_wiped.push(wiped);
                }
                if fault.kind == FaultKind::Corrupt && description.starts_with("corrupt") {
                    observations.borrow_mut().corruption_injected = true;
                }
                observations.borrow_mut().faults.push((now, description));
                observations.borrow_mut().fault_kinds.insert(fault.kind);
            }
        }
        pending.sort_by_key(|(at, _)| *at);
        while pending.first().is_some_and(|(at, _)| *at <= now) {
            let (_, action) = pending.remove(0);
            match action {
                Pending::Boot => {
                    tracing::info!(target: "revenant_sim", "agent machine boots");
                    for machine in &machines {
                        machine.agent_start_at.set(Some(now));
                    }
                    sim.bounce(AGENT_HOST);
                    down_since_reboot = None;
                }
                Pending::StartAgent(index) => {
                    let machine = &machines[index as usize - 1];
                    if machine.agent.borrow().is_none() && down_since_reboot.is_none() {
                        machine.agent_start_at.set(Some(now));
                    }
                }
                Pending::BounceFramework(name) => {
                    let gone = left
                        .borrow()
                        .keys()
                        .any(|index| framework_host(*index) == name);
                    if !gone {
                        tracing::info!(target: "revenant_sim", framework = %name, "scheduler fails over");
                        sim.bounce(name.as_str());
                    }
                }
                Pending::BounceMaster(name) => {
                    tracing::info!(target: "revenant_sim", master = %name, "master restarts");
                    sim.bounce(name.as_str());
                }
                Pending::Repair(a, b) => {
                    tracing::info!(target: "revenant_sim", a = %a, b = %b, "partition healed");
                    sim.repair(a.as_str(), b.as_str());
                }
                Pending::Zk(what) => crate::zk_faults::later(&mut sim, what),
                Pending::Latency => {
                    sim.set_max_message_latency(Duration::from_millis(latency[1].max(latency[0])))
                }
            }
        }
        // Oracle checked during the run: executors give up after recovery_timeout (each
        // agent's own executors, when its agent has been down that long).
        for machine in &machines {
            let Some(since) = machine.agent_down_since.get() else {
                continue;
            };
            let grace = Duration::from_secs(5);
            if now > since + recovery_timeout + grace && down_since_reboot.is_none() {
                let live: Vec<String> = machine
                    .processes
                    .borrow()
                    .processes
                    .values()
                    .filter(|p| p.owner == machine.index)
                    // A hung process never connects, so it cannot notice that its
                    // agent is gone (docs/lifecycle-rules.md rule 21).
                    .filter(|p| !p.hung)
                    .filter(|p| !p.exited.get() && !p.handle.is_finished())
                    .map(|p| p.executor_id.clone())
                    .collect();
                if !live.is_empty() && scenario.checkpoint {
                    let mut observations = observations.borrow_mut();
                    if observations.overstaying_executors.is_empty() {
                        observations
                            .overstaying_executors
                            .push((now, live.join(",")));
                    }
                }
            }
        }
        if let Err(error) = sim.step() {
            violations.push(Violation {
                time: now,
                oracle: "no_panic",
                message: format!("a host failed: {error}"),
            });
            break;
        }
        // Agents that an `agent_crash_at_message` rule killed during the step.
        for (index, restart_ms, kind) in crate::drops::take_crash_requests() {
            let Some(target) = machines.get(index as usize - 1) else {
                continue;
            };
            let mut crash = FaultSpec::new(now.as_secs_f64(), FaultKind::AgentCrash);
            crash.restart_after_s = Some(restart_ms as f64 / 1000.0);
            let Some(description) = apply_fault(
                &mut sim,
                target,
                &machines,
                &crash,
                now,
                &mut fault_rng,
                &mut pending,
                scenario,
                &teardowns,
                &left,
            ) else {
                continue;
            };
            let description = format!("{description} at a {kind} message");
            tracing::info!(target: "revenant_sim", fault = %description, "fault injected");
            observations.borrow_mut().faults.push((now, description));
        }
        // A crash point's power loss: the disk was cut at the operation; the machine
        // goes down as for a reboot fault and boots again.
        if let Some(description) = crate::crash_points::take_power_loss() {
            let now = sim.elapsed();
            sim.crash(AGENT_HOST);
            for machine in &machines {
                machine.agent.borrow_mut().take();
                machine.agent_start_at.set(None);
                machine.agent_down_since.set(Some(now));
                machine.crash_after.set(None);
            }
            *machine.processes.borrow_mut() = ProcessTable::default();
            // Every process of the machine ended with the power, as for a reboot fault.
            crate::history::machine_down();
            machine.boot.set(machine.boot.get() + 1);
            let boot = crate::crash_points::POWER_LOSS_BOOT_AFTER;
            pending.push((now + boot, Pending::Boot));
            tracing::info!(target: "revenant_sim", fault = %description, "fault injected");
            let mut observations = observations.borrow_mut();
            observations.reboots.push(now);
            observations.faults.push((now, description));
            observations.fault_kinds.insert(FaultKind::Reboot);
            down_since_reboot = Some(now);
        }
    }
    framework_done.set(true);
    let _ = &tasks;
    {
        let mut observations = observations.borrow_mut();
        observations.agent_running_at_end = machine
            .agent
            .borrow()
            .as_ref()
            .is_some_and(|handle| !handle.is_finished())
            // One that died at a filesystem operation is not running, finished or not.
            && !machine.crashed.get();
        observations.live_executors_at_end = machine
            .processes
            .borrow()
            .processes
            .values()
            .filter(|p| !p.exited.get() && !p.handle.is_finished())
            .map(|p| p.executor_id.clone())
            .collect();
        let work_dir = agent_work_dir(1);
        observations.disk_at_end = machine
            .fs
            .tree()
            .into_iter()
            .filter(|(path, _)| path.starts_with(&work_dir))
            .filter_map(|(path, entry)| {
                let modified = machine.fs.mtime(&path)?;
                Some((path, (entry, modified)))
            })
            .collect();
        // The run ends at duration_s of simulated time (the sim's clock is gone by now).
        let offset = machine.wall_offset.get();
        let base = std::time::SystemTime::UNIX_EPOCH
            + Duration::from_secs(crate::seams::EPOCH_SECONDS)
            + Duration::from_secs_f64(scenario.duration_s);
        observations.wall_at_end = Some(if offset >= 0 {
            base + Duration::from_millis(offset as u64)
        } else {
            base - Duration::from_millis(offset.unsigned_abs())
        });
    }
    // A process the table knows finished (crashed by a fault, say) without the history
    // hearing of it ended by the end of the run at the latest.
    let finished: BTreeSet<u32> = machine
        .processes
        .borrow()
        .processes
        .values()
        .filter(|p| p.exited.get() || p.handle.is_finished())
        .map(|p| p.id.pid)
        .collect();
    for pid in finished {
        crate::history::process_ended(pid, crate::history::ProcessEnd::Exited);
    }
    for machine in &machines {
        crate::history::final_resources(
            machine.index,
            crate::history::resources_on_disk(&machine.fs, &machine.work_dir),
        );
    }
    drop(sim);
    observations.borrow_mut().history = crate::history::take_all();
    observations.borrow_mut().durability_losses = crate::durability::take_losses();
    observations.borrow_mut().gc_removals = crate::gc_watch::take();
    violations.extend(crate::zk::finish());
    (violations, observations)
}

/// Keeps the agent flags a crash or reboot carries for the incarnations after it; says
/// which (empty when none).
fn remember_restart_flags(machine: &Machine, fault: &FaultSpec) -> String {
    let Some(flags) = &fault.agent else {
        return String::new();
    };
    let mut kept = machine.restart_flags.borrow_mut();
    let mut said = Vec::new();
    if let Some(resources) = &flags.resources {
        kept.resources = Some(resources.clone());
        said.push(format!("--resources {resources}"));
    }
    if let Some(recover) = &flags.recover {
        kept.recover = Some(recover.clone());
        said.push(format!("--recover {recover}"));
    }
    format!("; restarts with {}", said.join(" "))
}

/// Applies the flags crash and reboot faults changed.
fn apply_restart_flags(config: &mut AgentConfig, flags: &RestartFlags) {
    if let Some(resources) = &flags.resources {
        config.resources = parse_resources(resources).expect("validated");
    }
    if let Some(recover) = &flags.recover {
        config.recover = if recover == "cleanup" {
            RecoverMode::Cleanup
        } else {
            RecoverMode::Reconnect
        };
    }
}

/// Arms a message fault's rule (`drop`, `duplicate`, `forge`); its description names
/// what will happen to which messages.
fn arm_drop(fault: &FaultSpec, action: crate::drops::Action) -> Option<String> {
    let kind = crate::drops::normalise_kind(fault.message.as_deref()?)?;
    let count = fault.count.unwrap_or(1);
    crate::drops::arm(crate::drops::DropRule {
        action,
        kind,
        from: fault.from.clone(),
        to: fault.to.clone(),
        task: fault.task.clone(),
        state: fault.state.clone(),
        remaining: count,
    });
    let verb = match action {
        crate::drops::Action::Drop => "drop",
        crate::drops::Action::Duplicate => "duplicate",
        crate::drops::Action::Forge => "forge a uuid ahead of",
        crate::drops::Action::CrashAgent { .. } => "crash the agent at",
        crate::drops::Action::Delay { .. } => "hold back",
    };
    let mut description = format!("{verb} the next {count} {kind} message(s)");
    for (label, value) in [
        ("from", &fault.from),
        ("to", &fault.to),
        ("task", &fault.task),
        ("state", &fault.state),
    ] {
        if let Some(value) = value {
            description.push_str(&format!(" {label} {value}"));
        }
    }
    Some(description)
}

enum Pending {
    Boot,
    /// Start agent process k (1, 2, ...) again.
    StartAgent(u32),
    BounceMaster(String),
    BounceFramework(String),
    Repair(String, String),
    Latency,
    Zk(crate::zk_faults::Later),
}

/// Removes every `meta/slaves/<id>/frameworks/<fid>` directory of the agent with work
/// directory `work_dir`, durably; returns what it removed (paths below `meta/`).
fn wipe_framework_meta(fs: &SimFs, work_dir: &std::path::Path) -> Vec<String> {
    let slaves = work_dir.join("meta/slaves");
    let mut wiped = Vec::new();
    for agent in fs.list_dir(&slaves).unwrap_or_default() {
        if agent == "latest" {
            continue;
        }
        let frameworks = slaves.join(&agent).join("frameworks");
        for framework in fs.list_dir(&frameworks).unwrap_or_default() {
            if fs.remove_dir_all(&frameworks.join(&framework)).is_ok() {
                wiped.push(format!("slaves/{agent}/frameworks/{framework}"));
            }
        }
        let _ = fs.sync_dir(&frameworks);
    }
    wiped
}

/// The master host holding the leader lease (`master1` when none holds it yet).
fn leading_master(machine: &Machine, scenario: &Scenario) -> String {
    if let Some(world) = crate::zk::current() {
        return world.leader_host().unwrap_or_else(|| "master1".to_owned());
    }
    let path = std::path::Path::new(MASTERS_WORK_DIR).join(revenant::detector::LEASE_FILE);
    revenant::detector::read_lease(&machine.masters_disk, &path)
        .ok()
        .flatten()
        .and_then(|lease| {
            let host = lease.holder.split(':').next()?.to_owned();
            let index: u32 = host.trim_start_matches("master").parse().ok()?;
            (index >= 1 && index <= scenario.masters).then_some(host)
        })
        .unwrap_or_else(|| "master1".to_owned())
}

/// Applies one fault. `machine` is the agent process an agent process fault hits (agent
/// 1 for machine faults); `machines` are all the agent processes of the machine.
#[allow(clippy::too_many_arguments)] // the driver's state, passed apart to keep borrows short
fn apply_fault(
    sim: &mut turmoil::Sim<'_>,
    machine: &Rc<Machine>,
    machines: &[Rc<Machine>],
    fault: &FaultSpec,
    now: Duration,
    rng: &mut rand::rngs::StdRng,
    pending: &mut Vec<(Duration, Pending)>,
    scenario: &Scenario,
    teardowns: &[Rc<Cell<bool>>],
    left: &RefCell<BTreeMap<u32, Duration>>,
) -> Option<String> {
    let restart = fault.restart_after_s.map(secs);
    // A reboot's flags are for every agent process of the machine.
    let new_flags = remember_restart_flags(machine, fault);
    if fault.kind == FaultKind::Reboot {
        for other in machines.iter().filter(|m| m.index != machine.index) {
            remember_restart_flags(other, fault);
        }
    }
    if crate::zk_faults::is_zk_fault(fault.kind) {
        let (description, later) = crate::zk_faults::apply(sim, fault, now)?;
        if let Some((at, what)) = later {
            pending.push((at, Pending::Zk(what)));
        }
        return Some(description);
    }
    match fault.kind {
        FaultKind::AgentCrash => {
            let handle = machine.agent.borrow_mut().take()?;
            handle.abort();
            machine.agent_down_since.set(Some(now));
            if let Some(restart) = restart {
                pending.push((now + restart, Pending::StartAgent(machine.index)));
            }
            Some(format!(
                "agent crash (restart after {:.1}s){new_flags}",
                restart.unwrap_or_default().as_secs_f64()
            ))
        }
        FaultKind::AgentUnregister => {
            machine.agent.borrow().as_ref()?;
            machine.leave.borrow().notify_one();
            Some("agent asked to leave the cluster (SIGUSR1)".to_owned())
        }
        FaultKind::WipeFrameworkMeta => {
            if machine.agent.borrow().is_some() {
                return None;
            }
            let wiped = wipe_framework_meta(&machine.fs, &machine.work_dir);
            (!wiped.is_empty())
                .then(|| format!("framework checkpoints removed: {}", wiped.join(", ")))
        }
        FaultKind::FrameworkCrash => {
            let count = scenario.frameworks.max(1);
            let index = match fault.framework {
                Some(index) => index,
                None => rng.gen_range(1..=count),
            };
            let name = framework_host(index);
            if !sim.is_host_running(name.as_str()) {
                return None;
            }
            sim.crash(name.as_str());
            let restart = restart.unwrap_or(Duration::from_secs(5));
            pending.push((now + restart, Pending::BounceFramework(name.clone())));
            Some(format!(
                "{name} crashed (fails over after {:.1}s)",
                restart.as_secs_f64()
            ))
        }
        FaultKind::AgentCrashAtWrite => {
            machine.agent.borrow().as_ref()?;
            let ops = fault.ops.unwrap_or(1);
            machine.crash_after.set(Some(ops));
            Some(format!(
                "agent dies at its filesystem operation {ops} from now"
            ))
        }
        FaultKind::Reboot => {
            let all_down = machines.iter().all(|machine| {
                machine.agent_down_since.get().is_some()
                    && machine.agent.borrow().is_none()
                    && machine.agent_start_at.get().is_none()
            });
            if all_down && !sim.is_host_running(AGENT_HOST) {
                return None;
            }
            sim.crash(AGENT_HOST);
            for machine in machines {
                machine.agent.borrow_mut().take();
                machine.agent_start_at.set(None);
                machine.agent_down_since.set(Some(now));
                machine.crash_after.set(None);
            }
            *machine.processes.borrow_mut() = ProcessTable::default();
            crate::history::machine_down();
            let before = machine.fs.tree();
            let loss = machine.fs.power_loss(rng);
            crate::durability::power_loss(&before, &machine.fs);
            machine.boot.set(machine.boot.get() + 1);
            let restart = restart.unwrap_or(Duration::from_secs(10));
            pending.push((now + restart, Pending::Boot));
            Some(format!(
                "reboot ({loss:?}; boots after {:.1}s){new_flags}",
                restart.as_secs_f64()
            ))
        }
        FaultKind::ExecutorCrash => {
            let table = machine.processes.borrow();
            let live: Vec<&crate::seams::SimProcess> = table
                .processes
                .values()
                .filter(|p| !p.exited.get() && !p.handle.is_finished())
                .filter(|p| fault.task.as_ref().is_none_or(|t| *t == p.executor_id))
                .collect();
            if live.is_empty() {
                return None;
            }
            let victim = live[rng.gen_range(0..live.len())];
            victim.handle.abort();
            victim.exited.set(true);
            crate::history::process_ended(victim.id.pid, crate::history::ProcessEnd::Killed);
            Some(format!(
                "executor {} (pid {}) crashed",
                victim.executor_id, victim.id.pid
            ))
        }
        FaultKind::MasterCrash => {
            let name = leading_master(machine, scenario);
            if !sim.is_host_running(name.as_str()) {
                return None;
            }
            sim.crash(name.as_str());
            if let Some(restart) = restart {
                pending.push((now + restart, Pending::BounceMaster(name.clone())));
            }
            Some(format!("{name} crashed"))
        }
        FaultKind::Partition => {
            let (a, b) = (fault.a.clone()?, fault.b.clone()?);
            if a == b
                || a.starts_with("master")
                    && (a.trim_start_matches("master").parse::<u32>().ok()? > scenario.masters)
            {
                return None;
            }
            sim.partition(a.as_str(), b.as_str());
            let duration = secs(fault.duration_s.unwrap_or(10.0));
            pending.push((now + duration, Pending::Repair(a.clone(), b.clone())));
            Some(format!(
                "partition {a} <-> {b} for {:.1}s",
                duration.as_secs_f64()
            ))
        }
        FaultKind::Delay => {
            let max = Duration::from_millis(fault.max_ms.unwrap_or(200));
            sim.set_max_message_latency(max);
            pending.push((
                now + secs(fault.duration_s.unwrap_or(10.0)),
                Pending::Latency,
            ));
            Some(format!("message delay up to {}ms", max.as_millis()))
        }
        FaultKind::Corrupt => {
            let files: Vec<PathBuf> = machine
                .fs
                .tree()
                .into_keys()
                .filter(|p| p.file_name().is_some_and(|n| n == "task.updates"))
                .collect();
            if files.is_empty() {
                return None;
            }
            let path = files[rng.gen_range(0..files.len())].clone();
            let mut data = machine.fs.read(&path).ok()?;
            if data.len() <= 8 {
                return None;
            }
            let offset = rng.gen_range(8..data.len());
            data[offset] ^= 1 << rng.gen_range(0..8);
            machine.fs.write(&path, &data).ok()?;
            machine.fs.sync_file(&path).ok()?;
            Some(format!("corrupt byte {offset} of {}", path.display()))
        }
        FaultKind::DiskError => {
            let count = fault.ops.unwrap_or(3).max(1);
            let error = fault
                .error
                .clone()
                .unwrap_or_else(|| ["eio", "enospc", "fsync"][rng.gen_range(0..3)].to_owned());
            // Aimed at a path or an operation kind, if the fault says so
            // (docs/simulator-reach.md rule 11).
            let (rule, description) =
                crate::disk_faults::rule(fault, &error, count, &agent_work_dir(1));
            machine.fs.inject(rule);
            for machine in machines {
                machine.disk_faulted.set(true);
            }
            Some(description)
        }
        FaultKind::Drop => arm_drop(fault, crate::drops::Action::Drop),
        FaultKind::Duplicate => arm_drop(fault, crate::drops::Action::Duplicate),
        FaultKind::Forge => arm_drop(fault, crate::drops::Action::Forge),
        // Applied above.
        FaultKind::ZkPartition
        | FaultKind::ZkDown
        | FaultKind::ZkExpire
        | FaultKind::ZkLoseReply => None,
        FaultKind::FrameworkLeave => {
            let count = scenario.frameworks.max(1);
            let index = match fault.framework {
                Some(index) => index,
                None if count == 1 => 1,
                None => rng.gen_range(1..=count),
            };
            if left.borrow().contains_key(&index) {
                return None;
            }
            left.borrow_mut().insert(index, now);
            let name = framework_host(index);
            // Down already (a crash that would fail it over later): it never comes back.
            if sim.is_host_running(name.as_str()) {
                sim.crash(name.as_str());
            }
            Some(format!(
                "{name} leaves for good (failover timeout {:.1}s)",
                scenario.framework_failover_timeout_s
            ))
        }
        FaultKind::FrameworkTeardown => {
            let count = scenario.frameworks.max(1);
            let index = match fault.framework {
                Some(index) => index,
                None if count == 1 => 1,
                None => rng.gen_range(1..=count),
            };
            let flag = teardowns.get(index.checked_sub(1)? as usize)?;
            if flag.get() {
                return None;
            }
            flag.set(true);
            Some(format!("framework {index} tears itself down"))
        }
        FaultKind::TornAppend => {
            for machine in machines {
                machine.disk_faulted.set(true);
            }
            Some(crate::faults::arm_torn_append(
                &machine.fs,
                std::path::Path::new("/var/lib"),
                fault.error.as_deref(),
                fault.ops,
            ))
        }
        FaultKind::DeleteRunDir => {
            if machine.agent.borrow().is_some() {
                return None;
            }
            crate::faults::delete_run_dir(&machine.fs, &machine.work_dir, rng)
        }
        FaultKind::BreakWake => {
            if machine.agent.borrow().is_some() {
                return None;
            }
            crate::wake_faults::break_wake(
                &machine.fs,
                &machine.work_dir,
                fault.how.as_deref().unwrap_or("missing"),
                fault.task.as_deref(),
                rng,
            )
        }
        FaultKind::RewriteForkedPid => {
            if machine.agent.borrow().is_some() {
                return None;
            }
            let live: Vec<(u32, u64)> = machine
                .processes
                .borrow()
                .processes
                .values()
                .filter(|p| !p.exited.get() && !p.handle.is_finished())
                .map(|p| (p.id.pid, p.id.start_time))
                .collect();
            let other_boot = fault.boot.as_deref() == Some("other");
            crate::faults::rewrite_forked_pid(
                &machine.fs,
                &machine.work_dir,
                &live,
                other_boot,
                fault.task.as_deref(),
                rng,
            )
        }
        FaultKind::AgentCrashAtMessage => {
            let restart_ms = (fault.restart_after_s.unwrap_or(1.0).max(0.0) * 1000.0) as u64;
            let description = arm_drop(
                fault,
                crate::drops::Action::CrashAgent {
                    agent: machine.index,
                    restart_ms,
                },
            )?;
            Some(description)
        }
        FaultKind::DelayMessage => {
            let ms = (fault.duration_s.unwrap_or(5.0).max(0.0) * 1000.0) as u64;
            let description = arm_drop(fault, crate::drops::Action::Delay { ms })?;
            Some(format!("{description} by {ms}ms"))
        }
        FaultKind::AgentCrashAtProcess => {
            machine.agent.borrow().as_ref()?;
            let ops = fault.ops.unwrap_or(1).max(1);
            machine.process_crash_after.set(Some(ops - 1));
            Some(format!(
                "agent dies at its process operation {ops} from now (launch, signal)"
            ))
        }
        FaultKind::ClockJump => {
            let jump_ms = (fault.jump_s.unwrap_or(60.0) * 1000.0) as i64;
            machine.wall_offset.set(machine.wall_offset.get() + jump_ms);
            Some(format!("wall clock jumps {jump_ms}ms"))
        }
    }
}
