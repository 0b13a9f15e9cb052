//! The decisions of the agent's task and executor handlers, without I/O
//! (docs/design.md D68–D75): killing a task, shutting a framework down, which executors
//! to poll, a task's record and its delivery, a status update's checkpoint and its
//! acknowledgement, a framework's acknowledgement, a run's completion, and the first
//! registration's checkpoints. Each takes the records it decides about and returns what
//! to do; the handlers in `executors.rs`, `update_flow.rs` and `master_link.rs` read
//! the world, call them and perform the answer at the same point as before (D47, D48).

use std::collections::BTreeMap;

use tokio::time::Instant;

use super::effects::Effect;
use super::writes::{Run, Step, Write};
use super::{Executor, ExecutorPhase, Framework, TaskEntry};
use crate::ids::{AgentId, ContainerId, ExecutorId, FrameworkId, TaskId, Uuid};
use crate::os::ProcessId;
use crate::proto::envelope::Body;
use crate::proto::{
    self, AgentInfo, ExecutorInfo, Resource, ShutdownExecutor, StatusUpdate, Task, TaskInfo,
};
use crate::wire::ConnectionId;

/// What a kill of a known task comes to (docs/design.md D68).
#[derive(Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // moved once; boxing buys nothing
pub(super) enum Kill {
    /// It was still queued for its executor: taken off the queue, it never runs; the
    /// agent ends it (TASK_KILLED) itself.
    Dequeued,
    /// Test-only breakage: ended without asking its registered executor. Compiled only
    /// with the `breakage` feature, so the release binary carries none of it
    /// (docs/design.md D11).
    #[cfg(feature = "breakage")]
    LeftRunning,
    /// Its executor is registered: ask it (the executor reports the end).
    Ask(Effect),
    /// Its executor has not registered: nothing now (its tasks end with it).
    Wait,
}

/// Kills task `tid` (D68), given its executor's queue and registered connection.
/// `leave_running` is the breakage switch.
pub(super) fn kill(
    queued: &mut Vec<TaskInfo>,
    connection: Option<ConnectionId>,
    fid: &FrameworkId,
    tid: &TaskId,
    leave_running: bool,
) -> Kill {
    if let Some(index) = queued.iter().position(|t| t.task_id == tid.as_str()) {
        queued.remove(index);
        return Kill::Dequeued;
    }
    #[cfg(not(feature = "breakage"))]
    let _ = leave_running;
    match connection {
        #[cfg(feature = "breakage")]
        Some(_) if leave_running => Kill::LeftRunning,
        Some(to) => Kill::Ask(Effect::Send {
            to,
            body: Body::KillTask(proto::KillTask {
                framework_id: fid.to_string(),
                task_id: tid.to_string(),
            }),
        }),
        None => Kill::Wait,
    }
}

/// A framework's shutdown (D69): which executors are asked, and which already ended.
#[derive(Debug, PartialEq)]
pub(super) struct Shutdown {
    /// Each executor asked to shut down, with the message to its connection.
    pub ask: Vec<(ExecutorId, Effect)>,
    /// Executors that had already terminated (their runs may now complete).
    pub done: Vec<ExecutorId>,
}

/// Shuts `framework` down (D69): `None` if it already is. Every executor's queue is
/// dropped; a live one is to be killed at `deadline` and, if registered (`connection`
/// names its connection), asked now.
pub(super) fn shutdown(
    framework: &mut Framework,
    deadline: Instant,
    connection: impl Fn(&Executor) -> Option<ConnectionId>,
) -> Option<Shutdown> {
    if framework.shutting_down {
        return None;
    }
    framework.shutting_down = true;
    let mut plan = Shutdown {
        ask: Vec::new(),
        done: Vec::new(),
    };
    for (eid, executor) in framework.executors.iter_mut() {
        executor.queued.clear();
        if executor.phase == ExecutorPhase::Terminated {
            plan.done.push(eid.clone());
            continue;
        }
        executor.kill_at = Some(deadline);
        if let Some(to) = connection(executor) {
            let ask = Effect::Send {
                to,
                body: Body::ShutdownExecutor(ShutdownExecutor {
                    reason: "framework shut down".into(),
                }),
            };
            plan.ask.push((eid.clone(), ask));
        }
    }
    Some(plan)
}

/// The executors whose process the liveness poll asks about (D70): those running,
/// launching or awaited after a restart that have a process, in record order.
pub(super) fn polled(
    frameworks: &BTreeMap<FrameworkId, Framework>,
) -> Vec<(FrameworkId, ExecutorId, ProcessId)> {
    let mut polled = Vec::new();
    for (fid, framework) in frameworks {
        for (eid, executor) in &framework.executors {
            if matches!(
                executor.phase,
                ExecutorPhase::Running | ExecutorPhase::Launching | ExecutorPhase::Reregistering
            ) {
                if let Some(process) = &executor.process {
                    polled.push((fid.clone(), eid.clone(), process.clone()));
                }
            }
        }
    }
    polled
}

