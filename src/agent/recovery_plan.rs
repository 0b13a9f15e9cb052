//! The decisions of applying recovered state, as pure functions (docs/design.md D24):
//! they take the recovered tree (and what the agent was started with) and say what to
//! do; `recovery.rs` does it. Nothing here reads a clock, a file or a process table:
//! whether a process is alive is asked through the probe handed in, and only when the
//! rules need the answer.

use std::time::Duration;

use tokio::time::Instant;

use super::RecoverMode;
use crate::checkpoint::recover::{RunState, TaskState as RecoveredTask};
use crate::domain::resources::{info_mismatch, ReconfigurationPolicy};
use crate::domain::task_state::is_terminal;
use crate::os::ProcessId;
use crate::proto::{AgentInfo, TaskState};

/// The state a recovered task is in: the state of its updates replayed in file order,
/// up to and including the first terminal one; STAGING without any
/// (docs/recovery-rules.md R16).
pub(super) fn replayed_state(task: &RecoveredTask) -> TaskState {
    let mut state = TaskState::TaskStaging;
    for status in task.updates.iter().filter_map(|u| u.status.as_ref()) {
        state = status.state();
        if is_terminal(state) {
            break;
        }
    }
    state
}

/// What a restart's flags make of the checkpointed agent info (docs/recovery-rules.md R9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum RestartCheck {
    /// Recover the old agent as checkpointed.
    Keep,
    /// Recover the old agent with the flags' resources (a compatible change).
    TakeNewResources,
    /// The agent must not start: what changed, in words.
    Incompatible(String),
}

/// Checks the flags' agent info (`expected`, with the old id) against the checkpointed
/// one (`old`) under `policy`. Only `--recover=reconnect` checks: a cleanup recovers
/// nothing it would run (docs/recovery-rules.md R9).
pub(super) fn check_restart(
    old: &AgentInfo,
    expected: &AgentInfo,
    policy: ReconfigurationPolicy,
    mode: RecoverMode,
) -> RestartCheck {
    if mode != RecoverMode::Reconnect {
        return RestartCheck::Keep;
    }
    match info_mismatch(old, expected, policy) {
        Some(mismatch) => RestartCheck::Incompatible(mismatch),
        None if expected.resources != old.resources => RestartCheck::TakeNewResources,
        None => RestartCheck::Keep,
    }
}

/// What recovery makes of the latest run of an executor (docs/recovery-rules.md R3,
/// R15, R17).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RunVerdict {
    /// Its process is alive: wait for it to re-register.
    pub alive: bool,
    /// The process to keep as the executor's: only one of this boot (R15).
    pub process: Option<ProcessId>,
    /// No `forked.pid`: the agent died before launching it.
    pub never_launched: bool,
}

impl RunVerdict {
    /// Why the executor is not awaited, for the log (None when it is).
    pub(super) fn gone_reason(&self) -> Option<&'static str> {
        match (self.alive, self.never_launched) {
            (true, _) => None,
            (false, true) => Some("executor was never launched (agent died before launch)"),
            (false, false) => Some("executor process is gone"),
        }
    }
}

/// Judges `run` on the machine whose boot id is `boot_id`; `is_alive` is asked only
/// about a process of this boot (docs/recovery-rules.md R15, R17).
pub(super) fn judge_run(
    run: &RunState,
    boot_id: &str,
    is_alive: impl FnOnce(&ProcessId) -> bool,
) -> RunVerdict {
    let this_boot = run.forked_pid.as_ref().filter(|f| f.boot_id == boot_id);
    RunVerdict {
        alive: this_boot.is_some_and(|f| is_alive(&f.process)),
        process: this_boot.map(|f| f.process.clone()),
        never_launched: run.forked_pid.is_none(),
    }
}

/// The message of the TASK_FAILED updates of an executor found gone at recovery
/// (docs/recovery-rules.md R3).
pub(super) fn gone_executor_message(never_launched: bool) -> &'static str {
    if never_launched {
        "Executor never started: the agent died before launching it"
    } else {
        "Executor terminated while the agent was down"
    }
}

