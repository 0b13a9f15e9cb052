//! The executor's decisions as plain functions (docs/design.md D44): what a turn of its
//! loop does before it sleeps (reconnect, exit, how long to wait), which terminal state
//! a command's exit status gives, and what it says first on a new connection to the
//! agent. No clock, network, process or runtime: the loop in `executor.rs` gathers the
//! state, calls these and carries out the result; they are unit-tested on their own.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::{ExecutorExit, ExecutorSettings};
use crate::ids::TaskId;
use crate::proto::envelope::Body;
use crate::proto::{self, ReregisterExecutor, StatusUpdate, TaskInfo};

/// The longest the executor sleeps with nothing to do (messages wake it sooner).
pub(crate) const IDLE_WAIT: Duration = Duration::from_secs(30);

/// The executor's link to its agent, as a turn of the loop finds it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Link {
    /// Connected to the agent.
    pub connected: bool,
    /// A connection attempt is under way.
    pub connecting: bool,
    /// When the next connection attempt is due.
    pub next_connect: Option<Instant>,
    /// Since when the agent has been away (none while it is there, or before the first
    /// attempt failed).
    pub disconnected_since: Option<Instant>,
}

/// The executor's work, as a turn of the loop finds it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Work {
    /// Whether it was ever given a task.
    pub had_task: bool,
    /// Tasks still running.
    pub running: usize,
    /// Status updates the agent has not acknowledged.
    pub unacknowledged: usize,
}

/// What one turn does, in this order: start a connection attempt, exit, or sleep.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Turn {
    /// Start connecting to the agent now.
    pub connect: bool,
    /// Exit, for this reason (after starting the attempt, if any).
    pub exit: Option<ExecutorExit>,
    /// Sleep at most this long, unless a message comes first.
    pub wait: Duration,
}

/// One turn of the executor's loop at `now`. Away from the agent, it connects when the
/// back-off is over; it exits when the agent stayed away `recovery_timeout` (unless the
/// test-only switch `ignore_recovery_timeout` is on), or when every task ended and every
/// update was acknowledged while connected; otherwise it sleeps until the next attempt or
/// the recovery deadline, at most [`IDLE_WAIT`].
pub(crate) fn turn(
    link: &Link,
    work: &Work,
    recovery_timeout: Duration,
    ignore_recovery_timeout: bool,
    now: Instant,
) -> Turn {
    let connect =
        !link.connected && !link.connecting && link.next_connect.is_some_and(|at| now >= at);
    let connecting = link.connecting || connect;
    let recovery_over = link.disconnected_since.is_some_and(|since| {
        !ignore_recovery_timeout && now.saturating_duration_since(since) >= recovery_timeout
    });
    let done = work.had_task && work.running == 0 && work.unacknowledged == 0 && link.connected;
    let exit = if recovery_over {
        Some(ExecutorExit::RecoveryTimeout)
    } else if done {
        Some(ExecutorExit::Done)
    } else {
        None
    };
    let mut wait = IDLE_WAIT;
    if !link.connected && !connecting {
        if let Some(at) = link.next_connect {
            wait = wait.min(at.saturating_duration_since(now));
        }
    }
    if let Some(since) = link.disconnected_since {
        wait = wait.min((since + recovery_timeout).saturating_duration_since(now));
    }
    Turn {
        connect,
        exit,
        wait,
    }
}

/// The terminal state a task's command exit status gives.
pub(crate) fn terminal_state(code: i32) -> proto::TaskState {
    if code == 0 {
        proto::TaskState::TaskFinished
    } else {
        proto::TaskState::TaskFailed
    }
}

