//! The master's frameworks: registration and failover, teardown and removal, status
//! updates forwarded to them, and reconciliation answers.

use std::collections::{BTreeMap, BTreeSet};

use tracing::{info, warn};

use super::decisions::{self, AgentVerdict, ReconcileAnswer};
use super::{
    new_id, AgentPhase, CompletedFramework, Effect, FrameworkRecord, Master, Peer,
    TORN_DOWN_MESSAGE,
};
use crate::ids::{AgentId, FrameworkId, TaskId};
use crate::proto::envelope::Body;
use crate::proto::{
    self, FrameworkInfo, StatusUpdate, StatusUpdateMessage, TaskReason, TaskReport,
};
use crate::security::acls::Action;
use crate::wire::ConnectionId;

impl Master {
    /// Whether a framework was torn down (by this master, or in the registry it read).
    pub(super) fn is_torn_down(&self, framework: &FrameworkId) -> bool {
        self.completed_frameworks.contains_key(framework)
            || self.registry.is_torn_down(framework.as_str())
    }

    /// A framework tears itself down: it is recorded as torn down (durably, before anyone
    /// hears of it), removed from the active frameworks, its tasks recorded TASK_KILLED in
    /// its completed entry, and every connected agent told to shut it down (an agent that
    /// is away hears it when it re-registers).
    pub(super) fn teardown_framework(&mut self, connection: ConnectionId, framework: FrameworkId) {
        let from_itself = matches!(self.connections.get(&connection), Some(Peer::Framework(peer)) if *peer == framework);
        // docs/security.md SEC42: a connection that registered nothing is an operator's
        // (`revenant teardown`); the teardown_frameworks ACL decides for it.
        let from_operator = matches!(self.connections.get(&connection), Some(Peer::Unknown));
        let outbox = self
            .connections
            .contains_key(&connection)
            .then_some(connection);
        if self.is_torn_down(&framework) {
            if let Some(outbox) = outbox {
                let answer = Body::FrameworkRemoved(proto::FrameworkRemoved {
                    framework_id: framework.to_string(),
                    message: self.removed_message(&framework),
                });
                self.send(outbox, answer);
            }
            return;
        }
        if !from_itself && !from_operator {
            warn!(framework = %framework, "teardown from a connection not registered as that framework: refused");
            if let Some(outbox) = outbox {
                self.send(
                    outbox,
                    Body::FrameworkError(proto::FrameworkError {
                        framework_id: framework.to_string(),
                        message: format!(
                            "a framework may tear down only itself, not framework {framework}"
                        ),
                    }),
                );
            }
            return;
        }
        if !self.frameworks.contains_key(&framework) {
            warn!(framework = %framework, "teardown of a framework this master does not know: refused");
            if let Some(outbox) = outbox {
                self.send(
                    outbox,
                    Body::FrameworkError(proto::FrameworkError {
                        framework_id: framework.to_string(),
                        message: format!("no framework {framework} is known to this master"),
                    }),
                );
            }
            return;
        }
        // docs/security.md SEC22, SEC23: the tearing-down principal must be allowed to
        // tear down frameworks of the framework's principal.
        let framework_principal = self
            .frameworks
            .get(&framework)
            .and_then(|f| f.principal.clone());
        if let Err(refusal) = self.authorize(
            self.principal(connection),
            Action::TeardownFramework {
                framework_principal: framework_principal.as_deref(),
            },
        ) {
            self.refuse_framework(connection, framework.as_str(), &refusal);
            return;
        }
        // Its scheduler, when an operator tears it down, hears it as a framework
        // registering with a removed id does (SEC42).
        let scheduler = self
            .frameworks
            .get(&framework)
            .and_then(|f| f.outbox)
            .filter(|scheduler| *scheduler != connection);
        let (tasks, killed, agents) = self.remove_framework(&framework, TORN_DOWN_MESSAGE);
        info!(framework = %framework, tasks, killed, agents_told = agents, "framework torn down");
        if let Some(entry) = self.connections.get_mut(&connection) {
            *entry = Peer::Unknown;
        }
        if let Some(scheduler) = scheduler {
            if let Some(entry) = self.connections.get_mut(&scheduler) {
                *entry = Peer::Unknown;
            }
            self.send(
                scheduler,
                Body::FrameworkRemoved(proto::FrameworkRemoved {
                    framework_id: framework.to_string(),
                    message: TORN_DOWN_MESSAGE.into(),
                }),
            );
        }
        if let Some(outbox) = outbox {
            self.send(
                outbox,
                Body::FrameworkRemoved(proto::FrameworkRemoved {
                    framework_id: framework.to_string(),
                    message: "framework torn down".into(),
                }),
            );
        }
    }

