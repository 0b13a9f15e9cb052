//! What the reconciliation oracle (`crate::oracles::reconciliation`, docs/task-lifecycle.md
//! L30 to L34) judges, recorded outside the code under test:
//! - in the simulated network seam, as frames are handed to their receiver: every
//!   reconciliation request and task submission a master received from a framework host,
//!   and every reconciliation answer (a status update without uuid, reason
//!   RECONCILIATION) a framework host received from a master;
//! - from the masters' `/state` taps (`crate::master_reports`, one per master tick): each
//!   master's knowledge over time (whether it leads, its connected frameworks, its agents'
//!   phases, the tasks it lists with their states, whether tasks wait to be placed), one
//!   entry each time it changes.
//!
//! Only frames whose first body byte names a reconciliation, a submission or a status
//! update are decoded; the recording changes nothing in the run (a thread-local list, no
//! draw, no trace line).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use prost::Message as _;
use revenant::http::state::MasterState;
use revenant::proto::{envelope::Body, Envelope, TaskReason};

use crate::run_record::{now, RunRecord};

/// A reconciliation request (or a task submission) a master received from a framework.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// When the master's host was handed it (simulated time).
    pub time: Duration,
    /// The master's host (`master1`, ...).
    pub master: String,
    /// The framework id it names.
    pub framework: String,
    /// The task ids it names; empty for an implicit reconciliation.
    pub tasks: Vec<String>,
    /// A task submission (answered by a reconciliation-reason update when the master
    /// already knows the task id), not a reconciliation.
    pub submission: bool,
}

/// A reconciliation answer a framework host received from a master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// When the framework's host was handed it.
    pub time: Duration,
    /// The master's host.
    pub master: String,
    /// The framework id it is for.
    pub framework: String,
    /// Its task.
    pub task: String,
    /// Its state, by name (`TASK_RUNNING`, ...).
    pub state: String,
}

/// One master's knowledge, as its `/state` tap said it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Knowledge {
    /// Whether it leads.
    pub leading: bool,
    /// The frameworks it lists with a connected scheduler.
    pub connected_frameworks: BTreeSet<String>,
    /// Each agent it lists, by id: its phase (`connected`, `disconnected`, `removed`).
    pub agents: BTreeMap<String, String>,
    /// Each task it lists on an agent, by (framework id, task id): the states listed
    /// (one, unless two agents list the task).
    pub tasks: BTreeMap<(String, String), BTreeSet<String>>,
    /// Whether tasks wait to be placed (their ids are not in the tap).
    pub pending: bool,
}

/// What one run recorded.
#[derive(Clone, Debug, Default)]
pub struct Record {
    /// Requests, in arrival order.
    pub requests: Vec<Request>,
    /// Answers, in arrival order.
    pub answers: Vec<Answer>,
    /// Each master's knowledge, by master host: (since when, what), one entry per change.
    pub knowledge: BTreeMap<String, Vec<(Duration, Knowledge)>>,
    /// Each master's latest tap: a master silent for longer than [`DOWN_AFTER`] was
    /// down, and its knowledge is recorded as nothing (not leading) meanwhile.
    pub last_tap: BTreeMap<String, Duration>,
}

/// A master whose taps stop for this long was down (it taps every 250 ms).
pub const DOWN_AFTER: Duration = Duration::from_secs(1);

thread_local! {
    static CELL: RefCell<Record> = RefCell::new(Record::default());
}

static RECORD: RunRecord<Record> = RunRecord::new(&CELL);

/// Starts a run with nothing recorded.
pub fn begin() {
    RECORD.begin();
}

/// What was recorded since [`begin`]; forgets it.
pub fn take() -> Record {
    RECORD.take()
}

const STATUS_UPDATE_KEY: u8 = (7 << 3) | 2;
const SUBMIT_TASK_KEY: u8 = (11 << 3) | 2;
const RECONCILE_KEY: u8 = (12 << 3) | 2;

fn is_framework_host(host: &str) -> bool {
    host.starts_with(crate::hosts::FRAMEWORK_HOST) || host == crate::hosts::ROGUE_FRAMEWORK_HOST
}

/// The host of a master's listen address (`master1:5050` -> `master1`).
fn host_of(address: &str) -> &str {
    address.split(':').next().unwrap_or(address)
}

