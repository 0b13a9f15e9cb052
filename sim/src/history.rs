//! The run's history, recorded outside the code under test: every update each framework
//! received (from the framework's side of the wire), every executor process the
//! machine's process table started and ended (with the machine boot and the launching
//! agent incarnation), every agent start with what its disk held, and every master
//! report a framework heard. The oracles judge this against the task-lifecycle model
//! (`docs/task-lifecycle.md`), not the agent's own log.
//!
//! The simulation of one run happens on one thread; the recorder is a thread-local that
//! [`begin`] installs at the start of a run and [`take`] removes at its end. Recording
//! outside a run (a unit test of a seam) does nothing.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use revenant::ids::Uuid;
use revenant::proto::{StatusUpdate, TaskState};

/// Who an update came from, as the framework sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// The agent's status update stream (the update has a uuid).
    Agent,
    /// A master's own report (no uuid).
    Master,
}

/// One update a framework received.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// When (simulated time).
    pub time: Duration,
    /// The framework (1, 2, ...).
    pub framework: u32,
    /// The task.
    pub task: String,
    /// Its state.
    pub state: TaskState,
    /// The reason, by name.
    pub reason: String,
    /// The uuid (agent updates only).
    pub uuid: Option<Uuid>,
    /// Agent stream or master report.
    pub source: Source,
    /// The agent id the update names (empty when none).
    pub agent_id: String,
    /// The executor id the update names (empty when none).
    pub executor_id: String,
    /// Who made the status, as it says (`SOURCE_EXECUTOR`, `SOURCE_AGENT`,
    /// `SOURCE_MASTER`).
    pub made_by: String,
}

impl Delivery {
    /// The delivery a framework's update makes.
    pub fn from_update(time: Duration, framework: u32, update: &StatusUpdate) -> Delivery {
        let status = update.status.clone().unwrap_or_default();
        let uuid = Uuid::from_bytes(&update.uuid);
        let agent_id = if update.agent_id.is_empty() {
            status.agent_id.clone()
        } else {
            update.agent_id.clone()
        };
        let executor_id = if update.executor_id.is_empty() {
            status.executor_id.clone()
        } else {
            update.executor_id.clone()
        };
        Delivery {
            time,
            framework,
            task: status.task_id.clone(),
            state: status.state(),
            reason: status.reason().as_str_name().to_owned(),
            source: if uuid.is_some() {
                Source::Agent
            } else {
                Source::Master
            },
            uuid,
            agent_id,
            executor_id,
            made_by: status.source().as_str_name().to_owned(),
        }
    }
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessEnd {
    /// Its code returned.
    Exited,
    /// Its code returned because its agent stayed away past `recovery_timeout` (its exit
    /// status says so; docs/lifecycle-rules.md rule 16).
    GaveUp,
    /// It was signalled (killed).
    Killed,
    /// The machine lost power.
    MachineDown,
}

/// One executor process the process table started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessRecord {
    /// When it started.
    pub started: Duration,
    /// Its pid (pids restart with the machine).
    pub pid: u32,
    /// The executor it runs.
    pub executor_id: String,
    /// The run (container id) it was launched for.
    pub container: String,
    /// The agent process (1, 2, ...) that launched it.
    pub owner: u32,
    /// That agent process's incarnation (1, 2, ...) when it launched it.
    pub incarnation: u64,
    /// The machine boot it ran in.
    pub boot: u64,
    /// Whether it hangs before registering (swarm knob `hanging_executor_fraction`,
    /// docs/lifecycle-rules.md rule 19): it never connects to its agent, so it can
    /// neither register nor notice that its agent is gone (rule 21).
    pub hung: bool,
    /// When and how it ended; `None`: alive when the run ended.
    pub ended: Option<(Duration, ProcessEnd)>,
}

/// One start of an agent process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentStart {
    /// When.
    pub time: Duration,
    /// The agent process (1, 2, ...).
    pub agent: u32,
    /// Its incarnation number.
    pub incarnation: u64,
    /// The machine boot.
    pub boot: u64,
    /// The reserved resources `resources.info` held on the disk when it started
    /// (`describe_resources` form), `None` when there was no readable file.
    pub resources_on_disk: Option<String>,
    /// The resources of its flags (`--resources`, `describe_resources` form): what it
    /// tells the master it has (docs/task-lifecycle.md L37). `None` until
    /// [`agent_flag_resources`] says.
    pub flag_resources: Option<String>,
}