    /// What a scheduler registering with the id of a removed framework is told.
    pub(super) fn removed_message(&self, framework: &FrameworkId) -> String {
        self.completed_frameworks
            .get(framework)
            .map_or_else(|| TORN_DOWN_MESSAGE.to_owned(), |c| c.message.clone())
    }

    /// Removes a framework for good (a teardown, or its failover timeout ran out): it is
    /// recorded in the registry (durably, before anyone hears of it), removed from the
    /// active frameworks, its tasks recorded TASK_KILLED in its completed entry (the
    /// framework hears nothing of them), its queued tasks dropped and every connected
    /// agent told to shut it down (an agent that is away hears it when it re-registers).
    /// Returns its task count, how many were killed and how many agents were told. (Should
    /// the registry write fail, the driver stops the master before anyone hears: D77.)
    pub(super) fn remove_framework(
        &mut self,
        framework: &FrameworkId,
        message: &str,
    ) -> (usize, usize, usize) {
        // docs/design.md D77.
        let write = self.registry.stage_tear_down(framework.as_str(), message);
        self.record(write);
        let name = self
            .frameworks
            .remove(framework)
            .map(|f| f.info.name)
            .unwrap_or_default();
        let mut completed = CompletedFramework {
            name,
            tasks: BTreeMap::new(),
            message: message.to_owned(),
        };
        let mut agents = 0;
        let mut killed = 0;
        for record in self.agents.values_mut() {
            let keys: Vec<(FrameworkId, TaskId)> = record
                .tasks
                .keys()
                .filter(|(f, _)| f == framework)
                .cloned()
                .collect();
            for key in keys {
                let mut task = record.tasks.remove(&key).expect("listed above");
                if !crate::domain::task_state::is_terminal(task.state()) {
                    task.state = proto::TaskState::TaskKilled as i32;
                    killed += 1;
                }
                completed.tasks.insert(key.1, task);
            }
            record.pending_kills.retain(|(f, _)| f != framework);
            if record.phase == AgentPhase::Connected {
                if let Some(agent) = record.outbox {
                    agents += 1;
                    self.effects.push(Effect::Send {
                        to: agent,
                        body: Body::ShutdownFramework(proto::ShutdownFramework {
                            framework_id: framework.to_string(),
                        }),
                    });
                }
            }
        }
        self.pending_tasks.retain(|(f, _)| f != framework);
        let tasks = completed.tasks.len();
        self.completed_frameworks
            .insert(framework.clone(), completed);
        (tasks, killed, agents)
    }

    pub(super) fn master_update(
        &self,
        task: &TaskReport,
        state: proto::TaskState,
        reason: TaskReason,
        message: &str,
    ) -> StatusUpdate {
        // Master-made updates carry no uuid: nothing acknowledges them (docs/design.md
        // D21).
        crate::domain::status_update::new(
            crate::domain::status_update::Fields {
                framework_id: &task.framework_id,
                executor_id: &task.executor_id,
                task_id: &task.task_id,
                state,
                reason,
                message,
                timestamp: self.now.wall_seconds,
            },
            crate::domain::status_update::Sender::Master,
        )
    }

