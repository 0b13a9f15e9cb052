//! Executors: launching them for tasks, their registration and re-registration (with the
//! executor secret, docs/security.md), killing tasks, shutting executors and frameworks
//! down, the shutdown grace period, and what an executor's end means for its tasks.

use super::writes::{Run, Write};
use super::*;

impl Agent {
    /// Executors asked to shut down that have not exited within the grace period are
    /// killed (one that never got a process is terminated then).
    pub(super) fn kill_overdue_executors(&mut self, now: Instant) -> Result<(), AgentError> {
        let overdue: Vec<(FrameworkId, ExecutorId, Option<ProcessId>)> = self
            .executors()
            .filter(|(_, _, e)| e.kill_at.is_some_and(|at| now >= at))
            .map(|(f, e, x)| (f.clone(), e.clone(), x.process.clone()))
            .collect();
        for (fid, eid, process) in overdue {
            if let Some(executor) = self.executor_mut(&fid, &eid) {
                executor.kill_at = None;
            }
            match process {
                Some(process) if self.env.processes.is_alive(&process) => {
                    crate::coverage::point!("agent_executor_killed_after_grace_period");
                    info!(target: "revenant::agent", framework = %fid, executor = %eid, grace_s = EXECUTOR_SHUTDOWN_GRACE_PERIOD.as_secs(), "executor did not exit within the shutdown grace period: killing it");
                    self.perform(vec![Effect::Kill { process }], None);
                }
                Some(_) => {}
                None => self.executor_terminated(
                    &fid,
                    &eid,
                    proto::TaskState::TaskKilled,
                    TaskReason::ReasonFrameworkRemoved,
                    "Framework shut down",
                )?,
            }
        }
        Ok(())
    }

    /// The master tells the agent to shut a torn-down framework down: each executor is
    /// asked to shut down and killed after [`EXECUTOR_SHUTDOWN_GRACE_PERIOD`], the
    /// framework's pending updates are dropped (nobody will acknowledge them) and none
    /// are forwarded again; once its executors are gone its directories are scheduled
    /// for collection, as for any completed framework.
    pub(super) fn shutdown_framework(&mut self, fid: FrameworkId) -> Result<(), AgentError> {
        if broken!(self.config.breakage.ignore_shutdown_framework) {
            return Ok(());
        }
        // docs/task-lifecycle.md L36: the grace period counts from the ask.
        let deadline = if broken!(self.config.breakage.executor_shutdown_without_grace) {
            self.now()
        } else {
            self.now() + EXECUTOR_SHUTDOWN_GRACE_PERIOD
        };
        let Some(framework) = self.frameworks.get_mut(&fid) else {
            info!(target: "revenant::agent", framework = %fid, "shutdown of a framework the agent does not run: nothing to do");
            return Ok(());
        };
        let executors = framework.executors.len();
        // docs/design.md D69.
        let Some(plan) =
            decide::shutdown(framework, deadline, |e| e.outbox.as_ref().map(Outbox::id))
        else {
            return Ok(());
        };
        crate::coverage::point!("agent_framework_shut_down");
        info!(target: "revenant::agent", framework = %fid, executors, "shutting down framework");
        self.updates.remove_framework(&fid);
        for (eid, ask) in plan.ask {
            info!(target: "revenant::agent", framework = %fid, executor = %eid, "asking executor to shut down");
            self.perform(vec![ask], None);
        }
        for eid in plan.done {
            self.maybe_complete_executor(&fid, &eid)?;
        }
        Ok(())
    }

    /// Polls the liveness of the executors that should be alive (docs/design.md D70):
    /// one found gone ends its tasks.
    pub(super) fn check_executors(&mut self) -> Result<(), AgentError> {
        let dead: Vec<(FrameworkId, ExecutorId)> = decide::polled(&self.frameworks)
            .into_iter()
            .filter(|(_, _, process)| !self.env.processes.is_alive(process))
            .map(|(fid, eid, _)| (fid, eid))
            .collect();
        for (fid, eid) in dead {
            info!(target: "revenant::agent", framework = %fid, executor = %eid, "executor process exited");
            self.executor_terminated(
                &fid,
                &eid,
                proto::TaskState::TaskFailed,
                TaskReason::ReasonExecutorTerminated,
                "Executor terminated",
            )?;
        }
        Ok(())
    }

