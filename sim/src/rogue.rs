//! The rogue party (docs/security.md SEC31-SEC34, docs/simulator-reach.md 14s): a local
//! process on the agent machine that knows the framework, executor, run and task ids (they
//! are path names under the agent's work directory, which it can list) but not any
//! executor's secret, and tries to pass for an executor: it registers, forges status
//! updates for live tasks, and re-registers while a restarted agent waits for its
//! executors. It talks to the real agent over the simulated network exactly as an
//! executor would, and records on its own side what it sent and what it was answered
//! ([`RogueLog`]); the `rogue` oracle judges that record against what the frameworks and
//! the disk saw.
//!
//! Its presence and its plan are drawn from streams of their own (`rogue`,
//! `rogue-choices-<boot>`), so runs without it keep every other draw and trace.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use revenant::os::Network;
use revenant::proto::envelope::Body;
use revenant::proto::{
    RegisterExecutor, ReregisterExecutor, StatusUpdate, StatusUpdateMessage, TaskInfo, TaskState,
    TaskStatus,
};

use crate::machine::Machine;
pub use crate::observations::Listened;
use crate::observations::{agent_port, Observations, AGENT_HOST};
use crate::scenario::Scenario;
use crate::seams::{derive_seed, SimNet};

/// The trace host of the rogue process (a process of the agent machine).
pub const ROGUE_HOST: &str = "agent1/rogue";

/// What the rogue tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// `RegisterExecutor` with the ids of a live executor and a wrong or no secret, then
    /// a forged update on the same connection.
    Register,
    /// A forged terminal `StatusUpdate` for a live task, on a connection that never
    /// registered.
    Forge,
    /// After the next agent start, while it waits for its executors: `ReregisterExecutor`
    /// with a live executor's ids, a wrong secret, its task and a forged update.
    ReregisterAfterRestart,
}

/// One planned attempt: when (simulated time from the run's start), and what.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Planned {
    /// When.
    pub at: Duration,
    /// What.
    pub attempt: Attempt,
}

/// The rogue's plan for a run: empty unless the swarm's `rogue_fraction` draws it, then
/// one to four attempts in the fault phase (docs/simulator-reach.md 14s). Only agent 1's
/// executors are impersonated.
pub fn plan(scenario: &Scenario, seed: u64) -> Vec<Planned> {
    let fraction = scenario.swarm.as_ref().map_or(0.0, |s| s.rogue_fraction);
    if fraction <= 0.0 {
        return Vec::new();
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(derive_seed(seed, "rogue"));
    if !rng.gen_bool(fraction.clamp(0.0, 1.0)) {
        return Vec::new();
    }
    let phase = scenario.fault_phase_s.max(10.0);
    let count = rng.gen_range(1..=4);
    let mut out: Vec<Planned> = (0..count)
        .map(|_| Planned {
            at: Duration::from_secs_f64(rng.gen_range(5.0..phase)),
            attempt: match rng.gen_range(0..3) {
                0 => Attempt::Register,
                1 => Attempt::Forge,
                _ => Attempt::ReregisterAfterRestart,
            },
        })
        .collect();
    out.sort_by_key(|p| p.at);
    out
}

/// A live executor as the work directory shows it: the ids a rogue can learn.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) agent: String,
    pub(crate) framework: String,
    pub(crate) executor: String,
    pub(crate) run: String,
    pub(crate) tasks: Vec<String>,
}

