//! The status update flow through the agent: updates from executors are checkpointed,
//! then acknowledged and handed to the status update manager (`status_updates`), forwarded
//! to the master, and closed by the framework's acknowledgements; the agent's own updates
//! for tasks whose executor cannot speak.

use super::writes::Run;
use super::*;

impl Agent {
    pub(super) fn executor_update(
        &mut self,
        fid: &FrameworkId,
        eid: &ExecutorId,
        update: StatusUpdate,
    ) -> Result<(), AgentError> {
        if self.frameworks.get(fid).is_some_and(|f| f.shutting_down) {
            info!(target: "revenant::agent", framework = %fid, task = %update_task(&update), "status update of a framework being shut down: dropped");
            return Ok(());
        }
        let checkpoint =
            self.frameworks.get(fid).is_some_and(|f| f.info.checkpoint) && self.config.checkpoint;
        let uuid = update.uuid.clone();
        let task = update_task(&update);
        let classified = match self.updates.classify(fid, &update) {
            Err(error) => {
                warn!(target: "revenant::agent", framework = %fid, %error, "invalid status update dropped");
                return Ok(());
            }
            // The stream may be gone (its terminal update was acknowledged) while the
            // task is still known terminal: refused all the same (docs/stream-rules.md S1).
            Ok(Classified::New) if self.task_terminal(fid, &TaskId::new(task.clone())) => {
                Classified::AfterTerminal
            }
            Ok(classified) => classified,
        };
        match classified {
            Classified::Duplicate => {
                crate::coverage::point!("agent_duplicate_update_reacknowledged");
                info!(target: "revenant::agent", framework = %fid, task = %task, uuid = %update_uuid(&update), "duplicate status update: re-acknowledging");
            }
            Classified::AfterTerminal => {
                // Neither checkpointed nor forwarded; acknowledged so that the executor
                // stops resending it (docs/stream-rules.md S1).
                crate::coverage::point!("agent_update_after_terminal_refused");
                info!(target: "revenant::agent", framework = %fid, task = %task, uuid = %update_uuid(&update), state = update_state(&update), "status update after the task's terminal update: refused, re-acknowledging");
            }
            Classified::New => self.accept_update(fid, update, checkpoint)?,
        }
        // The update is durable (or a duplicate): now the executor may forget it. (Under
        // group commit the record is synced at the end of the batch, and this
        // acknowledgement is held until then.)
        // docs/design.md D72.
        if let Some(to) = self
            .executor_mut(fid, eid)
            .and_then(|e| e.outbox.as_ref().map(|o| o.id()))
        {
            info!(target: "revenant::agent", framework = %fid, task = %task, uuid = %Uuid::from_bytes(&uuid).unwrap_or_default(), "acknowledged status update to executor");
            let ack = decide::executor_ack(to, &self.info.id, fid, task, uuid);
            self.perform(vec![ack], None);
        }
        Ok(())
    }

    /// Checkpoints (if the framework checkpoints) and queues a new update.
    pub(super) fn accept_update(
        &mut self,
        fid: &FrameworkId,
        mut update: StatusUpdate,
        checkpoint: bool,
    ) -> Result<(), AgentError> {
        if self.frameworks.get(fid).is_some_and(|f| f.shutting_down) {
            return Ok(());
        }
        let tid = TaskId::new(update_task(&update));
        update.agent_id = self.info.id.clone();
        if let Some(status) = update.status.as_mut() {
            status.agent_id = self.info.id.clone();
        }
        let state = update_state_enum(&update);
        let eid = self.find_task(fid, &tid);
        // docs/design.md D72.
        let run = eid.as_ref().map(|eid| self.run_of(fid, eid));
        let durable = checkpoint && !broken!(self.config.breakage.skip_update_checkpoint);
        self.perform_steps(decide::update_write(run, durable, &tid, &update), None)?;
        info!(target: "revenant::agent", framework = %fid, task = %tid, state = state.as_str_name(), uuid = %update_uuid(&update), checkpointed = checkpoint && eid.is_some(), "status update accepted");
        if let Some(eid) = &eid {
            if let Some(entry) = self
                .executor_mut(fid, eid)
                .and_then(|e| e.tasks.get_mut(&tid))
            {
                if !is_terminal(entry.state) {
                    entry.state = state;
                }
            }
        }
        let now = self.now();
        if let Some(update) = self.updates.accept(fid, update, now) {
            self.forward(update);
        }
        Ok(())
    }

