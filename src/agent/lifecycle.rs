//! Executor lifecycle around launch: the registration timeout (docs/lifecycle-rules.md
//! rule 1), the destruction of an unregistered executor left with no task (rule 2) and
//! tasks for an executor id whose run is terminating (rule 14).

use std::time::Duration;

use tokio::time::Instant;

use tracing::info;

use super::effects::Effect;
use super::{Agent, AgentError, ExecutorPhase};
use crate::ids::{ExecutorId, FrameworkId, TaskId};
use crate::proto::{self, TaskReason};

impl Agent {
    /// The earliest registration deadline of a launched executor that has not
    /// registered yet (rule 1).
    pub(super) fn next_registration_deadline(&self) -> Option<Instant> {
        if broken!(self.config.breakage.keep_idle_unregistered_executors) {
            return None;
        }
        self.executors()
            .filter(|(_, _, e)| e.phase == ExecutorPhase::Launching)
            .filter_map(|(_, _, e)| e.register_by)
            .min()
    }

    /// Rule 1: a launched executor that has not registered within
    /// `--executor_registration_timeout` is destroyed (its process killed) and its tasks
    /// end TASK_FAILED, REASON_EXECUTOR_REGISTRATION_TIMEOUT.
    pub(super) fn registration_timed_out(&mut self, now: Instant) -> Result<(), AgentError> {
        if broken!(self.config.breakage.keep_idle_unregistered_executors) {
            return Ok(());
        }
        let overdue: Vec<(FrameworkId, ExecutorId)> = self
            .executors()
            .filter(|(_, _, e)| {
                e.phase == ExecutorPhase::Launching && e.register_by.is_some_and(|at| now >= at)
            })
            .map(|(f, e, _)| (f.clone(), e.clone()))
            .collect();
        for (fid, eid) in overdue {
            crate::coverage::point!("agent_executor_registration_timeout");
            let timeout = self.config.executor_registration_timeout;
            info!(target: "revenant::agent", framework = %fid, executor = %eid, timeout_s = timeout.as_secs_f64(), "executor did not register in time: destroying it");
            self.destroy_executor(&fid, &eid);
            self.executor_terminated(
                &fid,
                &eid,
                proto::TaskState::TaskFailed,
                TaskReason::ReasonExecutorRegistrationTimeout,
                &format!("Executor did not register within {timeout:?}"),
            )?;
        }
        Ok(())
    }

    /// Rule 2: after a kill took the last task queued for an executor that has not
    /// registered, and it has no other open task, the executor is destroyed: nothing
    /// would ever be sent to it. Its run then completes like any other.
    pub(super) fn destroy_if_idle_unregistered(
        &mut self,
        fid: &FrameworkId,
        eid: &ExecutorId,
    ) -> Result<(), AgentError> {
        if broken!(self.config.breakage.keep_idle_unregistered_executors) {
            return Ok(());
        }
        let Some(executor) = self.frameworks.get(fid).and_then(|f| f.executors.get(eid)) else {
            return Ok(());
        };
        if executor.phase != ExecutorPhase::Launching || !executor.queued.is_empty() {
            return Ok(());
        }
        let open = executor
            .tasks
            .values()
            .any(|t| !super::is_terminal(t.state));
        if open {
            return Ok(());
        }
        info!(target: "revenant::agent", framework = %fid, executor = %eid, "unregistered executor has no task left: destroying it");
        self.destroy_executor(fid, eid);
        self.executor_terminated(
            fid,
            eid,
            proto::TaskState::TaskKilled,
            TaskReason::ReasonTaskKilledDuringLaunch,
            "Executor destroyed: no task left",
        )
    }

    /// Rule 8: whether a run of executor `eid` has ended (or is being shut down) and
    /// waits for the terminal updates of its tasks to be acknowledged before it
    /// completes. A task for such an executor id is not launched.
    pub(super) fn executor_terminating(&self, fid: &FrameworkId, eid: &ExecutorId) -> bool {
        if broken!(self.config.breakage.relaunch_over_terminated_executor) {
            return false;
        }
        self.frameworks
            .get(fid)
            .and_then(|f| f.executors.get(eid))
            .is_some_and(|e| e.phase == ExecutorPhase::Terminated || e.kill_at.is_some())
    }

    /// Rule 8: a task for an executor id whose run is terminating ends TASK_LOST,
    /// REASON_EXECUTOR_TERMINATED, at once; nothing of it is checkpointed (the agent
    /// never held it: after a restart the master reconciles it).
    pub(super) fn refuse_task_for_terminated_executor(
        &mut self,
        fid: &FrameworkId,
        eid: &ExecutorId,
        tid: &TaskId,
    ) -> Result<(), AgentError> {
        crate::coverage::point!("agent_task_for_terminated_executor_lost");
        info!(target: "revenant::agent", framework = %fid, executor = %eid, task = %tid, "task for an executor that is terminating: lost");
        let update = self.make_update(
            fid,
            eid,
            tid,
            proto::TaskState::TaskLost,
            TaskReason::ReasonExecutorTerminated,
            "Executor terminating",
        );
        self.accept_update(fid, update, false)
    }

    /// Whether the agent holds a terminal update of task `tid` that its framework has
    /// not acknowledged yet (docs/task-lifecycle.md L23); logs that a launch of it is
    /// dropped when so.
    pub(super) fn terminal_update_unacknowledged(&self, fid: &FrameworkId, tid: &TaskId) -> bool {
        let pending = self
            .updates
            .streams()
            .get(&(fid.clone(), tid.clone()))
            .is_some_and(|stream| stream.holds_terminal() && !stream.terminated());
        if pending {
            crate::coverage::point!("agent_launch_of_ended_task_dropped");
            info!(target: "revenant::agent", framework = %fid, task = %tid, "run_task for a task whose terminal update awaits acknowledgement: dropped");
        }
        pending
    }

    /// Kills an executor's process, if it has one and it is alive.
    fn destroy_executor(&mut self, fid: &FrameworkId, eid: &ExecutorId) {
        let process = self
            .frameworks
            .get(fid)
            .and_then(|f| f.executors.get(eid))
            .and_then(|e| e.process.clone());
        if let Some(process) = process {
            if self.env.processes.is_alive(&process) {
                self.perform(vec![Effect::Kill { process }], None);
            }
        }
    }
}

/// When a just-launched executor must have registered by (rule 1).
pub(super) fn registration_deadline(now: Instant, timeout: Duration) -> Instant {
    now + timeout
}