    pub(super) fn send_to_framework(&mut self, framework: &FrameworkId, update: StatusUpdate) {
        if let Some(outbox) = self.frameworks.get(framework).and_then(|f| f.outbox) {
            self.send(
                outbox,
                Body::StatusUpdate(StatusUpdateMessage {
                    update: Some(update),
                }),
            );
        }
    }

    pub(super) fn status_update(&mut self, connection: ConnectionId, update: StatusUpdate) {
        let framework = FrameworkId::new(update.framework_id.clone());
        let agent = AgentId::new(update.agent_id.clone());
        let status = update.status.clone().unwrap_or_default();
        let key = (framework.clone(), TaskId::new(status.task_id.clone()));
        // docs/recovery-rules.md R7: accepted only on the connection the agent is
        // registered on; R6: a removed agent's update is refused and never forwarded.
        let registered = self
            .agents
            .get(&agent)
            .is_some_and(|a| a.phase == AgentPhase::Connected && a.outbox == Some(connection));
        let removed =
            !registered && (self.is_removed(&agent) || self.removed_peer(connection).is_some());
        match decisions::status_update(registered, removed) {
            AgentVerdict::Accept => {}
            AgentVerdict::ShutDown => {
                crate::coverage::point!("master_removed_agent_refused");
                info!(agent = %agent, task = %status.task_id, state = status.state().as_str_name(), "status update from a removed agent: refused, telling it to shut down");
                self.tell_removed_agent(connection);
                return;
            }
            AgentVerdict::Ignore => {
                info!(agent = %agent, task = %status.task_id, state = status.state().as_str_name(), "status update on a connection the agent is not registered on: dropped");
                return;
            }
        }
        if self.is_torn_down(&framework) {
            // The agent missed the shutdown (or has not handled it yet): tell it again.
            info!(framework = %framework, task = %status.task_id, "status update of a torn-down framework: dropped, shutting the framework down on its agent");
            if let Some(outbox) = self.agents.get(&agent).and_then(|a| a.outbox) {
                self.send(
                    outbox,
                    Body::ShutdownFramework(proto::ShutdownFramework {
                        framework_id: framework.to_string(),
                    }),
                );
            }
            return;
        }
        if let Some(record) = self.agents.get_mut(&agent) {
            let entry = record.tasks.entry(key).or_insert_with(|| TaskReport {
                task_id: status.task_id.clone(),
                framework_id: framework.to_string(),
                executor_id: update.executor_id.clone(),
                state: status.state,
            });
            let forget = broken!(self.config.breakage.master_forgets_terminal_updates)
                && crate::domain::task_state::is_terminal(update.latest_state());
            if !forget {
                entry.state = update.latest_state;
            }
        }
        self.send_to_framework(&framework, update);
    }

    /// Whether agents this master knows may still re-register and report the principals
    /// of their frameworks: within `agent_reregister_timeout` of its election, while one
    /// it knows has not been heard (docs/security.md SEC40).
    fn agents_may_still_report(&self) -> bool {
        self.now.at.saturating_duration_since(self.elected_at)
            < self.config.agent_reregister_timeout
            && self
                .agents
                .values()
                .any(|a| a.phase == AgentPhase::Disconnected && !a.heard_since_election)
    }

    /// The registrations held by SEC40, once no agent may report more: each is decided
    /// as if it arrived now (a connection closed meanwhile is forgotten).
    pub(super) fn registrations_after_recovery(&mut self) {
        if self.deferred_registrations.is_empty() || self.agents_may_still_report() {
            return;
        }
        for (connection, info) in std::mem::take(&mut self.deferred_registrations) {
            if self.connections.contains_key(&connection) {
                self.register_framework(connection, info);
            }
        }
    }

