//! What a run is made of and what the outside world saw of it, below both the cluster
//! driver (`crate::driver`, which fills it in) and the oracles (which judge it): the
//! layout of the hosts (names, ports, work directories), the run's task plan drawn from
//! the scenario and the seed, and the [`Observations`] gathered during the run. It
//! imports neither the driver nor the oracles (docs/design.md D31).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use revenant::ids::Uuid;
use revenant::proto::{CommandInfo, TaskInfo, TaskState};

// The host layout lives in `crate::hosts`; its paths here stay for callers.
pub use crate::hosts::{
    agent_of_host, agent_port, agent_trace_host, agent_work_dir, framework_host, AGENT_HOST,
    AGENT_PORT, FRAMEWORK_HOST, MASTER_PORT, WORK_DIR,
};
use crate::scenario::{FaultKind, Scenario};
use crate::seams::derive_seed;

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
    /// The update's message, as the framework reads it (docs/recovery-rules.md R17 says
    /// what it tells of an executor found gone at recovery).
    pub message: String,
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
    /// What the master told each of those frameworks' schedulers when it said so: why it
    /// was removed (docs/security.md SEC37, SEC39).
    pub removal_messages: BTreeMap<u32, String>,
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
    /// What the rogue party (`crate::rogue`) sent and what it was answered.
    pub rogue: RogueLog,
    /// What each master's `/state` said last, by the master's address: (when, the report) (`revenant::observe`, docs/task-lifecycle.md
    /// L25 to L27).
    pub master_reports: BTreeMap<String, (Duration, revenant::http::state::MasterState)>,
    /// Each change of an agent's phase in a leading master's `/state`: (when, master,
    /// agent id, phase) (docs/task-lifecycle.md L25).
    pub master_agent_phases: Vec<(Duration, String, String, String)>,
    /// Each change of an agent's phase or resources in a leading master's `/state`:
    /// (when, master, agent id, phase, resources) (docs/task-lifecycle.md L37).
    pub master_agent_resources: Vec<(Duration, String, String, String, String)>,
    /// Status updates and registrations the masters received from the agent machine
    /// (`crate::update_receipts`, docs/task-lifecycle.md L28 and L29).
    pub update_receipts: crate::update_receipts::Receipts,
    /// Reconciliation requests and answers, and the masters' knowledge over time
    /// (`crate::reconcile_watch`, docs/task-lifecycle.md L30 to L34).
    pub reconciliations: crate::reconcile_watch::Record,
    /// What each master read from and wrote to the agent machine's connections
    /// (`crate::master_wire`, docs/recovery-rules.md R55).
    pub master_wire: crate::master_wire::Record,
    /// What each master read from and wrote to the rogue agent's connections
    /// (`crate::master_wire`, docs/security.md SEC48).
    pub rogue_agent_wire: crate::master_wire::Record,
    /// What each agent's end of a local connection did next after an executor
    /// registration reached it (`crate::registration_answers`, docs/security.md SEC45).
    pub registration_answers: crate::registration_answers::Record,
    /// What each agent incarnation's `/metrics` said once its recovery had read the disk
    /// (`crate::agent_metrics`, docs/recovery-rules.md R43, R44).
    pub agent_metrics: Vec<crate::agent_metrics::Report>,
}

/// How a rogue's listening after a registration ended (docs/security.md SEC45).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listened {
    /// The connection was closed (by the agent, or by its death) within the rogue's
    /// listening time (`crate::rogue::LISTEN`).
    Closed,
    /// It was still open when the rogue stopped listening.
    Open,
}

/// What the rogue party did and heard, recorded on its side of the connection
/// (docs/security.md SEC31).
#[derive(Clone, Debug, Default)]
pub struct RogueLog {
    /// Messages it sent: (time, what, the ids it named).
    pub sent: Vec<(Duration, String)>,
    /// Messages the agent sent it: (time, message kind, on which attempt).
    pub received: Vec<(Duration, &'static str, String)>,
    /// The uuids of the status updates it forged.
    pub forged_uuids: BTreeSet<Vec<u8>>,
    /// Its registrations that reached the agent: (time connected, what, how its
    /// listening ended) (docs/security.md SEC45).
    pub registrations: Vec<(Duration, String, Listened)>,
    /// The rogue framework's id, once a master registered it (SEC35).
    pub framework_id: Option<String>,
    /// What the rogue framework sent: (time, what).
    pub framework_sent: Vec<(Duration, String)>,
    /// What the masters sent the rogue framework: (time, kind, its connection (`own` or
    /// `failover`) and what the message names: a framework id, or an update's task and
    /// state).
    pub framework_received: Vec<(Duration, &'static str, String)>,
    /// The rogue agent's registrations (`crate::rogue_agent`, SEC48): (time, on which
    /// attempt and master).
    pub agent_sent: Vec<(Duration, String)>,
    /// What the masters sent the rogue agent: (time, kind, on which attempt and master,
    /// the reason of a `ShutdownAgent`).
    pub agent_heard: Vec<(Duration, &'static str, String, String)>,
    /// Whether it tried to re-register as another framework (SEC41).
    pub failover_tried: bool,
    /// The framework whose teardown the rogue framework asked for: (its index in the
    /// scenario, its id).
    pub attacked: Option<(u32, String)>,
}

impl Observations {
    /// Whether `task` belongs to a framework that is gone for good: torn down, left for
    /// good, or removed by the master. Nobody is left to hear how such a task ends
    /// (docs/lifecycle-rules.md rule 16).
    pub fn framework_gone(&self, task: &str) -> bool {
        self.torn_down_tasks.contains(task) || self.gone_tasks.contains(task)
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

/// Seconds as a [`Duration`] (negative ones are zero).
pub(crate) fn secs(value: f64) -> Duration {
    Duration::from_secs_f64(value.max(0.0))
}

/// The task list of a run (fixed plus generated from the seed).
pub fn tasks_for(scenario: &Scenario, seed: u64) -> Vec<(TaskInfo, Duration)> {
    plan(scenario, seed, true)
}

/// The run's task plan as the oracles read it: [`tasks_for`] without a large task's
/// padding (megabytes of a word that is no `sleep` or `exit`, so its ids, executors and
/// run time are the same; docs/recovery-latency.md P40).
pub fn tasks_for_oracles(scenario: &Scenario, seed: u64) -> Vec<(TaskInfo, Duration)> {
    plan(scenario, seed, false)
}

fn plan(scenario: &Scenario, seed: u64, padded: bool) -> Vec<(TaskInfo, Duration)> {
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
            // The padding draws from a stream of its own: leaving it out moves no draw.
            let command = if padded {
                crate::faults::large_command(scenario, seed, index, command)
            } else {
                command
            };
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
    tasks_for_oracles(scenario, seed)
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
