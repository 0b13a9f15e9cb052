//! The agent's decisions on their effects, without a runtime, a network, a disk or a
//! clock (docs/design.md D58): the master link's registration and its timers, executor
//! admission, the sender of a status update, the re-registration timeout, and garbage
//! collection's schedule. Recovery's own verdicts (reconnect, destroy, replay) are
//! tested in `recovery_plan.rs`; one test here follows a recovered run from its verdict
//! to the timeout.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use super::admission::{self, Admission, Registering};
use super::effects::Effect;
use super::gc_schedule::{self, GcSchedule};
use super::link::Link;
use super::ExecutorPhase;
use crate::ids::{ExecutorId, FrameworkId};
use crate::os::{ProcessId, Random};
use crate::proto::envelope::Body;
use crate::proto::{self, ExecutorInfo, FrameworkInfo, TaskInfo};
use crate::security::executor_secret::Secret;
use crate::wire::ConnectionId;

/// Draws from a counter: each draw is larger than the last.
struct Counter(Cell<u64>);

impl Random for Counter {
    fn fill(&self, buffer: &mut [u8]) {
        self.0.set(
            self.0
                .get()
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407),
        );
        let bytes = self.0.get().to_le_bytes();
        for (i, byte) in buffer.iter_mut().enumerate() {
            *byte = bytes[i % 8];
        }
    }
}

fn random() -> Counter {
    Counter(Cell::new(7))
}

fn start() -> Instant {
    #[allow(clippy::disallowed_methods)] // any instant will do: only differences count
    Instant::now()
}

const SECOND: Duration = Duration::from_secs(1);
const PING_TIMEOUT: Duration = Duration::from_secs(75);

fn link() -> Link {
    Link::new(SECOND, PING_TIMEOUT)
}

// --- The master link: registration and its back-off (docs/recovery-rules.md R13, R36).

#[test]
fn the_first_registration_waits_for_a_draw_within_the_backoff_factor() {
    let (t0, random) = (start(), random());
    let mut link = link();
    assert_eq!(link.connected(t0, None, &random), Vec::new());
    let at = link.register_at.expect("an attempt is scheduled");
    assert!(
        at >= t0 && at <= t0 + SECOND,
        "first attempt within [0, factor]"
    );
    // Nothing goes before then; at that time the registration goes and a retry is
    // drawn within twice the factor.
    if at > t0 {
        assert_eq!(link.tick(t0, true, &random), Vec::new());
    }
    assert_eq!(link.tick(at, true, &random), vec![Effect::Register]);
    let retry = link.register_at.expect("a retry is scheduled");
    assert!(retry >= at && retry <= at + 2 * SECOND);
    // Once registered, no more attempts.
    link.registered_at(at);
    assert_eq!(link.register_at, None);
    assert_eq!(link.tick(retry, true, &random), Vec::new());
}

#[test]
fn after_a_recovery_that_waited_the_registration_goes_at_once() {
    let (t0, random) = (start(), random());
    let mut link = link();
    link.register_at_once = true;
    assert_eq!(link.start(t0, true, &random), vec![Effect::Register]);
    assert!(
        !link.register_at_once,
        "only the first attempt goes at once"
    );
    assert!(link.register_at.is_some_and(|at| at <= t0 + 2 * SECOND));
    // Without a master connection the flag is spent all the same, and nothing is sent.
    link.register_at_once = true;
    assert_eq!(link.start(t0, false, &random), Vec::new());
    assert!(!link.register_at_once);
}

#[test]
fn a_recovering_agent_tells_the_master_and_does_not_register_yet() {
    let (t0, random) = (start(), random());
    let mut link = link();
    let effects = link.connected(t0, Some("agent-1"), &random);
    assert_eq!(
        effects,
        vec![Effect::ToMaster(Body::AgentRecovering(
            proto::AgentRecovering {
                agent_id: "agent-1".into()
            }
        ))]
    );
    assert_eq!(link.register_at, None);
    assert_eq!(link.deadlines(true), [None, None, None]);
}

#[test]
fn an_unanswered_registration_gives_the_connection_up_after_the_ping_timeout() {
    let (t0, random) = (start(), random());
    let mut link = link();
    link.connected(t0, None, &random);
    link.register_at = None; // only the timeout is looked at here
    assert_eq!(link.tick(t0 + PING_TIMEOUT, true, &random), Vec::new());
    let late = t0 + PING_TIMEOUT + Duration::from_millis(1);
    assert_eq!(link.tick(late, true, &random), vec![Effect::Reconnect]);
    assert!(!link.registered);
    assert_eq!(link.register_at, None);
}