/// The agent signalled a live executor process (through its process seam), or wrote a
/// `ShutdownExecutor` to it (on its connection, `crate::shutdown_asks`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentAct {
    /// When (simulated time).
    pub time: Duration,
    /// The agent process (1, 2, ...).
    pub agent: u32,
    /// Its incarnation then.
    pub incarnation: u64,
    /// The executor process.
    pub pid: u32,
    /// The machine boot.
    pub boot: u64,
    /// For a shutdown ask that answered an executor's registration (the first frame the
    /// agent's end wrote after one reached it): when that registration reached the
    /// agent's end, the earliest the agent can have decided the ask. `None` for a kill
    /// and for an ask that answered nothing.
    pub answering: Option<Duration>,
}

/// An act of an agent incarnation that its timers pace, seen outside the agent: on the
/// wire (`crate::shutdown_asks`) or at its filesystem seam (`crate::seams::ProcessFs`)
/// (docs/recovery-rules.md R56, docs/design.md D88).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paced {
    /// When (simulated time).
    pub time: Duration,
    /// The agent process (1, 2, ...).
    pub agent: u32,
    /// Its incarnation.
    pub incarnation: u64,
    /// What.
    pub act: Pace,
}

/// What a [`Paced`] act was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// The incarnation's timers, as the simulator started it (recorded at its start):
    /// `--executor_reregistration_retry_interval` and `--disk_watch_interval`.
    Timers {
        /// The re-registration retry interval, if set.
        reregistration_retry: Option<Duration>,
        /// The disk watch interval.
        disk_watch: Duration,
    },
    /// Its boot id put in place (`meta/boot_id` renamed into place): recovery complete.
    RecoveryComplete,
    /// A `ReconnectExecutor` its end of a local connection wrote; `connection` is unique
    /// in the run.
    ReconnectAsk {
        /// The connection.
        connection: u64,
    },
    /// A query of the disk's usage.
    DiskCheck,
}

/// Everything recorded in one run.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Updates received by frameworks, in order.
    pub deliveries: Vec<Delivery>,
    /// Executor processes, in start order.
    pub processes: Vec<ProcessRecord>,
    /// Agent starts, in order.
    pub agent_starts: Vec<AgentStart>,
    /// Frameworks the master told they were removed: (time, framework).
    pub frameworks_removed: Vec<(Duration, u32)>,
    /// Panics anywhere in the run (any task of any host): (time, message).
    pub panics: Vec<(Duration, String)>,
    /// What each agent process's `resources.info` held on the disk when the run ended.
    pub final_resources: BTreeMap<u32, Option<String>>,
    /// The agent's kills of live executor processes, in order (docs/task-lifecycle.md
    /// L36).
    pub agent_kills: Vec<AgentAct>,
    /// The `ShutdownExecutor` messages the agent wrote to executor processes, in order
    /// (docs/task-lifecycle.md L36).
    pub shutdown_asks: Vec<AgentAct>,
    /// The paced acts of the agent incarnations, in order (docs/recovery-rules.md R56,
    /// docs/design.md D88).
    pub paced: Vec<Paced>,
    /// The agent's ends of connections watched so far (while recording).
    connections: u64,
    /// The current boot of the agent machine (while recording).
    boot: u64,
    /// The current incarnation of each agent process (while recording).
    incarnations: BTreeMap<u32, u64>,
}

impl History {
    /// The framework's updates about `task`, in order.
    pub fn of_task<'a>(&'a self, task: &'a str) -> impl Iterator<Item = &'a Delivery> + 'a {
        self.deliveries.iter().filter(move |d| d.task == task)
    }

    /// The processes of the machine alive when the run ended.
    pub fn alive_at_end(&self) -> impl Iterator<Item = &ProcessRecord> {
        self.processes.iter().filter(|p| p.ended.is_none())
    }
}

thread_local! {
    static CURRENT: RefCell<Option<History>> = const { RefCell::new(None) };
}

pub(crate) fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_else(|| crate::trace::DRIVER_TIME.with(|t| t.get()))
}

fn with(f: impl FnOnce(&mut History)) {
    CURRENT.with(|current| {
        if let Some(history) = current.borrow_mut().as_mut() {
            f(history);
        }
    });
}

