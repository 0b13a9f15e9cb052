//! The task and executor handlers' decisions on their effects and writes, without a
//! runtime, a network, a disk or a clock (docs/design.md D76): a kill by where its task
//! is, a framework's shutdown, the liveness poll's choice, a task's record and delivery,
//! the checkpoints of updates and acknowledgements, a run's completion, and the first
//! registration's checkpoints.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::decide::{self, Kill};
use super::effects::Effect;
use super::writes::{Run, Step, Write};
use super::{Executor, ExecutorPhase, Framework, TaskEntry};
use crate::ids::{AgentId, ContainerId, ExecutorId, FrameworkId, TaskId, Uuid};
use crate::os::ProcessId;
use crate::proto::envelope::Body;
use crate::proto::{
    self, AgentInfo, ExecutorInfo, FrameworkInfo, Resource, StatusUpdate, TaskInfo,
};
use crate::wire::ConnectionId;

fn fid() -> FrameworkId {
    FrameworkId::new("f".to_owned())
}

fn eid(id: &str) -> ExecutorId {
    ExecutorId::new(id.to_owned())
}

fn tid(id: &str) -> TaskId {
    TaskId::new(id.to_owned())
}

fn task(id: &str) -> TaskInfo {
    TaskInfo {
        task_id: id.into(),
        ..Default::default()
    }
}

fn executor(id: &str, phase: ExecutorPhase) -> Executor {
    let mut executor = decide::launching(
        ExecutorInfo {
            executor_id: id.into(),
            framework_id: "f".into(),
            ..Default::default()
        },
        ContainerId::new(format!("run-{id}")),
    );
    executor.phase = phase;
    executor
}

fn run() -> Run {
    Run::new(
        &AgentId::new("agent-1".to_owned()),
        &fid(),
        &eid("e"),
        &ContainerId::new("c".to_owned()),
    )
}

fn start() -> Instant {
    #[allow(clippy::disallowed_methods)] // any instant will do: only differences count
    Instant::now()
}

// --- Killing a task (D68).

#[test]
fn a_queued_task_is_taken_off_the_queue_and_ended_by_the_agent() {
    let mut queued = vec![task("t1"), task("t2")];
    let kill = decide::kill(
        &mut queued,
        Some(ConnectionId(4)),
        &fid(),
        &tid("t1"),
        false,
    );
    assert_eq!(kill, Kill::Dequeued);
    assert_eq!(
        queued,
        vec![task("t2")],
        "only the killed task leaves the queue"
    );
}

#[test]
fn a_delivered_task_is_killed_by_asking_its_registered_executor() {
    let mut queued = vec![task("t2")];
    let kill = decide::kill(
        &mut queued,
        Some(ConnectionId(4)),
        &fid(),
        &tid("t1"),
        false,
    );
    assert_eq!(
        kill,
        Kill::Ask(Effect::Send {
            to: ConnectionId(4),
            body: Body::KillTask(proto::KillTask {
                framework_id: "f".into(),
                task_id: "t1".into(),
            }),
        })
    );
    assert_eq!(queued.len(), 1, "the queue is left alone");
    // Without a connection there is nobody to ask; the task ends with its executor.
    assert_eq!(
        decide::kill(&mut queued, None, &fid(), &tid("t1"), false),
        Kill::Wait
    );
    // The breakage ends it without asking.
    #[cfg(feature = "breakage")]
    assert_eq!(
        decide::kill(&mut queued, Some(ConnectionId(4)), &fid(), &tid("t1"), true),
        Kill::LeftRunning
    );
}

// --- A framework's shutdown (D69).