/// The first message on a new connection to the agent: a registration, or after the
/// first one a re-registration with every update not yet acknowledged and every task.
pub(crate) fn registration(
    settings: &ExecutorSettings,
    endpoint: &str,
    registered_once: bool,
    unacknowledged: &[StatusUpdate],
    task_infos: &BTreeMap<TaskId, TaskInfo>,
) -> Body {
    if registered_once {
        Body::ReregisterExecutor(ReregisterExecutor {
            framework_id: settings.framework_id.clone(),
            executor_id: settings.executor_id.clone(),
            container_id: settings.container_id.clone(),
            secret: settings.secret.expose().to_owned(),
            endpoint: endpoint.to_owned(),
            updates: unacknowledged.to_vec(),
            // Each task by id and resources, without its command: the agent keeps the
            // whole task in its checkpoint, and the tasks of an executor that runs
            // several must fit one frame (docs/lifecycle-rules.md rule 14).
            tasks: task_infos
                .values()
                .map(|task| TaskInfo {
                    command: None,
                    ..task.clone()
                })
                .collect(),
        })
    } else {
        Body::RegisterExecutor(proto::RegisterExecutor {
            framework_id: settings.framework_id.clone(),
            executor_id: settings.executor_id.clone(),
            container_id: settings.container_id.clone(),
            secret: settings.secret.expose().to_owned(),
            endpoint: endpoint.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECOVERY: Duration = Duration::from_secs(900);

    fn away(now: Instant) -> Link {
        Link {
            connected: false,
            connecting: false,
            next_connect: Some(now + Duration::from_secs(3)),
            disconnected_since: Some(now),
        }
    }

    fn idle() -> Work {
        Work {
            had_task: true,
            running: 1,
            unacknowledged: 0,
        }
    }

    #[test]
    fn away_from_the_agent_it_waits_for_the_back_off_then_connects() {
        #[allow(clippy::disallowed_methods)] // any instant will do: only differences count
        let start = Instant::now();
        let link = away(start);
        let early = turn(&link, &idle(), RECOVERY, false, start);
        assert_eq!(
            early,
            Turn {
                connect: false,
                exit: None,
                wait: Duration::from_secs(3)
            }
        );
        let due = turn(
            &link,
            &idle(),
            RECOVERY,
            false,
            start + Duration::from_secs(3),
        );
        assert!(due.connect);
        assert_eq!(due.exit, None);
        // While the attempt runs it waits for the recovery deadline only.
        assert_eq!(due.wait, IDLE_WAIT);
        let connecting = Link {
            connecting: true,
            ..link
        };
        assert!(
            !turn(
                &connecting,
                &idle(),
                RECOVERY,
                false,
                start + Duration::from_secs(5)
            )
            .connect
        );
    }

    #[test]
    fn the_recovery_timeout_ends_it_unless_switched_off() {
        #[allow(clippy::disallowed_methods)] // any instant will do: only differences count
        let start = Instant::now();
        let link = away(start);
        let before = turn(
            &link,
            &idle(),
            RECOVERY,
            false,
            start + RECOVERY - Duration::from_millis(1),
        );
        assert_eq!(before.exit, None);
        assert_eq!(before.wait, Duration::from_millis(1));
        let at = turn(&link, &idle(), RECOVERY, false, start + RECOVERY);
        assert_eq!(at.exit, Some(ExecutorExit::RecoveryTimeout));
        assert!(at.connect, "the attempt due is still started first");
        assert_eq!(
            turn(&link, &idle(), RECOVERY, true, start + RECOVERY).exit,
            None
        );
    }

    #[test]
    fn it_is_done_only_when_connected_with_everything_ended_and_acknowledged() {
        #[allow(clippy::disallowed_methods)] // any instant will do: only differences count
        let now = Instant::now();
        let connected = Link {
            connected: true,
            connecting: false,
            next_connect: None,
            disconnected_since: None,
        };
        let finished = Work {
            had_task: true,
            running: 0,
            unacknowledged: 0,
        };
        assert_eq!(
            turn(&connected, &finished, RECOVERY, false, now).exit,
            Some(ExecutorExit::Done)
        );
        let unacknowledged = Work {
            unacknowledged: 1,
            ..finished
        };
        assert_eq!(
            turn(&connected, &unacknowledged, RECOVERY, false, now).exit,
            None
        );
        let never_had_one = Work {
            had_task: false,
            ..finished
        };
        assert_eq!(
            turn(&connected, &never_had_one, RECOVERY, false, now).exit,
            None
        );
        let gone = Link {
            connected: false,
            next_connect: Some(now + Duration::from_secs(1)),
            ..connected
        };
        assert_eq!(
            turn(&gone, &finished, RECOVERY, false, now).exit,
            None,
            "its updates must reach the agent first"
        );
        assert_eq!(
            turn(&connected, &finished, RECOVERY, false, now).wait,
            IDLE_WAIT
        );
    }

    #[test]
    fn an_exit_status_gives_the_terminal_state() {
        assert_eq!(terminal_state(0), proto::TaskState::TaskFinished);
        assert_eq!(terminal_state(1), proto::TaskState::TaskFailed);
        assert_eq!(terminal_state(-9), proto::TaskState::TaskFailed);
    }

    fn settings() -> ExecutorSettings {
        let variables: BTreeMap<String, String> = [
            ("REVENANT_AGENT_ADDRESS", "agent1:5051"),
            ("REVENANT_FRAMEWORK_ID", "framework-1"),
            ("REVENANT_EXECUTOR_ID", "e1"),
            ("REVENANT_CONTAINER_ID", "run-1"),
            ("REVENANT_CHECKPOINT", "1"),
            ("REVENANT_RECOVERY_TIMEOUT_MS", "900000"),
            ("REVENANT_SUBSCRIPTION_BACKOFF_MAX_MS", "2000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        ExecutorSettings::from_environment(&variables).expect("complete settings")
    }

    #[test]
    fn the_first_connection_registers_and_later_ones_re_register_with_what_is_open() {
        let settings = settings();
        let task = TaskInfo {
            task_id: "t1".into(),
            command: Some(proto::CommandInfo::default()),
            ..Default::default()
        };
        let tasks: BTreeMap<TaskId, TaskInfo> = [(TaskId::new("t1"), task)].into_iter().collect();
        let update = StatusUpdate {
            uuid: vec![1; 16],
            ..Default::default()
        };
        let Body::RegisterExecutor(first) = registration(
            &settings,
            "agent1:40000",
            false,
            std::slice::from_ref(&update),
            &tasks,
        ) else {
            panic!("a first connection registers");
        };
        assert_eq!(
            (first.executor_id.as_str(), first.endpoint.as_str()),
            ("e1", "agent1:40000")
        );
        let Body::ReregisterExecutor(again) =
            registration(&settings, "agent1:40000", true, &[update], &tasks)
        else {
            panic!("a later connection re-registers");
        };
        assert_eq!(again.updates.len(), 1, "unacknowledged updates go again");
        assert_eq!(again.tasks.len(), 1);
        assert!(
            again.tasks[0].command.is_none(),
            "tasks go without their command"
        );
    }
}
