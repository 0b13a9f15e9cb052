//! Applying recovered state (docs/recovery-rules.md): reading the checkpoints, checking
//! them against the flags, reconnecting to live executors or destroying them, replaying
//! what the task update logs hold, then waiting for executors to re-register (or timing
//! them out) before the agent registers; and `--recover=cleanup`.

use super::recovery_plan as plan;
use super::*;

impl Agent {
    pub(super) fn recover(&mut self) -> Result<(), AgentError> {
        let options = RecoverOptions {
            strict: self.config.strict,
            truncate: true,
            current_boot_id: if broken!(self.config.breakage.ignore_boot_id) {
                None
            } else {
                Some(self.boot_id.clone())
            },
        };
        let latest = self.paths.latest_agent().display().to_string();
        info!(target: "revenant::agent", meta = %self.paths.root().display(), strict = self.config.strict, "recovering state");
        let state =
            checkpoint::recover(self.env.fs.as_ref(), &self.paths, &options).map_err(|error| {
                AgentError::Recovery {
                    error,
                    latest: latest.clone(),
                }
            })?;
        // docs/recovery-latency.md P46: phase marks at debug level (no trace line).
        tracing::debug!(target: "revenant::recovery_phase", "checkpoints read");
        let Some(state) = state else {
            crate::coverage::point!("agent_first_start");
            info!(target: "revenant::agent", "no checkpointed state: first start");
            // Nothing checkpointed claims any process (docs/lifecycle-rules.md rule 20).
            self.destroy_orphan_executors();
            return self.finish_recovery_if_ready();
        };
        // What a previous incarnation left in the page cache is made durable before
        // anything recovered is acted on (docs/recovery-rules.md R14).
        // docs/recovery-latency.md P47: the process table (rule 20) is listed while the
        // syncs go; what to destroy is decided below, as before.
        let mut listed = None;
        if !broken!(self.config.breakage.skip_recovery_sync) {
            checkpoint::make_durable_meanwhile(self.env.fs.as_ref(), &state, &mut || {
                listed = Some(self.list_tagged());
            })?;
        }
        tracing::debug!(target: "revenant::recovery_phase", logs = state.read.logs.len(), dirs = state.read.dirs.len(), "checkpoints durable");
        if broken!(self.config.breakage.panic_on_recovery_warning)
            && breakage_panics_on(&state.warnings)
        {
            panic!("breakage: panic on a recovery warning");
        }
        for warning in &state.warnings {
            info!(target: "revenant::agent", path = %warning.path.strip_prefix(self.paths.root()).unwrap_or(&warning.path).display(), "recovery warning: {}", warning.message);
        }
        self.recovery_errors = state.errors;
        if state.errors > 0 {
            warn!(target: "revenant::agent",
                errors = state.errors,
                "errors counted during non-strict recovery"
            );
        }
        if let Some(resources) = &state.resources {
            let recovered = if broken!(self.config.breakage.forget_checkpointed_resources) {
                Vec::new()
            } else {
                resources.resources.clone()
            };
            if !recovered.is_empty() {
                info!(target: "revenant::agent", resources = %describe_resources(&recovered), "recovered checkpointed resources");
            }
            // Checkpointed resources must still be offered by this agent (docs/recovery-rules.md R10,
            // applyCheckpointedResources): a reservation of something the flags no
            // longer give is an incompatible restart. A dynamic reservation (made at run
            // time through the master) is carved from the unreserved resources of its
            // name: all of them together must fit.
            let dynamic = |r: &&Resource| is_dynamic_reservation(r);
            for resource in &recovered {
                let is_dynamic = dynamic(&resource);
                let offered: f64 = self
                    .config
                    .resources
                    .iter()
                    .filter(|r| {
                        r.name == resource.name
                            && if is_dynamic {
                                r.role.is_empty()
                            } else {
                                r.role == resource.role
                            }
                    })
                    .map(|r| r.scalar)
                    .sum();
                let wanted: f64 = if is_dynamic {
                    recovered
                        .iter()
                        .filter(dynamic)
                        .filter(|r| r.name == resource.name)
                        .map(|r| r.scalar)
                        .sum()
                } else {
                    resource.scalar
                };
                if offered < wanted {
                    return Err(AgentError::IncompatibleResources {
                        checkpointed: describe_resources(&recovered),
                        flags: describe_resources(&self.config.resources),
                        resources_info: self.paths.resources_info().display().to_string(),
                    });
                }
            }
            self.checkpointed_resources = recovered;
        }
        if state.rebooted {
            crate::coverage::point!("agent_reboot_detected");
            info!(target: "revenant::agent", "machine rebooted: agent state not recovered, registering as a new agent");
            // docs/recovery-rules.md R1: the old agent is gone for good. `slaves/latest`
            // goes, durably, before `finish_recovery` writes the new boot id, so a stop
            // before the first registration cannot bring the pre-reboot agent back.
            self.store.forget_latest_agent()?;
        }
        self.recover_agent(&state, latest)?;
        // Executors no recovered run awaits are destroyed (docs/lifecycle-rules.md
        // rule 20), before anything is sent: a task reported failed does not run on.
        match listed {
            Some(listed) => self.destroy_listed_orphans(listed, true),
            None => self.destroy_orphan_executors(),
        }
        self.finish_recovery_if_ready()
    }