    pub(super) fn register_framework(&mut self, connection: ConnectionId, mut info: FrameworkInfo) {
        let reregistering = !info.id.is_empty();
        if info.id.is_empty() {
            info.id = new_id(&*self.random, "framework");
        }
        let id = FrameworkId::new(info.id.clone());
        let outbox = self
            .connections
            .contains_key(&connection)
            .then_some(connection);
        if self.is_torn_down(&id) {
            info!(framework = %id, "a removed framework tried to register: refused");
            if let Some(outbox) = outbox {
                let answer = Body::FrameworkRemoved(proto::FrameworkRemoved {
                    framework_id: id.to_string(),
                    message: self.removed_message(&id),
                });
                self.send(outbox, answer);
            }
            return;
        }
        // docs/security.md SEC22, SEC23: its principal must be allowed its role; a
        // refused framework is not added and its connection stays unidentified.
        let role = if info.role.is_empty() {
            "*"
        } else {
            info.role.as_str()
        };
        let principal = self.principal(connection).map(str::to_owned);
        if let Err(refusal) =
            self.authorize(principal.as_deref(), Action::RegisterFramework { role })
        {
            self.refuse_framework(connection, id.as_str(), &refusal);
            return;
        }
        // docs/security.md SEC40: with the id of a framework this master does not know
        // yet, under a principal, the registration waits until the agents that may hold
        // the framework have reported its principal (or can no longer).
        // The registry names the principal of every framework registered since it kept
        // them (SEC43), so only one it does not name waits.
        let recorded = self.registry.framework_principal(id.as_str());
        if reregistering
            && principal.is_some()
            && !self.frameworks.contains_key(&id)
            && recorded.is_none()
            && self.agents_may_still_report()
        {
            info!(framework = %id, "framework registration deferred: its principal is known once the agents have re-registered");
            self.deferred_registrations.push((connection, info));
            return;
        }
        // docs/security.md SEC40: a framework's principal cannot change; a registration
        // under another one is refused and nothing changes (its scheduler stays).
        // Known to this master (registered here, or reported by an agent), or else to
        // the registry a master before it wrote (SEC43).
        let registered = self
            .frameworks
            .get(&id)
            .map(|f| f.principal.as_deref())
            .or(recorded);
        let unchanged = crate::security::framework_principal::check(
            id.as_str(),
            registered,
            principal.as_deref(),
        )
        .or_else(|changed| {
            if broken!(self.config.breakage.master_ignores_framework_principal) {
                Ok(())
            } else {
                Err(changed)
            }
        });
        if let Err(changed) = unchanged {
            warn!(framework = %id, refusal = %changed, "framework registration refused");
            if let Some(outbox) = outbox {
                self.send(
                    outbox,
                    Body::FrameworkError(proto::FrameworkError {
                        framework_id: id.to_string(),
                        message: changed.to_string(),
                    }),
                );
            }
            return;
        }
        // SEC43: the principal is in the registry before the framework hears it is
        // registered, so that every later leader knows it.
        let write = self
            .registry
            .stage_framework(id.as_str(), principal.as_deref());
        self.record(write);
        // SEC40: the master names the principal in the framework's information, so that
        // agents checkpoint it and report it to a newly elected master.
        info.principal = principal.clone().unwrap_or_default();
        if let Some(entry) = self.connections.get_mut(&connection) {
            *entry = Peer::Framework(id.clone());
        }
        info!(framework = %id, "framework registered");
        self.log_principal(connection, "framework", id.as_str());
        if let Some(outbox) = outbox {
            let answer = Body::FrameworkRegistered(proto::FrameworkRegistered {
                framework_id: id.to_string(),
                leader_epoch: self.leadership.epoch,
            });
            self.send(outbox, answer);
        }
        // A scheduler registering with the id of one still connected fails it over: the
        // previous scheduler's connection is closed (Mesos: "Framework failed over").
        let previous = self
            .frameworks
            .get(&id)
            .and_then(|f| f.outbox)
            .filter(|old| *old != connection);
        if let Some(old) = previous {
            info!(framework = %id, "framework failed over: closing the previous scheduler's connection");
            self.connections.remove(&old);
            self.close(old);
        }
        let record = self.frameworks.entry(id).or_insert(FrameworkRecord {
            info: info.clone(),
            principal: None,
            outbox: None,
            missed_pongs: 0,
            disconnected_at: None,
        });
        // Equal to the one it had, if it had one (SEC40).
        record.principal = principal;
        record.info = info;
        record.outbox = outbox;
        record.missed_pongs = 0;
        // Back in time: it keeps its tasks (docs/lifecycle-rules.md rule 8).
        record.disconnected_at = None;
    }