/// When executors awaited at recovery must have re-registered, and when connections
/// that have said nothing are first asked again (docs/recovery-rules.md R12, R17).
pub(super) fn reregistration_wait(
    now: Instant,
    timeout: Duration,
    retry_interval: Option<Duration>,
) -> (Instant, Option<Instant>) {
    (now + timeout, retry_interval.map(|interval| now + interval))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::store::ForkedPid;
    use crate::proto::{Resource, StatusUpdate, TaskStatus};

    fn task(states: &[TaskState]) -> RecoveredTask {
        RecoveredTask {
            updates: states
                .iter()
                .map(|state| StatusUpdate {
                    status: Some(TaskStatus {
                        state: *state as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn replay_stops_at_the_first_terminal_update() {
        assert_eq!(replayed_state(&task(&[])), TaskState::TaskStaging);
        assert_eq!(
            replayed_state(&task(&[TaskState::TaskStarting, TaskState::TaskRunning])),
            TaskState::TaskRunning
        );
        assert_eq!(
            replayed_state(&task(&[
                TaskState::TaskRunning,
                TaskState::TaskFinished,
                TaskState::TaskRunning,
                TaskState::TaskFailed,
            ])),
            TaskState::TaskFinished
        );
    }

    fn info(cpus: f64, port: u32) -> AgentInfo {
        AgentInfo {
            hostname: "h".into(),
            port,
            resources: vec![Resource {
                name: "cpus".into(),
                scalar: cpus,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn only_reconnect_checks_the_restart() {
        let (old, grown) = (info(2.0, 1), info(4.0, 1));
        use ReconfigurationPolicy::{Additive, Equal};
        use RecoverMode::{Cleanup, Reconnect};
        assert_eq!(
            check_restart(&old, &old, Equal, Reconnect),
            RestartCheck::Keep
        );
        assert_eq!(
            check_restart(&old, &grown, Additive, Reconnect),
            RestartCheck::TakeNewResources
        );
        assert_eq!(
            check_restart(&old, &grown, Equal, Reconnect),
            RestartCheck::Incompatible("cpus(*) changed from 2 to 4".into())
        );
        assert_eq!(
            check_restart(&old, &info(1.0, 2), Equal, Cleanup),
            RestartCheck::Keep
        );
    }

    fn run(boot: Option<&str>) -> RunState {
        RunState {
            forked_pid: boot.map(|boot_id| ForkedPid {
                process: ProcessId {
                    pid: 7,
                    start_time: 9,
                },
                boot_id: boot_id.into(),
                secret: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_live_process_of_this_boot_is_awaited() {
        let verdict = judge_run(&run(Some("b")), "b", |_| true);
        assert!(verdict.alive && !verdict.never_launched);
        assert_eq!(verdict.process.as_ref().map(|p| p.pid), Some(7));
        assert_eq!(verdict.gone_reason(), None);
    }

    #[test]
    fn a_dead_process_of_this_boot_is_kept_but_not_awaited() {
        let verdict = judge_run(&run(Some("b")), "b", |_| false);
        assert!(!verdict.alive && verdict.process.is_some());
        assert_eq!(verdict.gone_reason(), Some("executor process is gone"));
        assert_eq!(
            gone_executor_message(verdict.never_launched),
            "Executor terminated while the agent was down"
        );
    }

    #[test]
    fn a_process_of_another_boot_is_neither_asked_about_nor_kept() {
        let verdict = judge_run(&run(Some("old")), "b", |_| panic!("asked about a stranger"));
        assert_eq!(
            verdict,
            RunVerdict {
                alive: false,
                process: None,
                never_launched: false
            }
        );
    }

    #[test]
    fn a_run_without_forked_pid_was_never_launched() {
        let verdict = judge_run(&run(None), "b", |_| panic!("no process to ask about"));
        assert!(verdict.never_launched && !verdict.alive && verdict.process.is_none());
        assert_eq!(
            verdict.gone_reason(),
            Some("executor was never launched (agent died before launch)")
        );
        assert!(gone_executor_message(true).starts_with("Executor never started"));
    }

    #[test]
    fn the_wait_starts_now() {
        #[allow(clippy::disallowed_methods)] // any instant will do: only differences count
        let now = Instant::from_std(std::time::Instant::now());
        let (deadline, retry) =
            reregistration_wait(now, Duration::from_secs(2), Some(Duration::from_secs(1)));
        assert_eq!(deadline - now, Duration::from_secs(2));
        assert_eq!(retry.map(|at| at - now), Some(Duration::from_secs(1)));
        assert_eq!(reregistration_wait(now, Duration::ZERO, None).1, None);
    }
}