    pub(super) fn run_task(&mut self, message: proto::RunTask) -> Result<(), AgentError> {
        let (Some(framework_info), Some(executor_info), Some(task_info)) =
            (message.framework, message.executor, message.task)
        else {
            warn!(target: "revenant::agent", "run_task without framework, executor or task: dropped");
            return Ok(());
        };
        if self.phase != Phase::Running {
            // The master reconciles it when it answers the retried registration
            // (docs/stream-rules.md S2).
            info!(target: "revenant::agent", task = %task_info.task_id, "ignoring run_task while not registered");
            return Ok(());
        }
        let fid = FrameworkId::new(framework_info.id.clone());
        let eid = ExecutorId::new(executor_info.executor_id.clone());
        let tid = TaskId::new(task_info.task_id.clone());
        if self.find_task(&fid, &tid).is_some() {
            info!(target: "revenant::agent", task = %tid, "duplicate run_task ignored");
            return Ok(());
        }
        if !broken!(self.config.breakage.relaunch_ended_task)
            && self.terminal_update_unacknowledged(&fid, &tid)
        {
            // docs/task-lifecycle.md L23: the task already ended here; the framework
            // learns how from the terminal update the agent keeps retrying.
            return Ok(());
        }
        if self.frameworks.get(&fid).is_some_and(|f| f.shutting_down) {
            info!(target: "revenant::agent", framework = %fid, task = %tid, "run_task for a framework being shut down: dropped");
            return Ok(());
        }
        if self.executor_terminating(&fid, &eid) {
            // docs/lifecycle-rules.md rule 14: a run of this executor id has ended and is
            // still waiting for its tasks' terminal updates to be acknowledged; a new run
            // is launched only once it completed.
            return self.refuse_task_for_terminated_executor(&fid, &eid, &tid);
        }
        let checkpoint = framework_info.checkpoint && self.config.checkpoint;
        let agent = self.agent_id();
        // docs/design.md D71: the framework, the executor and its run, then the task are
        // durable before the task goes anywhere.
        if !self.frameworks.contains_key(&fid) {
            if checkpoint {
                let write = Write::Framework {
                    agent: agent.clone(),
                    info: framework_info.clone(),
                };
                self.perform_steps(vec![write.into()], None)?;
            }
            self.frameworks.insert(
                fid.clone(),
                Framework {
                    info: framework_info.clone(),
                    executors: BTreeMap::new(),
                    shutting_down: false,
                },
            );
        }
        let needs_launch = match self.frameworks[&fid].executors.get(&eid) {
            Some(executor) => executor.phase == ExecutorPhase::Terminated,
            None => true,
        };
        if needs_launch {
            let container = ContainerId::new(format!("{:016x}", self.env.random.next_u64()));
            // docs/lifecycle-rules.md rule 4.
            self.unschedule_for_launch(&fid, &eid, &container);
            if checkpoint {
                let run = Run::new(&agent, &fid, &eid, &container);
                self.perform_steps(decide::launch_writes(&run, &executor_info), None)?;
            }
            let executor = decide::launching(executor_info.clone(), container);
            self.frameworks
                .get_mut(&fid)
                .expect("inserted")
                .executors
                .insert(eid.clone(), executor);
        }
        let task = decide::staging(&task_info, &fid, &eid, &agent);
        let container = self.frameworks[&fid].executors[&eid].container.clone();
        if checkpoint {
            let run = Run::new(&agent, &fid, &eid, &container);
            self.perform_steps(vec![Write::Task { run, task }.into()], None)?;
        }
        info!(target: "revenant::agent", framework = %fid, executor = %eid, task = %tid, "task checkpointed");
        let executor = self.executor_mut(&fid, &eid).expect("executor exists");
        let connection = executor.outbox.as_ref().map(Outbox::id);
        let delivery = decide::deliver(
            executor,
            connection,
            proto::RunTask {
                framework: Some(framework_info),
                executor: Some(executor_info),
                task: Some(task_info),
            },
        );
        self.perform(delivery, None);
        if needs_launch {
            self.launch_executor(&fid, &eid, checkpoint)?;
        }
        Ok(())
    }

