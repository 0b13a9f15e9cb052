//! A cluster from a scenario and a seed: masters, one agent machine (its agent processes,
//! one by default, and their executors as processes in one turmoil host), and
//! frameworks, all running the real role code on simulated seams. This module holds a
//! run's entry point ([`run`]), its settings and result, the agent machine's state and
//! the fault schedule; the rooms below it (docs/design.md D31):
//!
//! | module | owns |
//! | --- | --- |
//! | [`crate::observations`] | host layout, the task plan, what the outside world saw (below the driver and the oracles) |
//! | [`crate::driver_hosts`] | the hosts: masters, the agent machine's supervisor, the frameworks' recording workload |
//! | [`crate::driver`] | the loop that steps turmoil, applies due faults and deferred actions, and gathers the end of the run |
//! | [`crate::apply_fault`] | what each fault kind does to the cluster |

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use revenant::agent::{AgentError, AgentExit};
use revenant::proto::TaskState;
use tracing_subscriber::layer::SubscriberExt;

use crate::fs::SimFs;
use crate::oracles::{self, Violation};
use crate::scenario::{AgentTarget, FaultSpec, RestartFlags, Scenario};
use crate::seams::{derive_seed, ProcessTable};
use crate::trace::{self, Recorder, TraceBuffer, TraceEvent};

// The layout, the task plan and the observations live in `crate::observations`; their
// old paths here stay for callers.
pub use crate::observations::{
    agent_of_host, agent_port, agent_trace_host, agent_work_dir, executors_of_tasks,
    framework_host, framework_of, tasks_for, AgentOutcome, Observations, Seen, AGENT_HOST,
    AGENT_PORT, FRAMEWORK_HOST, MASTER_PORT, WORK_DIR,
};

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

/// The masters' addresses: `master1:5050`, `master2:5050`, ...
pub(crate) fn master_addresses(scenario: &Scenario) -> Vec<String> {
    (1..=scenario.masters)
        .map(|i| format!("master{i}:{MASTER_PORT}"))
        .collect()
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

/// Runs a scenario with a seed.
pub fn run(scenario: &Scenario, seed: u64, options: &RunOptions) -> RunResult {
    // The swarm's workload knobs, drawn for this seed.
    let scenario = &crate::faults::with_knobs(scenario, seed);
    let buffer: TraceBuffer = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(Recorder::new(buffer.clone()));
    revenant::coverage::reset();
    let (violations, observations) = tracing::subscriber::with_default(subscriber, || {
        crate::driver::drive(scenario, seed, options)
    });
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