/// The executors agent 1's work directory lists (`meta/slaves/A/frameworks/F/executors/
/// E/runs/R/tasks/T`), read without touching the disk's fault injection or counters.
pub(crate) fn targets(machine: &Machine) -> Vec<Target> {
    let meta = machine.work_dir.join("meta");
    let mut found: std::collections::BTreeMap<(String, String, String, String), Vec<String>> =
        std::collections::BTreeMap::new();
    for path in machine.fs.paths_under(&meta) {
        let Ok(rest) = path.strip_prefix(&meta) else {
            continue;
        };
        let parts: Vec<String> = rest
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let shape = ["slaves", "", "frameworks", "", "executors", "", "runs", ""];
        if parts.len() < shape.len()
            || shape
                .iter()
                .zip(&parts)
                .any(|(want, got)| !want.is_empty() && want != got)
            || [1, 3, 5, 7].iter().any(|i| parts[*i] == "latest")
        {
            continue;
        }
        let key = (
            parts[1].clone(),
            parts[3].clone(),
            parts[5].clone(),
            parts[7].clone(),
        );
        let tasks = found.entry(key).or_default();
        if parts.len() >= 10 && parts[8] == "tasks" && !tasks.contains(&parts[9]) {
            tasks.push(parts[9].clone());
        }
    }
    found
        .into_iter()
        .filter(|(_, tasks)| !tasks.is_empty())
        .map(|((agent, framework, executor, run), tasks)| Target {
            agent,
            framework,
            executor,
            run,
            tasks,
        })
        .collect()
}