#[test]
fn a_shutdown_asks_registered_executors_arms_the_grace_period_and_drops_queues() {
    let t0 = start();
    let deadline = t0 + Duration::from_secs(5);
    let mut framework = Framework {
        info: FrameworkInfo::default(),
        executors: BTreeMap::new(),
        shutting_down: false,
    };
    let mut registered = executor("a", ExecutorPhase::Running);
    registered.queued.push(task("t9"));
    framework.executors.insert(eid("a"), registered);
    framework
        .executors
        .insert(eid("b"), executor("b", ExecutorPhase::Launching));
    framework
        .executors
        .insert(eid("c"), executor("c", ExecutorPhase::Terminated));
    let connection = |e: &Executor| (e.info.executor_id == "a").then_some(ConnectionId(7));
    let plan = decide::shutdown(&mut framework, deadline, connection).expect("a first shutdown");
    assert_eq!(
        plan.ask,
        vec![(
            eid("a"),
            Effect::Send {
                to: ConnectionId(7),
                body: Body::ShutdownExecutor(proto::ShutdownExecutor {
                    reason: "framework shut down".into(),
                }),
            }
        )]
    );
    assert_eq!(plan.done, vec![eid("c")]);
    assert!(framework.shutting_down);
    assert!(framework.executors[&eid("a")].queued.is_empty());
    assert_eq!(framework.executors[&eid("a")].kill_at, Some(deadline));
    assert_eq!(framework.executors[&eid("b")].kill_at, Some(deadline));
    assert_eq!(framework.executors[&eid("c")].kill_at, None);
    // A second shutdown of the same framework does nothing.
    assert_eq!(decide::shutdown(&mut framework, deadline, connection), None);
}

// --- The liveness poll (D70).

#[test]
fn only_executors_that_should_be_alive_and_have_a_process_are_polled() {
    let process = |pid| ProcessId { pid, start_time: 1 };
    let mut framework = Framework {
        info: FrameworkInfo::default(),
        executors: BTreeMap::new(),
        shutting_down: false,
    };
    for (id, phase, pid) in [
        ("a", ExecutorPhase::Running, Some(1)),
        ("b", ExecutorPhase::Launching, Some(2)),
        ("c", ExecutorPhase::Reregistering, Some(3)),
        ("d", ExecutorPhase::Terminated, Some(4)),
        ("e", ExecutorPhase::Running, None),
    ] {
        let mut e = executor(id, phase);
        e.process = pid.map(process);
        framework.executors.insert(eid(id), e);
    }
    let frameworks = BTreeMap::from([(fid(), framework)]);
    let polled: Vec<(ExecutorId, u32)> = decide::polled(&frameworks)
        .into_iter()
        .map(|(_, e, p)| (e, p.pid))
        .collect();
    assert_eq!(polled, vec![(eid("a"), 1), (eid("b"), 2), (eid("c"), 3)]);
}

// --- A task's launch: its writes, its record and its delivery (D71).

#[test]
fn a_launch_writes_the_executor_then_the_run_and_records_the_task_staging() {
    let run = run();
    let info = ExecutorInfo {
        executor_id: "e".into(),
        framework_id: "f".into(),
        ..Default::default()
    };
    assert_eq!(
        decide::launch_writes(&run, &info),
        vec![
            Step::Write(Write::Executor {
                agent: run.agent.clone(),
                info: info.clone()
            }),
            Step::Write(Write::Run(run.clone())),
        ]
    );
    let staging = decide::staging(&task("t1"), &fid(), &eid("e"), &run.agent);
    assert_eq!(staging.state, proto::TaskState::TaskStaging as i32);
    assert_eq!(
        (
            staging.framework_id.as_str(),
            staging.executor_id.as_str(),
            staging.agent_id.as_str()
        ),
        ("f", "e", "agent-1")
    );
}

#[test]
fn a_task_goes_to_a_running_executor_and_waits_in_the_queue_of_any_other() {
    let message = |id: &str| proto::RunTask {
        framework: None,
        executor: None,
        task: Some(task(id)),
    };
    let mut running = executor("e", ExecutorPhase::Running);
    assert_eq!(
        decide::deliver(&mut running, Some(ConnectionId(2)), message("t1")),
        vec![Effect::Send {
            to: ConnectionId(2),
            body: Body::RunTask(message("t1")),
        }]
    );
    assert!(running.queued.is_empty());
    let mut launching = executor("e", ExecutorPhase::Launching);
    assert_eq!(
        decide::deliver(&mut launching, None, message("t1")),
        Vec::new()
    );
    assert_eq!(launching.queued, vec![task("t1")]);
    for executor in [&running, &launching] {
        assert_eq!(
            executor.tasks.get(&tid("t1")).map(|e| e.state),
            Some(proto::TaskState::TaskStaging)
        );
    }
}