/// Starts recording a run (the machine in boot 1).
pub fn begin() {
    install_panic_hook();
    CURRENT.with(|current| {
        *current.borrow_mut() = Some(History {
            boot: 1,
            ..History::default()
        })
    });
}

/// Stops recording and returns the history.
pub fn take() -> History {
    CURRENT.with(|current| current.borrow_mut().take().unwrap_or_default())
}

/// A framework received an update. Also written to the trace (role `sim`, on the
/// framework's host), which the snapshots leave out.
pub fn delivered(framework: u32, update: &StatusUpdate) {
    let delivery = Delivery::from_update(now(), framework, update);
    tracing::info!(
        target: "revenant_sim",
        task = %delivery.task,
        state = delivery.state.as_str_name(),
        reason = %delivery.reason,
        source = ?delivery.source,
        agent = %delivery.agent_id,
        uuid = %delivery.uuid.map(|u| u.to_string()).unwrap_or_default(),
        "framework received a status update"
    );
    with(|history| history.deliveries.push(delivery));
}

/// The master told framework `framework` it was removed.
pub fn framework_removed(framework: u32) {
    let time = now();
    with(|history| history.frameworks_removed.push((time, framework)));
}

/// The agent machine lost power: every process on it ended.
pub fn machine_down() {
    let time = now();
    with(|history| {
        for process in history.processes.iter_mut().filter(|p| p.ended.is_none()) {
            process.ended = Some((time, ProcessEnd::MachineDown));
        }
        history.boot += 1;
    });
}

/// Agent process `agent` starts its incarnation `incarnation`; `resources_on_disk` is
/// what its `resources.info` held then.
pub fn agent_started(agent: u32, incarnation: u64, resources_on_disk: Option<String>) {
    let time = now();
    with(|history| {
        history.incarnations.insert(agent, incarnation);
        let boot = history.boot;
        history.agent_starts.push(AgentStart {
            time,
            agent,
            incarnation,
            boot,
            resources_on_disk,
            flag_resources: None,
        });
    });
}

/// The resources of the flags agent process `agent` was last started with
/// (docs/task-lifecycle.md L37).
pub fn agent_flag_resources(agent: u32, resources: String) {
    with(|history| {
        if let Some(start) = history
            .agent_starts
            .iter_mut()
            .rev()
            .find(|s| s.agent == agent)
        {
            start.flag_resources = Some(resources);
        }
    });
}

/// What agent process `agent`'s `resources.info` held when the run ended.
pub fn final_resources(agent: u32, resources: Option<String>) {
    with(|history| {
        history.final_resources.insert(agent, resources);
    });
}

/// The process table started an executor process for agent process `owner`.
pub fn process_started(pid: u32, executor_id: &str, container: &str, owner: u32, hung: bool) {
    let time = now();
    with(|history| {
        let incarnation = history.incarnations.get(&owner).copied().unwrap_or(0);
        let boot = history.boot;
        history.processes.push(ProcessRecord {
            started: time,
            pid,
            executor_id: executor_id.to_owned(),
            container: container.to_owned(),
            owner,
            incarnation,
            boot,
            hung,
            ended: None,
        });
    });
}

/// Agent process `agent` did something to executor process `pid` of the current boot.
fn agent_act(agent: u32, pid: u32) -> impl FnOnce(&History) -> AgentAct {
    let time = now();
    move |history: &History| AgentAct {
        time,
        agent,
        incarnation: history.incarnations.get(&agent).copied().unwrap_or(0),
        pid,
        boot: history.boot,
        answering: None,
    }
}

/// Agent process `agent` signalled executor process `pid` of the current boot, which was
/// alive.
pub fn agent_killed(agent: u32, pid: u32) {
    let act = agent_act(agent, pid);
    with(|history| {
        let act = act(history);
        history.agent_kills.push(act);
    });
}

/// Agent process `agent` wrote a `ShutdownExecutor` to executor process `pid` of the
/// current boot.
/// `answering`: when the registration this ask answers reached the agent's end, if it
/// answers one ([`AgentAct::answering`]).
pub fn shutdown_asked(agent: u32, pid: u32, answering: Option<Duration>) {
    let act = agent_act(agent, pid);
    with(|history| {
        let act = AgentAct {
            answering,
            ..act(history)
        };
        history.shutdown_asks.push(act);
    });
}