    pub(super) fn recover_agent(
        &mut self,
        state: &State,
        latest: String,
    ) -> Result<(), AgentError> {
        let Some(agent) = &state.agent else {
            return Ok(());
        };
        let Some(old) = &agent.info else {
            return Ok(());
        };
        let mut expected = self.info.clone();
        expected.id = old.id.clone();
        let policy = self.config.reconfiguration_policy;
        let check = plan::check_restart(old, &expected, policy, self.config.recover);
        if let plan::RestartCheck::Incompatible(mismatch) = &check {
            return Err(AgentError::Incompatible {
                old: format!(
                    "{}:{} with resources {}",
                    old.hostname,
                    old.port,
                    describe_resources(&old.resources)
                ),
                new: format!(
                    "{}:{} with resources {} ({mismatch}; --reconfiguration_policy={})",
                    expected.hostname,
                    expected.port,
                    describe_resources(&expected.resources),
                    policy.name()
                ),
                latest,
            });
        }
        self.info = old.clone();
        if check == plan::RestartCheck::TakeNewResources
            && !broken!(self.config.breakage.additive_change_keeps_old_resources)
        {
            // A compatible change (additive): the agent keeps its id and tells the master
            // its new resources when it re-registers.
            crate::coverage::point!("agent_resources_changed_compatibly");
            info!(target: "revenant::agent", old = %describe_resources(&old.resources), new = %describe_resources(&expected.resources), "agent resources changed compatibly");
            self.info.resources = expected.resources.clone();
            if self.config.checkpoint {
                self.store.write_agent_info(&self.info)?;
            }
        }
        crate::coverage::point!("agent_recovered");
        info!(target: "revenant::agent", agent = %agent.id, "recovered agent");
        // Runs whose executor was never launched (no forked.pid).
        let mut never_launched: BTreeSet<(FrameworkId, ExecutorId)> = BTreeSet::new();
        for framework_state in agent.frameworks.values() {
            let fid = framework_state.id.clone();
            let Some(framework_info) = framework_state.info.clone() else {
                info!(target: "revenant::agent", framework = %fid, "skipping framework without info");
                if framework_state.executors.is_empty() {
                    // Died while writing it: nothing else records these directories
                    // (docs/lifecycle-rules.md rule 5).
                    self.reschedule_completed_framework(&agent.id, &fid);
                }
                continue;
            };
            if framework_state.executors.is_empty() {
                self.schedule_gc(self.paths.framework(&agent.id, &fid), Duration::ZERO);
                continue;
            }
            let mut framework = Framework {
                info: framework_info,
                executors: BTreeMap::new(),
                shutting_down: false,
            };
            for executor_state in framework_state.executors.values() {
                let eid = executor_state.id.clone();
                let (Some(executor_info), Some(latest_run)) =
                    (executor_state.info.clone(), executor_state.latest.clone())
                else {
                    info!(target: "revenant::agent", framework = %fid, executor = %eid, "skipping executor without info or latest run");
                    self.schedule_gc(self.paths.executor(&agent.id, &fid, &eid), Duration::ZERO);
                    continue;
                };
                for old_run in executor_state.runs.keys().filter(|id| **id != latest_run) {
                    // Only the latest run can be live: earlier ones completed, and their
                    // directories, meta and sandbox, are scheduled with what is left of
                    // their gc_delay (docs/lifecycle-rules.md rules 5, 9).
                    self.reschedule_old_run(&agent.id, &fid, &eid, old_run);
                }
                let run_state = &executor_state.runs[&latest_run];
                if run_state.completed {
                    crate::coverage::point!("agent_completed_run_recovered");
                    info!(target: "revenant::agent", framework = %fid, executor = %eid, run = %latest_run, "executor run completed before the restart");
                    // Its directories, meta and sandbox, run and executor, with what is
                    // left of their gc_delay (docs/lifecycle-rules.md rule 5).
                    self.reschedule_completed_run(&agent.id, &fid, &eid, &latest_run);
                    continue;
                }
                let mut executor = Executor {
                    info: executor_info,
                    container: latest_run.clone(),
                    phase: ExecutorPhase::Reregistering,
                    process: None,
                    outbox: None,
                    queued: Vec::new(),
                    tasks: BTreeMap::new(),
                    kill_at: None,
                    register_by: None,
                    // docs/security.md SEC17: the checkpointed verifier, so that the
                    // live executor is still recognised after the restart.
                    secret: run_state
                        .forked_pid
                        .as_ref()
                        .and_then(|forked| forked.secret.clone()),
                    endpoint: wake::recovered_endpoint(&fid, &eid, run_state),
                };
                for task_state in run_state.tasks.values() {
                    if task_state.info.is_none() {
                        info!(target: "revenant::agent", task = %task_state.id, "skipping task without info");
                        continue;
                    }
                    let state = plan::replayed_state(task_state);
                    self.updates.recover(&fid, task_state);
                    let pending = task_state.unacknowledged().count();
                    info!(target: "revenant::agent", framework = %fid, task = %task_state.id, state = state.as_str_name(), updates = task_state.updates.len(), unacknowledged = pending, bytes_cut = task_state.bytes_cut, "recovered task");
                    executor
                        .tasks
                        .insert(task_state.id.clone(), TaskEntry { state });
                }
                let processes = &self.env.processes;
                let verdict = plan::judge_run(run_state, &self.boot_id, |process| {
                    processes.is_alive(process)
                });
                // Keep the pid of a dead executor of this boot (a later destroy checks it is
                // still gone), never one from another boot: that pid and start time may
                // name a stranger of this boot, which must be neither adopted nor
                // signalled (docs/recovery-rules.md R15).
                executor.process = verdict.process.clone();
                if verdict.never_launched {
                    never_launched.insert((fid.clone(), eid.clone()));
                }
                if let Some(reason) = verdict.gone_reason() {
                    crate::coverage::point!("agent_executor_gone_at_recovery");
                    info!(target: "revenant::agent", framework = %fid, executor = %eid, run = %latest_run, "{reason}");
                    executor.phase = ExecutorPhase::Terminated;
                } else {
                    crate::coverage::point!("agent_live_executor_awaited");
                    info!(target: "revenant::agent", framework = %fid, executor = %eid, run = %latest_run, "executor alive: waiting for it to re-register");
                }
                framework.executors.insert(eid, executor);
            }
            if !framework.executors.is_empty() {
                self.frameworks.insert(fid, framework);
            } else {
                // Every executor completed: so did the framework (rules 3, 5).
                self.reschedule_completed_framework(&agent.id, &fid);
            }
        }
        // Executors that died while the agent was down, or were never started (the agent
        // died between checkpointing the launch and starting the process): their tasks
        // fail now (docs/recovery-rules.md R3).
        let dead: Vec<(FrameworkId, ExecutorId, bool)> = self
            .frameworks
            .iter()
            .flat_map(|(fid, f)| {
                f.executors
                    .iter()
                    .filter(|(_, e)| e.phase == ExecutorPhase::Terminated)
                    .map(|(eid, _)| {
                        let never = never_launched.contains(&(fid.clone(), eid.clone()));
                        (fid.clone(), eid.clone(), never)
                    })
            })
            .collect();
        for (fid, eid, never_started) in dead {
            let message = plan::gone_executor_message(never_started);
            self.executor_terminated(
                &fid,
                &eid,
                proto::TaskState::TaskFailed,
                TaskReason::ReasonExecutorTerminated,
                message,
            )?;
        }
        Ok(())
    }