    pub(super) fn launch_executor(
        &mut self,
        fid: &FrameworkId,
        eid: &ExecutorId,
        checkpoint: bool,
    ) -> Result<(), AgentError> {
        let agent = self.agent_id();
        let container = self.frameworks[fid].executors[eid].container.clone();
        let run = RunPath {
            agent: &agent,
            framework: fid,
            executor: eid,
            container: &container,
        };
        let mut arguments: Vec<String> = self
            .config
            .executor_command
            .iter()
            .skip(1)
            .cloned()
            .collect();
        arguments.shrink_to_fit();
        let mut environment = self.config.executor_environment.clone();
        environment.insert(
            "REVENANT_AGENT_ADDRESS".to_owned(),
            self.config.listen.clone(),
        );
        // The agent's tag, inherited by the tasks too (docs/lifecycle-rules.md rule 20).
        environment.insert(crate::os::AGENT_TAG_VARIABLE.to_owned(), self.agent_tag());
        environment.insert("REVENANT_FRAMEWORK_ID".to_owned(), fid.to_string());
        environment.insert("REVENANT_EXECUTOR_ID".to_owned(), eid.to_string());
        environment.insert("REVENANT_CONTAINER_ID".to_owned(), container.to_string());
        environment.insert(
            "REVENANT_CHECKPOINT".to_owned(),
            if checkpoint { "1" } else { "0" }.to_owned(),
        );
        environment.insert(
            "REVENANT_RECOVERY_TIMEOUT_MS".to_owned(),
            self.config.recovery_timeout.as_millis().to_string(),
        );
        environment.insert(
            "REVENANT_SUBSCRIPTION_BACKOFF_MAX_MS".to_owned(),
            self.config
                .executor_reregistration_timeout
                .as_millis()
                .to_string(),
        );
        // docs/security.md SEC14: a fresh secret for this process, in its environment only.
        let secret = Secret::generate(self.env.random.as_ref());
        environment.insert(ENV_SECRET.to_owned(), secret.expose().to_owned());
        if let Some(executor) = self.executor_mut(fid, eid) {
            executor.secret = Some(secret.verifier());
        }
        let sandbox = paths::sandbox(&self.config.work_dir, &run);
        if let Err(error) = self.create_sandbox(&sandbox) {
            warn!(target: "revenant::agent", framework = %fid, executor = %eid, %error, "failed to create the executor's sandbox");
            return self.executor_terminated(
                fid,
                eid,
                proto::TaskState::TaskFailed,
                TaskReason::ReasonCommandExecutorFailed,
                &format!("Failed to create the sandbox: {error}"),
            );
        }
        let spec = LaunchSpec {
            program: self
                .config
                .executor_command
                .first()
                .cloned()
                .unwrap_or_default(),
            arguments,
            environment,
            working_dir: sandbox,
        };
        if broken!(self.config.breakage.launch_executor_twice) {
            // Test-only breakage: a second process of the same executor.
            let _ = self.env.processes.launch(&spec);
        }
        match self.env.processes.launch(&spec) {
            Ok(process) => {
                if checkpoint {
                    let forked = ForkedPid {
                        process: process.clone(),
                        boot_id: self.boot_id.clone(),
                        secret: Some(secret.verifier()),
                    };
                    let run = Run::new(&agent, fid, eid, &container);
                    self.perform_steps(vec![Write::ForkedPid { run, forked }.into()], None)?;
                }
                info!(target: "revenant::agent", framework = %fid, executor = %eid, run = %container, "executor launched");
                let register_by = lifecycle::registration_deadline(
                    self.now(),
                    self.config.executor_registration_timeout,
                );
                if let Some(executor) = self.executor_mut(fid, eid) {
                    executor.process = Some(process);
                    executor.register_by = Some(register_by);
                }
            }
            Err(error) => {
                warn!(target: "revenant::agent", framework = %fid, executor = %eid, %error, "failed to launch executor");
                self.executor_terminated(
                    fid,
                    eid,
                    proto::TaskState::TaskFailed,
                    TaskReason::ReasonCommandExecutorFailed,
                    &format!("Failed to launch executor: {error}"),
                )?;
            }
        }
        Ok(())
    }