/// The rogue process: runs on the agent machine (restarted with it after a power loss,
/// skipping attempts whose time has passed) and makes its planned attempts.
pub async fn party(
    plan: Vec<Planned>,
    machine: Rc<Machine>,
    seed: u64,
    observations: Rc<RefCell<Observations>>,
) {
    let boot = machine.boot.get();
    let mut rng =
        rand::rngs::StdRng::seed_from_u64(derive_seed(seed, &format!("rogue-choices-{boot}")));
    for planned in plan {
        let now = turmoil::sim_elapsed().unwrap_or_default();
        if planned.at + Duration::from_secs(1) < now {
            continue;
        }
        tokio::time::sleep(planned.at.saturating_sub(now)).await;
        if planned.attempt == Attempt::ReregisterAfterRestart {
            // Wait for the next agent start (at most five minutes), then strike while it
            // recovers.
            let incarnation = machine.incarnation.get();
            let mut waited = Duration::ZERO;
            while machine.incarnation.get() == incarnation && waited < Duration::from_secs(300) {
                tokio::time::sleep(Duration::from_millis(250)).await;
                waited += Duration::from_millis(250);
            }
            if machine.incarnation.get() == incarnation {
                continue;
            }
            let delay = rng.gen_range(50..1500);
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let targets = targets(&machine);
        if targets.is_empty() {
            continue;
        }
        let target = targets[rng.gen_range(0..targets.len())].clone();
        let task = target.tasks[rng.gen_range(0..target.tasks.len())].clone();
        let secret = if rng.gen_bool(0.5) {
            String::new()
        } else {
            (0..64)
                .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
                .collect()
        };
        let uuid: Vec<u8> = (0..16).map(|_| rng.gen()).collect();
        let state = [
            TaskState::TaskFailed,
            TaskState::TaskFinished,
            TaskState::TaskKilled,
        ][rng.gen_range(0..3)];
        let update = forged_update(&target, &task, state, &uuid);
        let messages = match planned.attempt {
            Attempt::Register => vec![
                Body::RegisterExecutor(RegisterExecutor {
                    framework_id: target.framework.clone(),
                    executor_id: target.executor.clone(),
                    container_id: target.run.clone(),
                    secret,
                    endpoint: String::new(),
                }),
                Body::StatusUpdate(StatusUpdateMessage {
                    update: Some(update),
                }),
            ],
            Attempt::Forge => vec![Body::StatusUpdate(StatusUpdateMessage {
                update: Some(update),
            })],
            Attempt::ReregisterAfterRestart => vec![Body::ReregisterExecutor(ReregisterExecutor {
                framework_id: target.framework.clone(),
                executor_id: target.executor.clone(),
                container_id: target.run.clone(),
                updates: vec![update],
                tasks: vec![TaskInfo {
                    task_id: task.clone(),
                    name: task.clone(),
                    executor_id: target.executor.clone(),
                    ..Default::default()
                }],
                secret,
                endpoint: String::new(),
            })],
        };
        let what = format!(
            "{:?} as executor {} of framework {} (run {}, task {task}, {})",
            planned.attempt,
            target.executor,
            target.framework,
            target.run,
            state.as_str_name()
        );
        tracing::info!(target: "revenant_sim", attempt = %what, "rogue process tries to pass for an executor");
        {
            let mut observations = observations.borrow_mut();
            let now = turmoil::sim_elapsed().unwrap_or_default();
            observations.rogue.sent.push((now, what.clone()));
            observations.rogue.forged_uuids.insert(uuid);
        }
        let registers = planned.attempt != Attempt::Forge;
        attempt(messages, &what, registers, &observations).await;
    }
}

/// A forged update: a terminal state for `task` under a uuid the rogue made.
fn forged_update(target: &Target, task: &str, state: TaskState, uuid: &[u8]) -> StatusUpdate {
    StatusUpdate {
        framework_id: target.framework.clone(),
        executor_id: target.executor.clone(),
        agent_id: target.agent.clone(),
        status: Some(TaskStatus {
            task_id: task.to_owned(),
            state: state as i32,
            agent_id: target.agent.clone(),
            executor_id: target.executor.clone(),
            uuid: uuid.to_vec(),
            message: "forged".into(),
            ..Default::default()
        }),
        uuid: uuid.to_vec(),
        ..Default::default()
    }
}

/// How long the rogue listens after an attempt (docs/security.md SEC45).
pub const LISTEN: Duration = Duration::from_secs(3);

/// Connects to agent 1 as a local process would, sends `messages` and listens for
/// [`LISTEN`], recording every message it is answered in the rogue log, and, for an
/// attempt that `registers`, how the listening ended (SEC45).
async fn attempt(
    messages: Vec<Body>,
    what: &str,
    registers: bool,
    observations: &Rc<RefCell<Observations>>,
) {
    let net = SimNet::on(AGENT_HOST);
    let address = format!("{AGENT_HOST}:{}", agent_port(1));
    let Ok(Ok(mut stream)) =
        tokio::time::timeout(Duration::from_secs(2), net.connect(&address)).await
    else {
        return;
    };
    let connected = turmoil::sim_elapsed().unwrap_or_default();
    for body in messages {
        if revenant::wire::write_envelope(&mut stream, body)
            .await
            .is_err()
        {
            break;
        }
    }
    let until = tokio::time::Instant::now() + LISTEN;
    let ended = loop {
        match tokio::time::timeout_at(until, revenant::wire::read_envelope(&mut stream)).await {
            Ok(Ok(body)) => {
                let now = turmoil::sim_elapsed().unwrap_or_default();
                let kind = revenant::wire::kind(&body);
                tracing::info!(target: "revenant_sim", kind, "rogue process heard from the agent");
                observations
                    .borrow_mut()
                    .rogue
                    .received
                    .push((now, kind, what.to_owned()));
            }
            Ok(Err(_)) => break Listened::Closed,
            Err(_) => break Listened::Open,
        }
    };
    if registers {
        observations
            .borrow_mut()
            .rogue
            .registrations
            .push((connected, what.to_owned(), ended));
    }
}

/// Whether `path` is a `task.updates` file below `work_dir` (where a forged update would
/// be checkpointed).
pub fn is_updates_file(path: &Path, work_dir: &Path) -> bool {
    path.starts_with(work_dir) && path.file_name().is_some_and(|n| n == "task.updates")
}

/// The paths of `disk` whose bytes contain `needle`.
pub fn files_containing<'a>(
    disk: impl IntoIterator<Item = (&'a PathBuf, &'a crate::fs::Entry)>,
    needle: &[u8],
) -> Vec<PathBuf> {
    disk.into_iter()
        .filter_map(|(path, entry)| match entry {
            crate::fs::Entry::File(bytes)
                if !needle.is_empty() && bytes.windows(needle.len()).any(|w| w == needle) =>
            {
                Some(path.clone())
            }
            _ => None,
        })
        .collect()
}
