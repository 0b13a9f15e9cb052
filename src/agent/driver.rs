//! The event loop: one batch of waiting events at a time under group commit
//! (`Agent::batch`, in `group_commit.rs`), the tick and its deadlines, and the dispatch of every incoming
//! message to the room that handles it.

use super::group_commit::Durability;
use super::*;

impl Agent {
    pub(super) async fn event_loop(
        &mut self,
        mut inbox: mpsc::UnboundedReceiver<Event>,
    ) -> Result<AgentExit, AgentError> {
        let mut next_tick = self.now();
        let unregister = self.config.unregister.clone();
        loop {
            let now = self.now();
            let wait = next_tick.saturating_duration_since(now);
            let sleep = self.env.clock.sleep(wait);
            let asked_to_leave = async {
                match &unregister {
                    Some(notify) => notify.notified().await,
                    None => std::future::pending().await,
                }
            };
            // docs/recovery-latency.md P11-P16: a group's sync resolving comes first;
            // no new event while the pipeline is full.
            let busy = self.pipeline.busy();
            let room = self.pipeline.has_room();
            tokio::select! {
                biased;
                durable = self.pipeline.oldest_done(), if busy => {
                    self.group_durable(durable)?;
                    next_tick = next_tick.min(self.next_deadline());
                }
                event = inbox.recv(), if room => {
                    let Some(event) = event else { continue };
                    if let Some(exit) = self.handle_events(event, &mut inbox)? {
                        self.drain_groups()?;
                        return Ok(exit);
                    }
                    // The events may have armed an earlier timer.
                    next_tick = next_tick.min(self.next_deadline());
                }
                _ = asked_to_leave => {
                    self.drain_groups()?;
                    if let Some(exit) = self.unregister() {
                        return Ok(exit);
                    }
                    next_tick = next_tick.min(self.next_deadline());
                }
                _ = sleep, if room => {
                    self.batch(Durability::Pipelined, |agent| agent.on_tick())?;
                    if self.unregister_deadline.is_some_and(|at| self.now() >= at) {
                        self.drain_groups()?;
                        info!(target: "revenant::agent", "the master did not answer the unregistration: leaving anyway");
                        return Ok(self.shut_down("unregistered by the operator".into()));
                    }
                    next_tick = self.next_deadline();
                }
            }
        }
    }

    /// Handles `first` and, with group commit on, the events already waiting behind it
    /// (up to [`AgentConfig::status_update_batch`] in all) as one batch.
    pub(super) fn handle_events(
        &mut self,
        first: Event,
        inbox: &mut mpsc::UnboundedReceiver<Event>,
    ) -> Result<Option<AgentExit>, AgentError> {
        let limit = self.config.status_update_batch;
        self.batch(Durability::Pipelined, |agent| {
            let mut outcome = agent.handle_event(first)?;
            let mut handled = 1;
            while outcome.is_none() && handled < limit {
                let Ok(event) = inbox.try_recv() else {
                    break;
                };
                outcome = agent.handle_event(event)?;
                handled += 1;
            }
            Ok(outcome)
        })
    }

    /// Sends `body` on `outbox`, or holds it until the current batch is durable.
    pub(super) fn send(&mut self, outbox: &Outbox, body: Body) -> bool {
        match &mut self.held {
            Some(held) => {
                held.push((outbox.clone(), body));
                true
            }
            None => outbox.send(body),
        }
    }

    pub(super) fn handle_event(&mut self, event: Event) -> Result<Option<AgentExit>, AgentError> {
        match event {
            Event::MasterConnected(stream, address) => {
                self.master_connecting = false;
                let outbox = self.serve(stream, address.clone());
                info!(target: "revenant::agent", master = %address, "connected to master");
                self.master = Some(outbox);
                // docs/recovery-rules.md R4: a recovering agent says so, answers pings
                // and re-registers later.
                let recovering = (self.phase == Phase::Recovering).then_some(self.info.id.as_str());
                let effects = self
                    .link
                    .connected(self.now(), recovering, self.env.random.as_ref());
                self.perform(effects, None);
            }
            Event::MasterConnectFailed(address, error) => {
                self.master_connecting = false;
                info!(target: "revenant::agent", master = %address, %error, "failed to connect to master");
                self.next_master();
            }
            Event::ExecutorConnected(stream, peer) => {
                // docs/security.md SEC4: a bounded number of connections not yet
                // identified; the oldest makes room.
                if self.unidentified.len() >= wire::UNIDENTIFIED_CONNECTIONS_MAX {
                    if let Some((_, oldest)) = self.unidentified.pop_first() {
                        warn!(target: "revenant::agent", connection = %oldest.id(), %peer, "too many unidentified connections: the oldest closed");
                        oldest.close();
                    }
                }
                let outbox = self.serve(stream, peer);
                self.unidentified.insert(outbox.id(), outbox);
            }
            Event::Wire(Incoming::Closed(id, reason)) => self.connection_closed(id, &reason),
            Event::Wire(Incoming::Http(id, path)) => self.http(id, &path),
            Event::Wire(Incoming::Message(id, body)) => return self.handle_message(id, body),
        }
        Ok(None)
    }

    pub(super) fn connection_closed(&mut self, id: ConnectionId, reason: &str) {
        if self.master.as_ref().is_some_and(|m| m.id() == id) {
            info!(target: "revenant::agent", %reason, "master connection closed");
            self.master_lost();
            return;
        }
        self.unidentified.remove(&id);
        if let Some((fid, eid)) = self.executor_connections.remove(&id) {
            if let Some(executor) = self.executor_mut(&fid, &eid) {
                if executor.outbox.as_ref().is_some_and(|o| o.id() == id) {
                    executor.outbox = None;
                    info!(target: "revenant::agent", framework = %fid, executor = %eid, %reason, "executor disconnected");
                }
            }
        }
    }