    pub(super) fn executor_registering(
        &mut self,
        connection: ConnectionId,
        framework_id: String,
        executor_id: String,
        container_id: String,
        // The presented secret, and the wake endpoint (docs/recovery-rules.md R31).
        (secret, endpoint): (&str, &str),
        reregistration: Option<(Vec<StatusUpdate>, Vec<TaskInfo>)>,
    ) -> Result<(), AgentError> {
        let Some(outbox) = self.unidentified.remove(&connection) else {
            return Ok(());
        };
        let fid = FrameworkId::new(framework_id);
        let eid = ExecutorId::new(executor_id);
        let reregistering = reregistration.is_some();
        let phase = self
            .executor_mut(&fid, &eid)
            .filter(|e| e.container.as_str() == container_id)
            .map(|e| e.phase);
        let verifier = self.executor_mut(&fid, &eid).and_then(|e| e.secret.clone());
        let admission = admission::admit(admission::Registering {
            phase,
            verifier: verifier.as_ref(),
            secret,
            reregistering,
            agent_recovering: self.phase == Phase::Recovering,
            shutting_down: self.frameworks.get(&fid).is_some_and(|f| f.shutting_down),
        });
        match admission {
            admission::Admission::Admitted => {}
            admission::Admission::LeftToTimeout => {
                // docs/design.md D55: its connection is kept open, unanswered, and it is
                // destroyed at the re-registration timeout like any executor that did not
                // re-register.
                info!(target: "revenant::agent", framework = %fid, executor = %eid, "executor that never registered before the restart registered: left to the re-registration timeout");
                if let Some(executor) = self.executor_mut(&fid, &eid) {
                    executor.outbox = Some(outbox);
                }
                return Ok(());
            }
            admission::Admission::Refused => {
                crate::coverage::point!("agent_executor_registration_refused");
                info!(target: "revenant::agent", framework = %fid, executor = %eid, run = %container_id, ?phase, "refusing executor registration: shutting it down");
                self.perform(admission::refusal(admission, connection), Some(&outbox));
                return Ok(());
            }
            admission::Admission::SecretRefused(reason) => {
                // docs/security.md SEC16: logged without the secret.
                warn!(target: "revenant::agent", connection = %connection, framework = %fid, executor = %eid, reason, "executor registration refused: its secret does not verify; connection closed");
                self.perform(admission::refusal(admission, connection), Some(&outbox));
                return Ok(());
            }
        }
        self.executor_connections
            .insert(connection, (fid.clone(), eid.clone()));
        let agent = self.agent_id();
        let checkpoint = self.frameworks[&fid].info.checkpoint && self.config.checkpoint;
        let executor = self.executor_mut(&fid, &eid).expect("checked above");
        let container = executor.container.clone();
        executor.phase = ExecutorPhase::Running;
        executor.register_by = None;
        executor.outbox = Some(outbox.clone());
        let queued = std::mem::take(&mut executor.queued);
        // docs/recovery-latency.md P20: its place among the woken goes to the next.
        self.woken_executor_back(&fid, &eid);
        let framework_info = &self.frameworks[&fid].info;
        let executor_info = &self.frameworks[&fid].executors[&eid].info;
        let welcome = admission::welcome(connection, &agent, framework_info, executor_info, queued);
        self.perform(welcome, Some(&outbox));
        if checkpoint {
            // docs/recovery-rules.md R31: the wake endpoint (or, without one, the
            // connection) in `libprocess.pid`.
            self.checkpoint_endpoint(&fid, &eid, &container, connection, endpoint, reregistering)?;
        }
        match reregistration {
            None => {
                info!(target: "revenant::agent", framework = %fid, executor = %eid, "executor registered")
            }
            Some((updates, tasks)) => {
                crate::coverage::point!("agent_executor_reregistered");
                info!(target: "revenant::agent", framework = %fid, executor = %eid, unacknowledged_updates = updates.len(), "executor re-registered");
                let known: Vec<String> = tasks
                    .iter()
                    .map(|t| t.task_id.clone())
                    .chain(updates.iter().map(update_task))
                    .collect();
                for update in updates {
                    self.executor_update(&fid, &eid, update)?;
                }
                // Tasks the agent launched that the executor never got (they end TASK_LOST).
                let staging: Vec<TaskId> = self.frameworks[&fid].executors[&eid]
                    .tasks
                    .iter()
                    .filter(|(tid, entry)| {
                        entry.state == proto::TaskState::TaskStaging
                            && !known.contains(&tid.to_string())
                    })
                    .map(|(tid, _)| tid.clone())
                    .collect();
                for tid in staging {
                    crate::coverage::point!("agent_task_lost_never_reached_executor");
                    info!(target: "revenant::agent", framework = %fid, task = %tid, "task was launched during the agent restart and never reached the executor: lost");
                    let update = self.make_update(
                        &fid,
                        &eid,
                        &tid,
                        proto::TaskState::TaskLost,
                        TaskReason::ReasonAgentRestarted,
                        "Task launched during agent restart",
                    );
                    self.accept_update(&fid, update, checkpoint)?;
                }
            }
        }
        if self.phase == Phase::Recovering
            && !self
                .executors()
                .any(|(_, _, e)| e.phase == ExecutorPhase::Reregistering)
        {
            self.finish_recovery()?;
        }
        Ok(())
    }

