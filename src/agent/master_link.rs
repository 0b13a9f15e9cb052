//! The link to the leading master: connecting and following the leader, registration and
//! re-registration with back-off (docs/recovery-rules.md R13), the master's messages
//! (registered, pings, shutdown, checkpointed resources), unregistering.

use super::writes::Write;
use super::*;

impl Agent {
    /// Registration on the current master connection, after the first back-off delay
    /// (or at once: docs/recovery-rules.md R36), decided by the link (docs/design.md D49).
    pub(super) fn start_registration(&mut self) {
        let connected = self.master.is_some();
        let effects = self
            .link
            .start(self.now(), connected, self.env.random.as_ref());
        self.perform(effects, None);
    }

    /// docs/zookeeper.md Z6: a registration answer from a master whose leadership epoch
    /// is older than one already seen comes from a deposed leader. It is refused, and
    /// the agent looks for the leader elsewhere.
    pub(super) fn deposed_leader(&mut self, epoch: u64) -> bool {
        if self.link.deposed(epoch) {
            warn!(target: "revenant::agent",
                epoch,
                seen = self.link.epoch_seen,
                master = %self.master_address,
                "registration answer from a deposed leader (older epoch): refused"
            );
            self.master_lost();
            self.next_master();
            return true;
        }
        false
    }

    pub(super) fn master_lost(&mut self) {
        self.ask_for_leader();
        self.master = None;
        self.link.lost();
        self.updates.pause();
        if self.phase == Phase::Running {
            self.phase = Phase::Disconnected;
        }
        if self.phase == Phase::Disconnected || self.recovering_with_id() {
            let delay = self
                .env
                .random
                .duration_up_to(self.config.registration_backoff_factor);
            self.next_connect_at = Some(self.now() + delay);
        }
    }

    pub(super) fn next_master(&mut self) {
        if let Some(leader) = self.detected_leader() {
            // docs/zookeeper.md Z20: the leader the group names, not the next address.
            self.master_address = leader;
        } else if !self.config.masters.is_empty() {
            self.master_index = (self.master_index + 1) % self.config.masters.len();
            self.master_address = self.config.masters[self.master_index].clone();
        }
        let delay = self.link.next_delay(self.env.random.as_ref());
        self.next_connect_at = Some(self.now() + delay);
    }

    pub(super) fn connect_master(&mut self) {
        self.master_connecting = true;
        self.next_connect_at = None;
        let address = self.master_address.clone();
        let net = self.env.net.clone();
        let clock = self.env.clock.clone();
        let sender = self.inbox_sender.clone();
        self.tasks.spawn_local(async move {
            let event = match wire::connect(net, clock, address.clone(), CONNECT_TIMEOUT).await {
                Ok(stream) => Event::MasterConnected(stream, address),
                Err(error) => Event::MasterConnectFailed(address, error),
            };
            let _ = sender.send(event);
        });
    }

    pub(super) fn send_to_master(&mut self, body: Body) -> bool {
        match self.master.clone() {
            Some(master) => self.send(&master, body),
            None => false,
        }
    }

    pub(super) fn send_registration(&mut self) {
        let body = if self.info.id.is_empty() {
            info!(target: "revenant::agent", "registering with master");
            Body::RegisterAgent(proto::RegisterAgent {
                info: Some(self.info.clone()),
            })
        } else {
            let mut tasks = Vec::new();
            let mut executors = Vec::new();
            let mut frameworks = Vec::new();
            for (fid, framework) in &self.frameworks {
                frameworks.push(framework.info.clone());
                for (eid, executor) in &framework.executors {
                    if executor.phase != ExecutorPhase::Terminated {
                        executors.push(executor.info.clone());
                    }
                    for (tid, entry) in &executor.tasks {
                        let terminal_acked = is_terminal(entry.state)
                            && !self
                                .updates
                                .streams()
                                .contains_key(&(fid.clone(), tid.clone()));
                        if !terminal_acked {
                            tasks.push(TaskReport {
                                task_id: tid.to_string(),
                                framework_id: fid.to_string(),
                                executor_id: eid.to_string(),
                                state: entry.state as i32,
                            });
                        }
                    }
                    // A queued task is also in `tasks` (run_task records both): once.
                    for queued in executor
                        .queued
                        .iter()
                        .filter(|q| !executor.tasks.contains_key(&TaskId::new(q.task_id.clone())))
                    {
                        tasks.push(TaskReport {
                            task_id: queued.task_id.clone(),
                            framework_id: fid.to_string(),
                            executor_id: eid.to_string(),
                            state: proto::TaskState::TaskStaging as i32,
                        });
                    }
                }
            }
            info!(target: "revenant::agent", agent = %self.info.id, tasks = tasks.len(), "re-registering with master");
            Body::ReregisterAgent(ReregisterAgent {
                info: Some(self.info.clone()),
                frameworks,
                tasks,
                executors,
                // The master ignores this when it has a view of its own and sends
                // that view back (CheckpointResources).
                checkpointed_resources: self.checkpointed_resources.clone(),
            })
        };
        self.send_to_master(body);
    }