    /// Recovering an agent with an id while waiting for executors to re-register: such
    /// an agent keeps a connection to the master and answers its pings
    /// (docs/recovery-rules.md R4).
    pub(super) fn recovering_with_id(&self) -> bool {
        self.phase == Phase::Recovering
            && self.reregister_deadline.is_some()
            && !self.info.id.is_empty()
    }

    pub(super) fn finish_recovery_if_ready(&mut self) -> Result<(), AgentError> {
        let waiting = self
            .executors()
            .any(|(_, _, e)| e.phase == ExecutorPhase::Reregistering);
        if waiting && self.config.recover == RecoverMode::Reconnect {
            let (deadline, retry_at) = plan::reregistration_wait(
                self.now(),
                self.config.executor_reregistration_timeout,
                self.config.executor_reregistration_retry_interval,
            );
            self.reregister_deadline = Some(deadline);
            self.reconnect_retry_at = retry_at;
            info!(target: "revenant::agent",
                timeout_ms = self.config.executor_reregistration_timeout.as_millis() as u64,
                "waiting for executors to re-register"
            );
            // docs/recovery-rules.md R4: tell the master now, not once the executors are
            // back (that may take the whole timeout).
            if self.recovering_with_id() {
                self.next_connect_at = Some(self.now());
            }
            // docs/recovery-rules.md R32: and tell every awaited executor to come back now.
            self.wake_executors();
            return Ok(());
        }
        self.finish_recovery()
    }