// --- Status updates and acknowledgements (D72, D73).

#[test]
fn an_update_and_an_acknowledgement_are_written_only_for_a_checkpointing_run() {
    let update = StatusUpdate::default();
    let uuid = Uuid([3; 16]);
    assert_eq!(
        decide::update_write(Some(run()), true, &tid("t1"), &update),
        vec![Step::Write(Write::Update {
            run: run(),
            task: tid("t1"),
            update: update.clone()
        })]
    );
    assert_eq!(
        decide::update_write(Some(run()), false, &tid("t1"), &update),
        Vec::new()
    );
    assert_eq!(
        decide::update_write(None, true, &tid("t1"), &update),
        Vec::new()
    );
    assert_eq!(
        decide::ack_write(Some(run()), true, &tid("t1"), uuid),
        vec![Step::Write(Write::Ack {
            run: run(),
            task: tid("t1"),
            uuid
        })]
    );
    assert_eq!(decide::ack_write(None, true, &tid("t1"), uuid), Vec::new());
    assert_eq!(
        decide::executor_ack(ConnectionId(5), "agent-1", &fid(), "t1".into(), vec![3; 16]),
        Effect::Send {
            to: ConnectionId(5),
            body: Body::Acknowledgement(proto::Acknowledgement {
                agent_id: "agent-1".into(),
                framework_id: "f".into(),
                task_id: "t1".into(),
                uuid: vec![3; 16],
            }),
        }
    );
}

// --- A run's completion (D74).

#[test]
fn a_run_completes_once_terminated_with_no_stream_open_and_then_writes_its_sentinel() {
    let mut e = executor("e", ExecutorPhase::Running);
    e.tasks.insert(
        tid("t1"),
        TaskEntry {
            state: proto::TaskState::TaskFinished,
        },
    );
    assert!(!decide::complete(&e, |_| false), "not while it runs");
    e.phase = ExecutorPhase::Terminated;
    assert!(
        !decide::complete(&e, |t| *t == tid("t1")),
        "not while t1 waits for its ack"
    );
    assert!(decide::complete(&e, |_| false));
    assert_eq!(
        decide::sentinel_write(run(), true),
        vec![Step::Write(Write::Sentinel(run()))]
    );
    assert_eq!(decide::sentinel_write(run(), false), Vec::new());
    let mut anonymous = run();
    anonymous.agent = AgentId::new(String::new());
    assert_eq!(
        decide::sentinel_write(anonymous, true),
        Vec::new(),
        "no agent id, no sentinel"
    );
}

// --- The first registration's checkpoints (D75).

#[test]
fn a_first_registration_writes_the_agent_info_and_the_changed_reservations() {
    let info = AgentInfo {
        id: "agent-1".into(),
        ..Default::default()
    };
    assert_eq!(
        decide::agent_info_write(&info, true),
        vec![Step::Write(Write::AgentInfo(info.clone()))]
    );
    assert_eq!(decide::agent_info_write(&info, false), Vec::new());
    let cpus = |role: &str| Resource {
        name: "cpus".into(),
        scalar: 1.0,
        role: role.into(),
        ..Default::default()
    };
    let flags = vec![cpus(""), cpus("web")];
    assert_eq!(
        decide::reserved_write(&flags, &[], true),
        Some(vec![cpus("web")])
    );
    assert_eq!(
        decide::reserved_write(&flags, &[cpus("web")], true),
        None,
        "unchanged"
    );
    assert_eq!(
        decide::reserved_write(&flags, &[], false),
        None,
        "not checkpointing"
    );
}