    pub(super) fn kill_task(&mut self, fid: FrameworkId, tid: TaskId) -> Result<(), AgentError> {
        // docs/task-lifecycle.md L38: a kill of a task the agent does not know is answered.
        let Some(eid) = self.find_task(&fid, &tid) else {
            info!(target: "revenant::agent", framework = %fid, task = %tid, "kill for an unknown task: reporting it lost");
            let update = self.make_update(
                &fid,
                &ExecutorId::default(),
                &tid,
                proto::TaskState::TaskLost,
                TaskReason::ReasonReconciliation,
                "Task unknown to the agent",
            );
            return self.accept_update(&fid, update, false);
        };
        let leave_running = broken!(self.config.breakage.kill_leaves_executor_running);
        let executor = self.executor_mut(&fid, &eid).expect("found");
        let connection = executor.outbox.as_ref().map(Outbox::id);
        // docs/design.md D68.
        match decide::kill(&mut executor.queued, connection, &fid, &tid, leave_running) {
            decide::Kill::Dequeued => {
                let checkpoint = self.frameworks[&fid].info.checkpoint && self.config.checkpoint;
                let update = self.make_update(
                    &fid,
                    &eid,
                    &tid,
                    proto::TaskState::TaskKilled,
                    TaskReason::ReasonTaskKilledDuringLaunch,
                    "Killed before delivery to the executor",
                );
                self.accept_update(&fid, update, checkpoint)?;
                self.destroy_if_idle_unregistered(&fid, &eid)
            }
            #[cfg(feature = "breakage")]
            decide::Kill::LeftRunning => {
                let checkpoint = self.frameworks[&fid].info.checkpoint && self.config.checkpoint;
                let update = self.make_update(
                    &fid,
                    &eid,
                    &tid,
                    proto::TaskState::TaskKilled,
                    TaskReason::ReasonNone,
                    "breakage: killed without stopping the executor",
                );
                self.accept_update(&fid, update, checkpoint)
            }
            decide::Kill::Ask(ask) => {
                self.perform(vec![ask], None);
                Ok(())
            }
            decide::Kill::Wait => Ok(()),
        }
    }