/// A launched executor's record before its process starts (D71).
pub(super) fn launching(info: ExecutorInfo, container: ContainerId) -> Executor {
    Executor {
        info,
        container,
        phase: ExecutorPhase::Launching,
        process: None,
        outbox: None,
        queued: Vec::new(),
        tasks: BTreeMap::new(),
        kill_at: None,
        register_by: None,
        secret: None,
        endpoint: None,
    }
}

/// The writes of a run about to be launched (D71): its executor's info, then the run.
pub(super) fn launch_writes(run: &Run, info: &ExecutorInfo) -> Vec<Step> {
    vec![
        Write::Executor {
            agent: run.agent.clone(),
            info: info.clone(),
        }
        .into(),
        Write::Run(run.clone()).into(),
    ]
}

/// The task as checkpointed in `task.info`: TASK_STAGING on this agent (D71).
pub(super) fn staging(
    task: &TaskInfo,
    fid: &FrameworkId,
    eid: &ExecutorId,
    agent: &AgentId,
) -> Task {
    Task {
        task_id: task.task_id.clone(),
        name: task.name.clone(),
        framework_id: fid.to_string(),
        executor_id: eid.to_string(),
        agent_id: agent.to_string(),
        state: proto::TaskState::TaskStaging as i32,
        resources: task.resources.clone(),
        command: task.command.clone(),
    }
}

/// Records a checkpointed task with `executor` and hands it over (D71): sent at once to
/// a running executor with a connection, queued for one that has not registered. (A
/// running executor without a connection is about to be found gone: nothing is sent.)
pub(super) fn deliver(
    executor: &mut Executor,
    connection: Option<ConnectionId>,
    message: proto::RunTask,
) -> Vec<Effect> {
    let Some(task) = &message.task else {
        return Vec::new();
    };
    executor.tasks.insert(
        TaskId::new(task.task_id.clone()),
        TaskEntry {
            state: proto::TaskState::TaskStaging,
        },
    );
    match executor.phase {
        ExecutorPhase::Running => match connection {
            Some(to) => vec![Effect::Send {
                to,
                body: Body::RunTask(message),
            }],
            None => Vec::new(),
        },
        _ => {
            executor.queued.extend(message.task);
            Vec::new()
        }
    }
}

/// The agent's acknowledgement of an executor's update, once it is durable (D72).
pub(super) fn executor_ack(
    to: ConnectionId,
    agent_id: &str,
    fid: &FrameworkId,
    task: String,
    uuid: Vec<u8>,
) -> Effect {
    Effect::Send {
        to,
        body: Body::Acknowledgement(proto::Acknowledgement {
            agent_id: agent_id.to_owned(),
            framework_id: fid.to_string(),
            task_id: task,
            uuid,
        }),
    }
}

/// A new update's checkpoint (D72): appended to its task's log when the framework
/// checkpoints and the task belongs to a run; nothing otherwise.
pub(super) fn update_write(
    run: Option<Run>,
    checkpoint: bool,
    task: &TaskId,
    update: &StatusUpdate,
) -> Vec<Step> {
    match run {
        Some(run) if checkpoint => vec![Write::Update {
            run,
            task: task.clone(),
            update: update.clone(),
        }
        .into()],
        _ => Vec::new(),
    }
}

/// A framework's acknowledgement's checkpoint (D73), as [`update_write`].
pub(super) fn ack_write(
    run: Option<Run>,
    checkpoint: bool,
    task: &TaskId,
    uuid: Uuid,
) -> Vec<Step> {
    match run {
        Some(run) if checkpoint => vec![Write::Ack {
            run,
            task: task.clone(),
            uuid,
        }
        .into()],
        _ => Vec::new(),
    }
}

/// Whether a run is complete (D74): its executor terminated and none of its tasks has
/// a stream still waiting for acknowledgements. `open` tells whether a task's stream is
/// still open.
pub(super) fn complete(executor: &Executor, open: impl Fn(&TaskId) -> bool) -> bool {
    executor.phase == ExecutorPhase::Terminated && !executor.tasks.keys().any(open)
}

/// A completed run's sentinel (D74): written when its framework checkpoints and the
/// agent has an id.
pub(super) fn sentinel_write(run: Run, checkpoint: bool) -> Vec<Step> {
    if checkpoint && !run.agent.as_str().is_empty() {
        vec![Write::Sentinel(run).into()]
    } else {
        Vec::new()
    }
}

/// The first registration's agent info (D75): written, with the `latest` link, before
/// anything else of the new agent when the agent checkpoints.
pub(super) fn agent_info_write(info: &AgentInfo, checkpoint: bool) -> Vec<Step> {
    if checkpoint {
        vec![Write::AgentInfo(info.clone()).into()]
    } else {
        Vec::new()
    }
}

/// The first registration's reserved resources (D75): the flags' resources with a
/// role, written to `resources.info` when the agent checkpoints and they differ from
/// what it holds. `None`: nothing to write.
pub(super) fn reserved_write(
    flags: &[Resource],
    checkpointed: &[Resource],
    checkpoint: bool,
) -> Option<Vec<Resource>> {
    let reserved: Vec<Resource> = flags
        .iter()
        .filter(|r| !r.role.is_empty())
        .cloned()
        .collect();
    (checkpoint && reserved != checkpointed).then_some(reserved)
}