    /// The master's view of the resources this agent must checkpoint: `resources.info`
    /// is replaced with exactly those (durably: written, synced and renamed into place).
    pub(super) fn checkpoint_resources(
        &mut self,
        resources: Vec<Resource>,
    ) -> Result<(), AgentError> {
        if broken!(self.config.breakage.ignore_checkpoint_resources) {
            return Ok(());
        }
        if resources == self.checkpointed_resources {
            info!(target: "revenant::agent", resources = %describe_resources(&resources), "checkpointed resources unchanged");
            return Ok(());
        }
        if self.config.checkpoint {
            let write = Write::Resources(resources.clone());
            self.perform_steps(vec![write.into()], None)?;
            info!(target: "revenant::agent", resources = %describe_resources(&resources), "checkpointed resources");
        }
        self.checkpointed_resources = resources;
        Ok(())
    }

    pub(super) fn handle_master_message(
        &mut self,
        body: Body,
    ) -> Result<Option<AgentExit>, AgentError> {
        match body {
            Body::AgentRegistered(message) => {
                if self.deposed_leader(message.leader_epoch) {
                    return Ok(None);
                }
                self.registered_with(message.agent_id, message.reconciliations)?
            }
            Body::AgentReregistered(message) => {
                if self.deposed_leader(message.leader_epoch) {
                    return Ok(None);
                }
                self.registered_with(message.agent_id, message.reconciliations)?
            }
            Body::NotLeader(message) => {
                info!(target: "revenant::agent", leader = %message.leader, "master is not the leader");
                self.master = None;
                self.master_lost();
                if !message.leader.is_empty() {
                    self.master_address = message.leader;
                } else {
                    self.next_master();
                }
            }
            Body::Ping(ping) => {
                let effects = self.link.ping(ping.sequence);
                self.perform(effects, None);
            }
            Body::RunTask(message) => self.run_task(message)?,
            Body::KillTask(message) => self.kill_task(
                FrameworkId::new(message.framework_id),
                TaskId::new(message.task_id),
            )?,
            Body::Acknowledgement(ack) => self.acknowledgement(ack)?,
            Body::ShutdownFramework(message) => {
                self.shutdown_framework(FrameworkId::new(message.framework_id))?
            }
            Body::CheckpointResources(message) => {
                if message.agent_id == self.info.id {
                    self.checkpoint_resources(message.resources)?
                } else {
                    warn!(target: "revenant::agent", agent = %message.agent_id, "checkpoint_resources for another agent: dropped");
                }
            }
            Body::ShutdownAgent(message) => {
                info!(target: "revenant::agent", reason = %message.reason, "master asked the agent to shut down");
                return Ok(Some(self.shut_down(message.reason)));
            }
            other => warn!(target: "revenant::agent",
                kind = wire::kind(&other),
                "unexpected message from the master"
            ),
        }
        Ok(None)
    }

    /// Leaves the cluster for good: kills every executor and forgets the agent's id (the
    /// `latest` link), so that the next start registers as a new agent.
    pub(super) fn shut_down(&mut self, reason: String) -> AgentExit {
        let processes: Vec<ProcessId> = self
            .executors()
            .filter_map(|(_, _, e)| e.process.clone())
            .collect();
        let kills = processes
            .into_iter()
            .map(|process| Effect::Kill { process });
        self.perform(kills.collect(), None);
        let _ = self.store.forget_latest_agent();
        AgentExit::ShutDown(reason)
    }