#[test]
fn a_silent_master_is_given_up_and_a_ping_is_answered() {
    let (t0, random) = (start(), random());
    let mut link = link();
    link.connected(t0, None, &random);
    link.registered_at(t0);
    assert_eq!(
        link.ping(9),
        vec![Effect::ToMaster(Body::Pong(proto::Pong { sequence: 9 }))]
    );
    link.heard(t0 + SECOND);
    assert_eq!(link.deadlines(true)[2], Some(t0 + SECOND + PING_TIMEOUT));
    assert_eq!(link.tick(t0 + PING_TIMEOUT, true, &random), Vec::new());
    let silent = t0 + SECOND + PING_TIMEOUT + Duration::from_millis(1);
    assert_eq!(link.tick(silent, true, &random), vec![Effect::Reconnect]);
    assert!(!link.registered);
}

#[test]
fn an_answer_from_a_deposed_leader_is_refused() {
    let mut link = link();
    assert!(!link.deposed(3));
    assert!(!link.deposed(3), "the same epoch is the same leader");
    assert!(link.deposed(2));
    assert_eq!(link.epoch_seen, 3);
}

// --- Executor admission (docs/security.md SEC16, docs/design.md D55).

fn registering<'a>(
    phase: Option<ExecutorPhase>,
    verifier: Option<&'a crate::security::executor_secret::Verifier>,
    secret: &'a str,
    reregistering: bool,
) -> Registering<'a> {
    Registering {
        phase,
        verifier,
        secret,
        reregistering,
        agent_recovering: false,
        shutting_down: false,
    }
}

#[test]
fn an_unknown_executor_is_told_to_shut_down_whatever_its_secret() {
    let secret = Secret::generate(&random());
    let verifier = secret.verifier();
    let verdict = admission::admit(registering(None, Some(&verifier), secret.expose(), false));
    assert_eq!(verdict, Admission::Refused);
    let connection = ConnectionId(4);
    assert_eq!(
        admission::refusal(verdict, connection),
        vec![Effect::Send {
            to: connection,
            body: Body::ShutdownExecutor(proto::ShutdownExecutor {
                reason: "unknown executor".into()
            }),
        }]
    );
}

#[test]
fn a_wrong_or_missing_secret_closes_the_connection() {
    let secret = Secret::generate(&random());
    let verifier = secret.verifier();
    let launching = Some(ExecutorPhase::Launching);
    for presented in ["not-the-secret", ""] {
        let verdict = admission::admit(registering(launching, Some(&verifier), presented, false));
        assert!(
            matches!(verdict, Admission::SecretRefused(_)),
            "{presented:?}"
        );
        assert_eq!(
            admission::refusal(verdict, ConnectionId(2)),
            vec![Effect::Close {
                connection: ConnectionId(2)
            }]
        );
    }
    // No verifier known for the run: refused too.
    let verdict = admission::admit(registering(launching, None, secret.expose(), false));
    assert!(matches!(verdict, Admission::SecretRefused(_)));
}

#[test]
fn admission_follows_the_executor_and_agent_phases() {
    let secret = Secret::generate(&random());
    let verifier = secret.verifier();
    use Admission::{Admitted, LeftToTimeout, Refused};
    use ExecutorPhase::*;
    // (executor phase, re-registering, agent recovering, framework shutting down): verdict.
    let table = [
        ((Some(Launching), false, false, false), Admitted),
        ((Some(Launching), true, false, false), Refused),
        // A launched executor does not register while the agent recovers.
        ((Some(Launching), false, true, false), Refused),
        ((Some(Reregistering), true, true, false), Admitted),
        // One that never registered before the restart waits for the timeout.
        ((Some(Reregistering), false, true, false), LeftToTimeout),
        ((Some(Running), true, false, false), Admitted),
        ((Some(Running), false, false, false), Refused),
        ((Some(Terminated), true, false, false), Refused),
        // Nothing of a framework being shut down is admitted.
        ((Some(Running), true, false, true), Refused),
        ((Some(Launching), false, false, true), Refused),
    ];
    for ((phase, reregistering, agent_recovering, shutting_down), expected) in table {
        let verdict = admission::admit(Registering {
            agent_recovering,
            shutting_down,
            ..registering(phase, Some(&verifier), secret.expose(), reregistering)
        });
        assert_eq!(
            verdict, expected,
            "{phase:?} re-registering {reregistering}"
        );
    }
    assert_eq!(admission::refusal(Admitted, ConnectionId(1)), Vec::new());
    assert_eq!(
        admission::refusal(LeftToTimeout, ConnectionId(1)),
        Vec::new()
    );
}