    /// Answers a reconciliation. Known tasks get their latest state. A task named by the
    /// framework that the master does not know is reported lost once no agent that could
    /// hold it may still re-register: at once when every agent its registry knows has
    /// re-registered with this master (or there is none), and otherwise once
    /// `agent_reregister_timeout` has passed since this master was elected
    /// (docs/lifecycle-rules.md rule 13).
    pub(super) fn reconcile(&mut self, framework: FrameworkId, task_ids: Vec<String>) {
        let known: BTreeMap<String, TaskReport> = self
            .agents
            .values()
            .flat_map(|a| {
                a.tasks
                    .iter()
                    .filter(|((f, _), _)| *f == framework)
                    .map(|((_, t), r)| (t.to_string(), r.clone()))
            })
            .collect();
        let queued: BTreeSet<String> = self
            .pending_tasks
            .iter()
            .filter(|(f, _)| *f == framework)
            .map(|(_, t)| t.task_id.clone())
            .collect();
        // Test-only breakage of docs/task-lifecycle.md L30: an earlier state, not the latest.
        let stale = broken!(self.config.breakage.master_reconciles_stale_state);
        let latest = move |task: &TaskReport| {
            if stale {
                proto::TaskState::TaskStaging
            } else {
                task.state()
            }
        };
        if task_ids.is_empty() {
            for task in known.values() {
                let update = self.master_update(
                    task,
                    latest(task),
                    TaskReason::ReasonReconciliation,
                    "Reconciliation",
                );
                self.send_to_framework(&framework, update);
            }
            return;
        }
        let settled = self.now.at.saturating_duration_since(self.elected_at)
            >= self.config.agent_reregister_timeout
            || broken!(self.config.breakage.master_reconciles_unknown_at_once);
        let awaited = self
            .agents
            .values()
            .any(|a| a.phase == AgentPhase::Disconnected && !a.heard_since_election)
            || broken!(self.config.breakage.master_waits_to_reconcile_unknown_tasks);
        for (task_id, answer) in
            decisions::reconcile_explicit(&known, &queued, &task_ids, settled, awaited)
        {
            match answer {
                ReconcileAnswer::Known(_)
                    if broken!(self.config.breakage.master_skips_known_reconciliations) => {}
                ReconcileAnswer::Known(task) => {
                    let update = self.master_update(
                        &task,
                        latest(&task),
                        TaskReason::ReasonReconciliation,
                        "Reconciliation",
                    );
                    self.send_to_framework(&framework, update);
                }
                ReconcileAnswer::Lost => {
                    if settled {
                        crate::coverage::point!("master_reconciled_unknown_task");
                    } else {
                        crate::coverage::point!("master_reconciled_unknown_task_at_once");
                    }
                    info!(framework = %framework, task = %task_id, "reconciliation: task unknown to the master: lost");
                    let report = TaskReport {
                        task_id: task_id.clone(),
                        framework_id: framework.to_string(),
                        executor_id: String::new(),
                        state: proto::TaskState::TaskLost as i32,
                    };
                    let update = self.master_update(
                        &report,
                        proto::TaskState::TaskLost,
                        TaskReason::ReasonReconciliation,
                        "Reconciliation: task unknown to the master",
                    );
                    self.send_to_framework(&framework, update);
                }
                ReconcileAnswer::Wait => {}
            }
        }
    }
}