    /// The operator asked the agent to leave (SIGUSR1): tell the master, which removes
    /// the agent, reports its tasks lost and answers with `ShutdownAgent`; without a
    /// master to tell, leave at once.
    pub(super) fn unregister(&mut self) -> Option<AgentExit> {
        if self.link.registered && self.master.is_some() && !self.info.id.is_empty() {
            crate::coverage::point!("agent_left_cluster");
            info!(target: "revenant::agent", agent = %self.info.id, "asked to leave the cluster: unregistering");
            let body = Body::UnregisterAgent(proto::UnregisterAgent {
                agent_id: self.info.id.clone(),
            });
            self.perform(vec![Effect::ToMaster(body)], None);
            self.unregister_deadline = Some(self.now() + UNREGISTER_TIMEOUT);
            return None;
        }
        info!(target: "revenant::agent", "asked to leave the cluster while not registered: shutting down");
        Some(self.shut_down("unregistered by the operator".into()))
    }

    pub(super) fn registered_with(
        &mut self,
        agent_id: String,
        reconciliations: Vec<TaskReport>,
    ) -> Result<(), AgentError> {
        if self.link.registered {
            return Ok(());
        }
        let first = self.info.id.is_empty();
        if first {
            self.info.id = agent_id.clone();
            // docs/design.md D75.
            let write = decide::agent_info_write(&self.info, self.config.checkpoint);
            self.perform_steps(write, None)?;
            info!(target: "revenant::agent", agent = %agent_id, "registered with master");
            // docs/lifecycle-rules.md rule 7.
            self.schedule_old_agents(&AgentId::new(agent_id.clone()));
            // Reserved resources (a role other than `*`) persist across agents and
            // reboots in `resources.info`.
            if let Some(reserved) = decide::reserved_write(
                &self.config.resources,
                &self.checkpointed_resources,
                self.config.checkpoint,
            ) {
                let write = Write::Resources(reserved.clone());
                self.perform_steps(vec![write.into()], None)?;
                info!(target: "revenant::agent", resources = %describe_resources(&reserved), "checkpointed resources");
                self.checkpointed_resources = reserved;
            }
        } else {
            info!(target: "revenant::agent", agent = %agent_id, reconciliations = reconciliations.len(), "re-registered with master");
            // Old agents scheduled by an earlier incarnation (docs/lifecycle-rules.md rule 7).
            self.schedule_old_agents(&AgentId::new(agent_id.clone()));
        }
        self.link.registered_at(self.now());
        self.registrations += 1;
        self.phase = Phase::Running;
        // Resume first, so that the reconciliation updates below are forwarded once, as
        // new updates, and not again as resumed ones.
        let now = self.now();
        if !broken!(self.config.breakage.no_resume_after_registration) {
            for update in self.updates.resume(now) {
                crate::coverage::point!("agent_update_resent_after_reregistration");
                info!(target: "revenant::agent", task = %update_task(&update), state = update_state(&update), "resending unacknowledged status update");
                self.forward(update);
            }
        }
        // Tasks the master thinks open here, after a re-registration or a retried first
        // registration (docs/stream-rules.md S2): those the agent does not know are lost.
        for report in reconciliations {
            let fid = FrameworkId::new(report.framework_id.clone());
            let tid = TaskId::new(report.task_id.clone());
            if self.find_task(&fid, &tid).is_none() {
                crate::coverage::point!("agent_master_task_unknown_reported_lost");
                info!(target: "revenant::agent", framework = %fid, task = %tid, "master knows a task the agent does not: reporting it lost");
                let update = self.make_update(
                    &fid,
                    &ExecutorId::new(report.executor_id),
                    &tid,
                    proto::TaskState::TaskLost,
                    TaskReason::ReasonReconciliation,
                    "Reconciliation: task unknown to the agent",
                );
                self.accept_update(&fid, update, false)?;
            }
        }
        Ok(())
    }
}