    /// An executor is gone: every non-terminal task gets a terminal update.
    pub(super) fn executor_terminated(
        &mut self,
        fid: &FrameworkId,
        eid: &ExecutorId,
        state: proto::TaskState,
        reason: TaskReason,
        message: &str,
    ) -> Result<(), AgentError> {
        let checkpoint =
            self.frameworks.get(fid).is_some_and(|f| f.info.checkpoint) && self.config.checkpoint;
        let shutting_down = self.frameworks.get(fid).is_some_and(|f| f.shutting_down);
        let Some(executor) = self.executor_mut(fid, eid) else {
            return Ok(());
        };
        executor.phase = ExecutorPhase::Terminated;
        executor.outbox = None;
        executor.kill_at = None;
        if shutting_down {
            // Its framework was torn down: no updates, nobody to acknowledge them.
            executor.queued.clear();
            info!(target: "revenant::agent", framework = %fid, executor = %eid, "executor of a framework being shut down terminated");
            return self.maybe_complete_executor(fid, eid);
        }
        let mut open: Vec<TaskId> = executor
            .tasks
            .iter()
            .filter(|(_, e)| !is_terminal(e.state))
            .map(|(t, _)| t.clone())
            .collect();
        let queued: Vec<TaskId> = executor
            .queued
            .drain(..)
            .map(|t| TaskId::new(t.task_id))
            .collect();
        for tid in queued {
            if !open.contains(&tid) {
                open.push(tid);
            }
        }
        // docs/recovery-rules.md R3: a task of an executor that never started failed (the
        // agent knows it is not running); it is not reported lost.
        for tid in open {
            let update = self.make_update(fid, eid, &tid, state, reason, message);
            self.accept_update(fid, update, checkpoint)?;
        }
        self.maybe_complete_executor(fid, eid)
    }

    /// A terminated executor whose tasks' terminal updates were all acknowledged is
    /// complete: write its sentinel and schedule its directories for collection.
    pub(super) fn maybe_complete_executor(
        &mut self,
        fid: &FrameworkId,
        eid: &ExecutorId,
    ) -> Result<(), AgentError> {
        let Some(executor) = self.frameworks.get(fid).and_then(|f| f.executors.get(eid)) else {
            return Ok(());
        };
        // docs/design.md D74.
        let streams = self.updates.streams();
        if !decide::complete(executor, |tid| {
            streams.contains_key(&(fid.clone(), tid.clone()))
        }) {
            return Ok(());
        }
        let checkpoint = self.frameworks[fid].info.checkpoint && self.config.checkpoint;
        let agent = self.agent_id();
        let container = executor.container.clone();
        let run = Run::new(&agent, fid, eid, &container);
        self.perform_steps(decide::sentinel_write(run, checkpoint), None)?;
        crate::coverage::point!("agent_executor_run_completed");
        info!(target: "revenant::agent", framework = %fid, executor = %eid, run = %container, "executor run completed");
        let framework = self.frameworks.get_mut(fid).expect("exists");
        framework.executors.remove(eid);
        let framework_done = framework.executors.is_empty();
        let shut_down = framework.shutting_down;
        // Its run, its executor and, if it was the last, its framework (meta and
        // sandbox) are collected after gc_delay (docs/lifecycle-rules.md rule 3).
        self.schedule_completed_run(fid, eid, &container, checkpoint, framework_done);
        if framework_done {
            self.frameworks.remove(fid);
            self.updates.remove_framework(fid);
            if shut_down {
                info!(target: "revenant::agent", framework = %fid, "framework shut down: all its executors are gone");
            }
        }
        Ok(())
    }
}