/// A whole wire frame (length prefix included) handed to host `local`, sent by `peer`.
pub fn observe(frame: &[u8], local: &str, peer: &str) {
    let Some(&key) = frame.get(4) else {
        return;
    };
    let to_master = local.starts_with("master") && is_framework_host(peer);
    let to_framework = is_framework_host(local) && peer.starts_with("master");
    let wanted = match key {
        SUBMIT_TASK_KEY | RECONCILE_KEY => to_master,
        STATUS_UPDATE_KEY => to_framework,
        _ => false,
    };
    if !wanted {
        return;
    }
    let Some(body) = Envelope::decode(&frame[4..]).ok().and_then(|e| e.body) else {
        return;
    };
    let time = now();
    match body {
        Body::Reconcile(message) => RECORD.with(|record| {
            record.requests.push(Request {
                time,
                master: local.to_owned(),
                framework: message.framework_id,
                tasks: message.task_ids,
                submission: false,
            })
        }),
        Body::SubmitTask(message) => RECORD.with(|record| {
            record.requests.push(Request {
                time,
                master: local.to_owned(),
                framework: message.framework_id,
                tasks: message.task.map(|t| t.task_id).into_iter().collect(),
                submission: true,
            })
        }),
        Body::StatusUpdate(message) => {
            let Some(update) = message.update else {
                return;
            };
            let status = update.status.clone().unwrap_or_default();
            if !update.uuid.is_empty() || status.reason() != TaskReason::ReasonReconciliation {
                return;
            }
            RECORD.with(|record| {
                record.answers.push(Answer {
                    time,
                    master: peer.to_owned(),
                    framework: update.framework_id.clone(),
                    task: status.task_id.clone(),
                    state: status.state().as_str_name().to_owned(),
                })
            });
        }
        _ => {}
    }
}

/// Master `address` reported at `now` the same `/state` as at its previous tap: when
/// that tap was no longer than [`DOWN_AFTER`] ago, what it knows is unchanged, so only
/// the tap's time is recorded and `true` returned; otherwise nothing is recorded and
/// `false` returned (the caller then records the report with [`tap`]).
/// docs/recovery-latency.md P38.
pub fn tap_unchanged(now: Duration, address: &str) -> bool {
    RECORD.with(|record| match record.last_tap.get_mut(host_of(address)) {
        Some(last) if now.saturating_sub(*last) <= DOWN_AFTER => {
            *last = now;
            true
        }
        _ => false,
    })
}

/// Master `address` reported `state` at `now` (its tap at a tick): recorded when what
/// it knows changed.
pub fn tap(now: Duration, address: &str, state: &MasterState) {
    let mut knowledge = Knowledge {
        leading: state.leading,
        pending: state.pending_tasks > 0,
        ..Knowledge::default()
    };
    for framework in &state.frameworks {
        if framework.connected {
            knowledge.connected_frameworks.insert(framework.id.clone());
        }
    }
    for agent in &state.agents {
        knowledge
            .agents
            .insert(agent.id.clone(), agent.phase.clone());
        for task in &agent.tasks {
            knowledge
                .tasks
                .entry((task.framework_id.clone(), task.id.clone()))
                .or_default()
                .insert(task.state.clone());
        }
    }
    let master = host_of(address).to_owned();
    RECORD.with(|record| {
        let silent = record
            .last_tap
            .insert(master.clone(), now)
            .filter(|last| now.saturating_sub(*last) > DOWN_AFTER);
        let list = record.knowledge.entry(master).or_default();
        if let Some(last) = silent {
            if list.last().is_some_and(|(_, k)| *k != Knowledge::default()) {
                list.push((last + Duration::from_millis(250), Knowledge::default()));
            }
        }
        if list.last().is_none_or(|(_, last)| *last != knowledge) {
            list.push((now, knowledge));
        }
    });
}

/// docs/task-lifecycle.md L34: the swarm's `reconciliations` knob. Each framework asks
/// for up to that many reconciliations at drawn times in the fault phase (from a stream
/// of its own, so nothing else the swarm draws moves): each implicit, or explicit naming
/// a task id no framework submits (`probe-<framework>-<n>`), which the master does not
/// know. The frameworks' own periodic explicit reconciliation of their open tasks
/// (`revenant::framework`) runs in every scenario.
pub fn draw(scenario: &mut crate::scenario::Scenario, swarm: &crate::scenario::Swarm, seed: u64) {
    use rand::{Rng, SeedableRng};
    if swarm.reconciliations == 0 {
        return;
    }
    let mut rng =
        rand::rngs::StdRng::seed_from_u64(crate::seed::derive_seed(seed, "swarm-reconciliations"));
    for framework in 1..=scenario.frameworks.max(1) {
        let count = rng.gen_range(0..=swarm.reconciliations);
        for n in 0..count {
            let at_s = rng.gen_range(1.0..scenario.fault_phase_s.max(2.0));
            let mut tasks = BTreeMap::new();
            if rng.gen_bool(0.5) {
                tasks.insert(format!("probe-{framework}-{n}"), "TASK_RUNNING".to_owned());
            }
            scenario.reconcile.push(crate::scenario::ReconcileSpec {
                at_s,
                framework,
                tasks,
            });
        }
    }
}