    pub(super) fn finish_recovery(&mut self) -> Result<(), AgentError> {
        // docs/recovery-rules.md R36: a recovery that waited for executors registers at
        // once when they are back (or the wait ended).
        self.link.register_at_once = self.reregister_deadline.is_some();
        self.reregister_deadline = None;
        self.reconnect_retry_at = None;
        self.store.write_boot_id(&self.boot_id)?;
        self.phase = Phase::Disconnected;
        self.next_connect_at = Some(self.now());
        if self.master.is_some() {
            // Connected while recovering (docs/recovery-rules.md R4): re-register there.
            self.start_registration();
        }
        self.next_disk_check = Some(self.now() + self.config.disk_watch_interval);
        info!(target: "revenant::agent", "recovery complete");
        Ok(())
    }

    /// docs/recovery-rules.md R12 (docs/design.md D57): the executors still awaited at
    /// the re-registration deadline (`late`) are destroyed, their tasks end, and
    /// recovery finishes.
    pub(super) fn reregistration_timed_out(
        &mut self,
        late: Vec<admission::Late>,
    ) -> Result<(), AgentError> {
        for executor in late {
            let (fid, eid) = (&executor.framework, &executor.executor);
            crate::coverage::point!("agent_executor_reregistration_timeout");
            info!(target: "revenant::agent", framework = %fid, executor = %eid, "executor did not re-register in time: destroying it");
            self.perform(admission::kills(&executor), None);
            let message = format!(
                "Executor did not re-register within {:?}",
                self.config.executor_reregistration_timeout
            );
            let state = if broken!(self.config.breakage.reregistration_timeout_fails_tasks) {
                proto::TaskState::TaskFailed
            } else {
                proto::TaskState::TaskLost
            };
            self.executor_terminated(
                fid,
                eid,
                state,
                TaskReason::ReasonExecutorReregistrationTimeout,
                &message,
            )?;
        }
        self.finish_recovery()
    }

    /// `--executor_reregistration_retry_interval`: executor connections that have said
    /// nothing yet (their re-registration may have been lost) are asked again
    /// (docs/recovery-rules.md R12).
    pub(super) fn retry_executor_reconnect(&mut self, now: Instant) {
        let interval = self
            .config
            .executor_reregistration_retry_interval
            .unwrap_or(IDLE_WAIT);
        self.reconnect_retry_at = Some(now + interval);
        if self.unidentified.is_empty() {
            return;
        }
        info!(target: "revenant::agent",
            connections = self.unidentified.len(),
            "asking executors that have not re-registered to reconnect"
        );
        for outbox in self.unidentified.values() {
            outbox.send(Body::ReconnectExecutor(proto::ReconnectExecutor {
                agent_id: self.info.id.clone(),
            }));
        }
    }

    pub(super) async fn cleanup(&mut self) -> AgentExit {
        let live: Vec<(FrameworkId, ExecutorId, Option<ProcessId>)> = self
            .executors()
            .filter(|(_, _, e)| e.phase == ExecutorPhase::Reregistering)
            .map(|(f, e, x)| (f.clone(), e.clone(), x.process.clone()))
            .collect();
        for (fid, eid, process) in live {
            crate::coverage::point!("agent_cleanup_shuts_executor_down");
            info!(target: "revenant::agent", framework = %fid, executor = %eid, "recover=cleanup: shutting executor down");
            if let Some(process) = process {
                self.perform(vec![Effect::Kill { process }], None);
            }
        }
        info!(target: "revenant::agent", "recover=cleanup: exiting without registering");
        AgentExit::CleanedUp
    }
}

/// Test-only (docs/design.md D11): the warnings on which the `panic_on_recovery_warning`
/// breakage panics, every one but a reboot's. Read only with that switch on, so the
/// mutation measurement leaves it out by name (`.cargo/mutants.toml`).
fn breakage_panics_on(warnings: &[crate::checkpoint::Warning]) -> bool {
    warnings
        .iter()
        .any(|w| !matches!(w.kind, crate::checkpoint::WarningKind::Rebooted))
}