    pub(super) fn forward(&mut self, mut update: StatusUpdate) {
        if self.phase != Phase::Running {
            return;
        }
        let fid = FrameworkId::new(update.framework_id.clone());
        let tid = TaskId::new(update_task(&update));
        if let Some(eid) = self.find_task(&fid, &tid) {
            update.latest_state = self.frameworks[&fid].executors[&eid].tasks[&tid].state as i32;
        }
        info!(target: "revenant::agent", task = %tid, state = update_state(&update), uuid = %update_uuid(&update), "forwarding status update to master");
        self.send_to_master(Body::StatusUpdate(StatusUpdateMessage {
            update: Some(update),
        }));
    }

    pub(super) fn acknowledgement(
        &mut self,
        ack: proto::Acknowledgement,
    ) -> Result<(), AgentError> {
        let fid = FrameworkId::new(ack.framework_id.clone());
        let tid = TaskId::new(ack.task_id.clone());
        let Some(uuid) = Uuid::from_bytes(&ack.uuid) else {
            warn!(target: "revenant::agent", task = %tid, "acknowledgement without a uuid dropped");
            return Ok(());
        };
        if let Err(error) = self.updates.check_ack(&fid, &tid, uuid) {
            info!(target: "revenant::agent", task = %tid, %uuid, reason = error.reason(), "acknowledgement ignored");
            return Ok(());
        }
        let checkpoint =
            self.frameworks.get(&fid).is_some_and(|f| f.info.checkpoint) && self.config.checkpoint;
        let eid = self.find_task(&fid, &tid);
        // docs/design.md D73.
        let run = eid.as_ref().map(|eid| self.run_of(&fid, eid));
        self.perform_steps(decide::ack_write(run, checkpoint, &tid, uuid), None)?;
        let now = self.now();
        let head = broken!(self.config.breakage.resend_acknowledged_update)
            .then(|| {
                self.updates
                    .streams()
                    .get(&(fid.clone(), tid.clone()))
                    .and_then(|s| s.pending().next().cloned())
            })
            .flatten();
        let (next, terminated) = self.updates.acknowledged(&fid, &tid, uuid, now);
        info!(target: "revenant::agent", task = %tid, %uuid, terminal = terminated, "status update acknowledged by framework");
        if let Some(next) = next {
            self.forward(next);
            if let Some(head) = head {
                // Test-only breakage: an acknowledged update again, behind a later one.
                self.forward(head);
            }
        }
        if terminated && broken!(self.config.breakage.second_terminal_update) {
            let update = self.make_update(
                &fid,
                &eid.clone().unwrap_or_default(),
                &tid,
                proto::TaskState::TaskFailed,
                TaskReason::ReasonNone,
                "breakage: terminal twice",
            );
            self.forward(update);
        }
        if terminated && broken!(self.config.breakage.resurrect_after_terminal) {
            let update = self.make_update(
                &fid,
                &eid.clone().unwrap_or_default(),
                &tid,
                proto::TaskState::TaskRunning,
                TaskReason::ReasonNone,
                "breakage: resurrected",
            );
            self.forward(update);
        }
        if terminated {
            if let Some(eid) = eid {
                self.maybe_complete_executor(&fid, &eid)?;
            }
        }
        Ok(())
    }

    /// The current run of executor `eid` of `fid` (which must exist).
    fn run_of(&self, fid: &FrameworkId, eid: &ExecutorId) -> Run {
        let container = &self.frameworks[fid].executors[eid].container;
        Run::new(&self.agent_id(), fid, eid, container)
    }

    pub(super) fn make_update(
        &self,
        fid: &FrameworkId,
        eid: &ExecutorId,
        tid: &TaskId,
        state: proto::TaskState,
        reason: TaskReason,
        message: &str,
    ) -> StatusUpdate {
        let uuid = self.env.random.uuid().to_vec();
        let timestamp = self.env.wall_seconds();
        status_update::new(
            status_update::Fields {
                framework_id: fid.as_str(),
                executor_id: eid.as_str(),
                task_id: tid.as_str(),
                state,
                reason,
                message,
                timestamp,
            },
            status_update::Sender::Agent {
                agent_id: self.info.id.clone(),
                uuid,
            },
        )
    }
}