#[test]
fn an_admitted_executor_is_told_so_then_sent_its_queued_tasks_in_order() {
    let task = |id: &str| TaskInfo {
        task_id: id.into(),
        ..Default::default()
    };
    let framework = FrameworkInfo::default();
    let executor = ExecutorInfo::default();
    let agent = crate::ids::AgentId::new("agent-1".to_owned());
    let effects = admission::welcome(
        ConnectionId(3),
        &agent,
        &framework,
        &executor,
        vec![task("t1"), task("t2")],
    );
    let bodies: Vec<String> = effects
        .iter()
        .map(|effect| match effect {
            Effect::Send {
                to: ConnectionId(3),
                body: Body::ExecutorRegistered(registered),
            } => format!("registered {}", registered.agent_id),
            Effect::Send {
                to: ConnectionId(3),
                body: Body::RunTask(run),
            } => format!("run {}", run.task.as_ref().expect("task").task_id),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(bodies, ["registered agent-1", "run t1", "run t2"]);
}

#[test]
fn only_a_registered_connection_speaks_for_an_executor() {
    let mut registered = BTreeMap::new();
    let ids = (
        FrameworkId::new("f".to_owned()),
        ExecutorId::new("e".to_owned()),
    );
    registered.insert(ConnectionId(1), ids.clone());
    assert_eq!(
        admission::update_sender(&registered, ConnectionId(1)),
        Some(ids)
    );
    assert_eq!(admission::update_sender(&registered, ConnectionId(2)), None);
}

// --- The re-registration timeout (docs/recovery-rules.md R12, docs/design.md D57).

fn process(pid: u32) -> ProcessId {
    ProcessId { pid, start_time: 1 }
}

#[test]
fn the_reregistration_timeout_destroys_only_executors_still_awaited() {
    let t0 = start();
    let deadline = t0 + 2 * SECOND;
    let f = FrameworkId::new("f".to_owned());
    let (awaited, back, unknown) = (
        ExecutorId::new("awaited".to_owned()),
        ExecutorId::new("back".to_owned()),
        ExecutorId::new("gone".to_owned()),
    );
    let (p1, p2) = (process(10), process(11));
    let executors = || {
        vec![
            (&f, &awaited, ExecutorPhase::Reregistering, Some(&p1)),
            (&f, &back, ExecutorPhase::Running, Some(&p2)),
            (&f, &unknown, ExecutorPhase::Reregistering, None),
        ]
        .into_iter()
    };
    assert_eq!(
        admission::late_reregistrations(t0, Some(deadline), executors()),
        None
    );
    assert_eq!(
        admission::late_reregistrations(deadline, None, executors()),
        None
    );
    let late = admission::late_reregistrations(deadline, Some(deadline), executors())
        .expect("the deadline has come");
    let names: Vec<&str> = late.iter().map(|l| l.executor.as_str()).collect();
    assert_eq!(names, ["awaited", "gone"]);
    assert_eq!(
        admission::kills(&late[0]),
        vec![Effect::Kill { process: p1 }]
    );
    assert_eq!(
        admission::kills(&late[1]),
        Vec::new(),
        "nothing to kill without a process"
    );
    // No executor awaited: the timeout still ends the wait (recovery finishes).
    let none = admission::late_reregistrations(deadline, Some(deadline), std::iter::empty());
    assert_eq!(none, Some(Vec::new()));
}

#[test]
fn a_recovered_live_run_is_awaited_then_destroyed_at_the_timeout() {
    use crate::checkpoint::recover::RunState;
    use crate::checkpoint::ForkedPid;
    let live = process(42);
    let run = RunState {
        forked_pid: Some(ForkedPid {
            process: live.clone(),
            boot_id: "boot-1".into(),
            secret: None,
        }),
        ..Default::default()
    };
    let verdict = super::recovery_plan::judge_run(&run, "boot-1", |_| true);
    assert!(verdict.alive, "reconnect: awaited");
    let t0 = start();
    let (deadline, _) = super::recovery_plan::reregistration_wait(t0, 2 * SECOND, None);
    let (f, e) = (
        FrameworkId::new("f".to_owned()),
        ExecutorId::new("e".to_owned()),
    );
    let phase = if verdict.alive {
        ExecutorPhase::Reregistering
    } else {
        ExecutorPhase::Terminated
    };
    let process = verdict.process.as_ref();
    let late = admission::late_reregistrations(
        deadline,
        Some(deadline),
        std::iter::once((&f, &e, phase, process)),
    )
    .expect("due");
    assert_eq!(
        admission::kills(&late[0]),
        vec![Effect::Kill { process: live }]
    );
    // The same run after a reboot is neither awaited nor killed.
    let rebooted = super::recovery_plan::judge_run(&run, "boot-2", |_| true);
    assert!(!rebooted.alive && rebooted.process.is_none());
}

// --- Garbage collection (docs/lifecycle-rules.md rules 4-6, 24; docs/design.md D52-D54).

#[test]
fn a_meta_record_is_never_due_before_its_sandbox() {
    let day = Duration::from_secs(86_400);
    let hour = Duration::from_secs(3_600);
    // The meta record is younger (more delay left) than its sandbox: kept as it is.
    assert_eq!(
        gc_schedule::meta_after_sandbox(Some(hour), Some(day)),
        (Some(hour), Some(day))
    );
    // Older (touched before the sandbox): it waits for the sandbox.
    assert_eq!(
        gc_schedule::meta_after_sandbox(Some(day), Some(hour)),
        (Some(day), Some(day))
    );
    // No sandbox left: the meta record goes by its own age; none, nothing.
    assert_eq!(
        gc_schedule::meta_after_sandbox(None, Some(hour)),
        (None, Some(hour))
    );
    assert_eq!(
        gc_schedule::meta_after_sandbox(Some(hour), None),
        (Some(hour), None)
    );
    assert_eq!(gc_schedule::aged(day, hour), day - hour);
    assert_eq!(gc_schedule::aged(hour, day), Duration::ZERO);
}

#[test]
fn due_directories_go_sandboxes_first_deepest_first_and_failures_retry() {
    let t0 = start();
    let meta = Path::new("/w/meta");
    let mut gc = GcSchedule::default();
    let paths = [
        "/w/meta/slaves/a/frameworks/f",
        "/w/meta/slaves/a/frameworks/f/executors/e",
        "/w/slaves/a/frameworks/f",
        "/w/slaves/a/frameworks/f/executors/e/runs/r",
    ];
    for path in paths {
        gc.schedule(PathBuf::from(path), t0);
    }
    gc.schedule(PathBuf::from("/w/slaves/later"), t0 + SECOND);
    let retry = Duration::from_secs(60);
    let effects = gc.take_due(t0, meta, false, retry);
    let order: Vec<String> = effects
        .iter()
        .map(|effect| match effect {
            Effect::RemoveDir { path, retry_at } => {
                assert_eq!(*retry_at, t0 + retry);
                path.display().to_string()
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        order,
        [
            "/w/slaves/a/frameworks/f/executors/e/runs/r",
            "/w/slaves/a/frameworks/f",
            "/w/meta/slaves/a/frameworks/f/executors/e",
            "/w/meta/slaves/a/frameworks/f",
        ]
    );
    // Taken off the schedule; what is not due stays.
    assert_eq!(gc.next(), Some(t0 + SECOND));
    assert_eq!(gc.take_due(t0, meta, false, retry), Vec::new());
}

#[test]
fn a_filling_disk_brings_collection_forward_and_a_launch_unschedules() {
    let t0 = start();
    let delay = Duration::from_secs(1_000);
    let mut gc = GcSchedule::default();
    gc.schedule(
        PathBuf::from("/w/slaves/a/frameworks/f"),
        t0 + Duration::from_secs(500),
    );
    gc.schedule(PathBuf::from("/w/slaves/b"), t0 + Duration::from_secs(900));
    // Half full: what is due within gc_delay * (1 - 0.1 - 0.5) of now goes now...
    gc.prune(t0, delay, 0.5);
    assert_eq!(gc.next(), Some(t0));
    // ...the rest keeps its time.
    let taken = gc.take_due(t0, Path::new("/w/meta"), false, delay);
    assert_eq!(taken.len(), 1);
    assert_eq!(gc.next(), Some(t0 + Duration::from_secs(900)));
    // A run launched below a scheduled directory takes it off the schedule (rule 4).
    gc.schedule(PathBuf::from("/w/slaves/a/frameworks/f"), t0 + delay);
    let unscheduled = gc.unschedule_containing(
        Path::new("/w/meta/slaves/a/frameworks/f/executors/e/runs/r"),
        Path::new("/w/slaves/a/frameworks/f/executors/e/runs/r"),
    );
    assert_eq!(unscheduled, [PathBuf::from("/w/slaves/a/frameworks/f")]);
    assert_eq!(gc.next(), Some(t0 + Duration::from_secs(900)));
}