/// Agent process `agent`'s current incarnation did `act` (docs/recovery-rules.md R56,
/// docs/design.md D88).
pub fn paced(agent: u32, act: Pace) {
    let time = now();
    with(|history| {
        let incarnation = history.incarnations.get(&agent).copied().unwrap_or(0);
        history.paced.push(Paced {
            time,
            agent,
            incarnation,
            act,
        });
    });
}

/// A connection of agent process `agent`'s current incarnation is watched: that
/// incarnation and a number for the connection, unique in the run (`(0, 0)` when not
/// recording).
pub fn connection_watched(agent: u32) -> (u64, u64) {
    let mut out = (0, 0);
    with(|history| {
        history.connections += 1;
        out = (
            history.incarnations.get(&agent).copied().unwrap_or(0),
            history.connections,
        );
    });
    out
}

/// Agent process `agent`'s incarnation `incarnation` wrote a `ReconnectExecutor` on
/// connection `connection` (docs/recovery-rules.md R56).
pub fn reconnect_asked(agent: u32, incarnation: u64, connection: u64) {
    let time = now();
    with(|history| {
        history.paced.push(Paced {
            time,
            agent,
            incarnation,
            act: Pace::ReconnectAsk { connection },
        });
    });
}

/// Process `pid` of the current boot ended.
pub fn process_ended(pid: u32, how: ProcessEnd) {
    let time = now();
    with(|history| {
        let boot = history.boot;
        if let Some(process) = history
            .processes
            .iter_mut()
            .rev()
            .find(|p| p.pid == pid && p.boot == boot && p.ended.is_none())
        {
            process.ended = Some((time, how));
        }
    });
}

/// Reads the reserved resources `resources.info` holds in `work_dir` on `fs`, without
/// touching the filesystem's fault injection or counters. `None` when there is no file
/// or its header is not whole.
pub fn resources_on_disk(fs: &crate::fs::SimFs, work_dir: &std::path::Path) -> Option<String> {
    use prost::Message;
    use revenant::checkpoint::record::{scan, FileKind};
    let path = revenant::checkpoint::paths::MetaPaths::for_work_dir(work_dir).resources_info();
    // One file read, not a listing of the whole disk (docs/recovery-latency.md P35).
    let crate::fs::Entry::File(bytes) = fs.entry(&path)? else {
        return None;
    };
    let scanned = scan(&bytes, FileKind::Resources).ok()?;
    let mut resources = Vec::new();
    for (_, payload) in scanned.records {
        match revenant::proto::Resource::decode(payload) {
            Ok(resource) => resources.push(resource),
            Err(_) => break,
        }
    }
    Some(revenant::domain::resources::describe_resources(&resources))
}

/// Installs (once per process) a panic hook that records every panic of a thread that is
/// recording a run, then hands the panic to the previous hook. tokio catches a panic in
/// a spawned task (a connection's writer, an executor) and turmoil a host's; the hook
/// sees it first, wherever it happens.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let recording = CURRENT
                .try_with(|current| current.try_borrow().map(|c| c.is_some()).unwrap_or(true))
                .unwrap_or(false);
            if recording {
                let message = if let Some(text) = info.payload().downcast_ref::<&str>() {
                    (*text).to_owned()
                } else if let Some(text) = info.payload().downcast_ref::<String>() {
                    text.clone()
                } else {
                    "a panic".to_owned()
                };
                let location = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let time = now();
                // The history may be borrowed by the code that panicked; then the
                // panic is kept in a side list.
                let recorded = CURRENT.with(|current| match current.try_borrow_mut() {
                    Ok(mut current) => {
                        if let Some(history) = current.as_mut() {
                            history.panics.push((time, format!("{message}{location}")));
                        }
                        true
                    }
                    Err(_) => false,
                });
                if !recorded {
                    LATE_PANICS.with(|late| {
                        late.borrow_mut()
                            .push((time, format!("{message}{location}")))
                    });
                }
            }
            previous(info);
        }));
    });
}

thread_local! {
    static LATE_PANICS: RefCell<Vec<(Duration, String)>> = const { RefCell::new(Vec::new()) };
}

/// Panics recorded while the history was borrowed (merged by [`take_all`]).
pub fn take_all() -> History {
    let mut history = take();
    let late = LATE_PANICS.with(|late| std::mem::take(&mut *late.borrow_mut()));
    history.panics.extend(late);
    history.panics.sort_by_key(|(time, _)| *time);
    history
}
