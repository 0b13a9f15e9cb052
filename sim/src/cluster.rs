//! A cluster from a scenario and a seed: masters, one agent machine (its agent processes,
//! one by default, and their executors as processes in one turmoil host), and
//! frameworks, all running the real role code on simulated seams. This module holds a
//! run's entry point ([`run`]) and its result; the run's options and the agent machine's
//! state are `crate::machine`'s, the fault schedule `crate::schedule`'s (re-exported
//! here, docs/design.md D62). The rooms below it (docs/design.md D31):
//!
//! | module | owns |
//! | --- | --- |
//! | [`crate::observations`] | host layout, the task plan, what the outside world saw (below the driver and the oracles) |
//! | [`crate::driver_hosts`] | the hosts: masters, the agent machine's supervisor, the frameworks' recording workload |
//! | [`crate::driver`] | the loop that steps turmoil, applies due faults and deferred actions, and gathers the end of the run |
//! | [`crate::apply_fault`] | what each fault kind does to the cluster |

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use revenant::proto::TaskState;
use tracing_subscriber::layer::SubscriberExt;

pub use crate::machine::{master_addresses, Machine, RunOptions, MASTERS_WORK_DIR};
pub use crate::schedule::schedule_for;

use crate::oracles::{self, Violation};
use crate::scenario::Scenario;
use crate::trace::{self, Recorder, TraceBuffer, TraceEvent};

// The layout, the task plan and the observations live in `crate::observations`; their
// old paths here stay for callers.
pub use crate::observations::{
    agent_of_host, agent_port, agent_trace_host, agent_work_dir, executors_of_tasks,
    framework_host, framework_of, tasks_for, AgentOutcome, Observations, Seen, AGENT_HOST,
    AGENT_PORT, FRAMEWORK_HOST, MASTER_PORT, WORK_DIR,
};

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