    /// When the agent next has something to do without a message: the earliest armed
    /// timer, or the next executor liveness poll (every [`IDLE_WAIT`]).
    pub(super) fn next_deadline(&self) -> Instant {
        let now = self.now();
        let mut at = now + IDLE_WAIT;
        let mut consider = |candidate: Option<Instant>| {
            if let Some(candidate) = candidate {
                at = at.min(candidate.max(now + TICK_MIN));
            }
        };
        consider(self.reregister_deadline);
        consider(self.leader_poll_at(now));
        consider(self.unregister_deadline);
        consider(self.reconnect_retry_at);
        consider(self.wakes.next_release());
        if self.recovering_with_id() && self.master.is_none() && !self.master_connecting {
            consider(self.next_connect_at);
        }
        if self.phase != Phase::Recovering {
            if self.master.is_none() && !self.master_connecting {
                consider(self.next_connect_at);
            }
            for deadline in self.link.deadlines(self.master.is_some()) {
                consider(deadline);
            }
            consider(self.updates.next_retry());
        }
        consider(self.gc.next());
        consider(self.next_disk_check);
        consider(self.executors().filter_map(|(_, _, e)| e.kill_at).min());
        consider(self.next_registration_deadline());
        at
    }

    pub(super) fn on_tick(&mut self) -> Result<(), AgentError> {
        let now = self.now();
        self.pump_wakes();
        self.follow_leader(now);
        // docs/design.md D57.
        let executors = self
            .executors()
            .map(|(f, e, x)| (f, e, x.phase, x.process.as_ref()));
        if let Some(late) =
            admission::late_reregistrations(now, self.reregister_deadline, executors)
        {
            self.reregistration_timed_out(late)?;
        }
        if let Some(at) = self.reconnect_retry_at {
            if now >= at && self.phase == Phase::Recovering {
                self.retry_executor_reconnect(now);
            }
        }
        if self.recovering_with_id()
            && self.master.is_none()
            && !self.master_connecting
            && self.next_connect_at.is_some_and(|at| now >= at)
        {
            // docs/recovery-rules.md R4.
            self.connect_master();
        }
        if self.phase != Phase::Recovering {
            if self.master.is_none()
                && !self.master_connecting
                && self.next_connect_at.is_some_and(|at| now >= at)
            {
                self.connect_master();
            }
            // The registration's retries and the master's silence (docs/design.md D51).
            let connected = self.master.is_some();
            let effects = self.link.tick(now, connected, self.env.random.as_ref());
            self.perform(effects, None);
            if self.link.registered && broken!(self.config.breakage.update_retries_flood) {
                for update in self.updates.resume(now) {
                    self.forward(update);
                }
            }
            for update in self.updates.due_retries(now) {
                if broken!(self.config.breakage.update_retries_skipped) {
                    continue;
                }
                crate::coverage::point!("agent_update_retried");
                info!(target: "revenant::agent", task = %update_task(&update), uuid = %update_uuid(&update), "retrying status update");
                self.forward(update);
            }
        }
        self.kill_overdue_executors(now)?;
        self.registration_timed_out(now)?;
        self.check_executors()?;
        self.collect_garbage(now);
        Ok(())
    }

    pub(super) fn handle_message(
        &mut self,
        id: ConnectionId,
        body: Body,
    ) -> Result<Option<AgentExit>, AgentError> {
        let from_master = self.master.as_ref().is_some_and(|m| m.id() == id);
        if from_master {
            self.link.heard(self.now());
            return self.handle_master_message(body);
        }
        // docs/security.md SEC46: a connection's first frame is a registration; one that
        // says anything else first is closed, so it is never among those R12 asks again.
        let registration = matches!(
            body,
            Body::RegisterExecutor(_) | Body::ReregisterExecutor(_)
        );
        if !registration
            && self.unidentified.contains_key(&id)
            && !broken!(self.config.breakage.accept_unregistered_updates)
        {
            if let Some(outbox) = self.unidentified.remove(&id) {
                warn!(target: "revenant::agent", connection = %id, kind = wire::kind(&body), "first frame on an executor connection is not a registration: connection closed");
                outbox.close();
            }
            return Ok(None);
        }
        match body {
            Body::RegisterExecutor(message) => self.executor_registering(
                id,
                message.framework_id,
                message.executor_id,
                message.container_id,
                (&message.secret, &message.endpoint),
                None,
            )?,
            Body::ReregisterExecutor(message) => {
                let updates = message.updates.clone();
                self.executor_registering(
                    id,
                    message.framework_id,
                    message.executor_id,
                    message.container_id,
                    (&message.secret, &message.endpoint),
                    Some((updates, message.tasks)),
                )?
            }
            Body::StatusUpdate(StatusUpdateMessage {
                update: Some(update),
            }) => {
                // docs/security.md SEC16; the breakage lets a rogue's update through (SEC33).
                let forged = broken!(self.config.breakage.accept_unregistered_updates).then(|| {
                    let fid = FrameworkId::new(update.framework_id.clone());
                    (fid, ExecutorId::new(update.executor_id.clone()))
                });
                let sender = admission::update_sender(&self.executor_connections, id);
                let Some((fid, eid)) = sender.or(forged) else {
                    warn!(target: "revenant::agent", connection = %id, "status update from an unregistered connection: dropped");
                    return Ok(None);
                };
                self.executor_update(&fid, &eid, update)?;
            }
            other => {
                warn!(target: "revenant::agent", connection = %id, kind = wire::kind(&other), "unexpected message from an executor")
            }
        }
        Ok(None)
    }
}
