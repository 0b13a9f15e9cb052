//! The master's agents and their health: registration, re-registration, recovering
//! agents, removal, and what a removed or stale agent is told.

use std::collections::{BTreeMap, BTreeSet};

use tracing::info;

use super::decisions::{self, AgentVerdict};
use super::{
    new_id, AgentPhase, AgentRecord, CompletedFramework, Effect, FrameworkRecord, Master, Peer,
    TORN_DOWN_MESSAGE,
};
use crate::ids::{AgentId, FrameworkId, TaskId};
use crate::proto::envelope::Body;
use crate::proto::{self, AgentInfo, Resource, TaskReason, TaskReport};
use crate::security::acls::Action;
use crate::wire::ConnectionId;

impl Master {
    /// docs/security.md SEC22, SEC23: an agent whose principal the `register_agents` ACL
    /// refuses is told to shut down and not admitted.
    fn agent_refused(&mut self, connection: ConnectionId) -> bool {
        if broken!(self.config.breakage.master_ignores_agent_acls) {
            return false;
        }
        let Err(refusal) = self.authorize(self.principal(connection), Action::RegisterAgent) else {
            return false;
        };
        info!(
            principal = self.principal(connection).unwrap_or("(none)"),
            "agent refused by the ACLs: told to shut down"
        );
        self.send_on(
            connection,
            Body::ShutdownAgent(proto::ShutdownAgent {
                reason: refusal.to_string(),
            }),
        );
        true
    }

    /// Whether the master removed `agent` (this master, or one before it).
    pub(super) fn is_removed(&self, agent: &AgentId) -> bool {
        self.registry.is_removed(agent.as_str())
            || self
                .agents
                .get(agent)
                .is_some_and(|a| a.phase == AgentPhase::Removed)
    }

    /// The removed agent a connection belongs to, if it belongs to one.
    pub(super) fn removed_peer(&self, connection: ConnectionId) -> Option<AgentId> {
        match self.connections.get(&connection) {
            Some(Peer::Agent(agent)) if self.is_removed(agent) => Some(agent.clone()),
            _ => None,
        }
    }

    pub(super) fn tell_removed_agent(&mut self, connection: ConnectionId) {
        self.send_on(
            connection,
            Body::ShutdownAgent(proto::ShutdownAgent {
                reason: "agent was removed by the master".into(),
            }),
        );
    }

    /// docs/recovery-rules.md R8: whether `connection` is older than the newest one
    /// `agent` registered, re-registered or said it was recovering on. What arrives on
    /// it was sent by an earlier incarnation, or on a connection the agent gave up, and
    /// was delivered late: it is not what the agent says now.
    pub(super) fn stale_connection(&self, agent: &AgentId, connection: ConnectionId) -> bool {
        self.agents
            .get(agent)
            .is_some_and(|a| connection < a.newest_connection)
    }

    /// An agent says it is recovering (docs/recovery-rules.md R5): it is pinged on this
    /// connection instead of waiting out the re-registration timeout, and re-registers
    /// once its recovery is complete. A removed agent is told to shut down.
    pub(super) fn agent_recovering(&mut self, connection: ConnectionId, id: AgentId) {
        if !self.connections.contains_key(&connection) {
            return;
        }
        if self.is_removed(&id) {
            crate::coverage::point!("master_removed_agent_refused");
            info!(agent = %id, "removed agent says it is recovering: telling it to shut down");
            self.tell_removed_agent(connection);
            return;
        }
        if self.stale_connection(&id, connection) {
            crate::coverage::point!("master_stale_agent_message_ignored");
            info!(agent = %id, "stale recovery notice ignored: it came on an earlier connection than the agent's newest");
            return;
        }
        let Some(record) = self.agents.get_mut(&id) else {
            // Unknown here: admitted (or not) when it re-registers.
            info!(agent = %id, "unknown agent says it is recovering: waiting for it to re-register");
            return;
        };
        // Its registered connection, if the master still has one, belongs to the agent's
        // previous incarnation.
        record.outbox = None;
        record.phase = AgentPhase::Disconnected;
        record.recovering_on = Some(connection);
        record.newest_connection = connection;
        record.disconnected_at = None;
        record.missed_pings = 0;
        record.ponged = true;
        if let Some(entry) = self.connections.get_mut(&connection) {
            *entry = Peer::Agent(id.clone());
        }
        info!(agent = %id, "agent is recovering: pinging it until it re-registers");
    }

    pub(super) fn register_agent(&mut self, connection: ConnectionId, info: AgentInfo) {
        if self.agent_refused(connection) {
            return;
        }
        // A registration retried on the connection the master already answered (the
        // answer was lost): the same id again, not a new agent (docs/recovery-rules.md
        // R57, docs/stream-rules.md S2).
        let retried = self
            .agents
            .iter()
            .find(|(_, a)| a.phase == AgentPhase::Connected && a.outbox == Some(connection))
            .filter(|_| !broken!(self.config.breakage.master_forgets_retried_registration));
        if let Some((id, record)) = retried {
            crate::coverage::point!("master_registration_retry_answered");
            // The agent ignores RunTask until it knows its id, so a task placed on it
            // since the lost answer may never have reached it: the answer lists every
            // task the master still thinks open there, and the agent reports those it
            // does not know as lost (docs/stream-rules.md S2).
            let reconciliations: Vec<TaskReport> = record
                .tasks
                .values()
                .filter(|t| !crate::domain::task_state::is_terminal(t.state()))
                .cloned()
                .collect();
            info!(agent = %id, "agent retried its registration: resending its id");
            if !reconciliations.is_empty() {
                crate::coverage::point!("master_retried_registration_reconciled");
                info!(agent = %id, tasks = reconciliations.len(), "tasks placed on the agent before it knew its id: asking it to reconcile them");
            }
            let answer = Body::AgentRegistered(proto::AgentRegistered {
                agent_id: id.to_string(),
                reconciliations,
                leader_epoch: self.leadership.epoch,
            });
            self.send_on(connection, answer);
            return;
        }
        // docs/recovery-rules.md R8: a registration sent on an earlier connection than
        // the newest of the agent now at this address (an earlier incarnation's, delivered
        // late) is stale: it must not replace that agent.
        let stale = self.agents.iter().find(|(_, a)| {
            a.phase != AgentPhase::Removed
                && a.info.hostname == info.hostname
                && a.info.port == info.port
                && connection < a.newest_connection
        });
        if let Some((id, _)) = stale {
            crate::coverage::point!("master_stale_agent_message_ignored");
            info!(agent = %id, "stale registration ignored: it came on an earlier connection than the newest of the agent at its address");
            return;
        }
        // A new agent at the address of a known one: the old one rebooted or was wiped;
        // its tasks are lost at once.
        let same_address: Vec<AgentId> = self
            .agents
            .iter()
            .filter(|(_, a)| {
                a.phase != AgentPhase::Removed
                    && a.info.hostname == info.hostname
                    && a.info.port == info.port
            })
            .map(|(id, _)| id.clone())
            .collect();
        for old in same_address {
            info!(agent = %old, "a new agent registered at the address of a known one: removing the old agent");
            self.remove_agent(
                &old,
                TaskReason::ReasonAgentRemoved,
                "Agent removed: a new agent registered at the same address",
            );
        }
        let id = AgentId::new(new_id(&*self.random, "agent"));
        let mut info = info;
        info.id = id.to_string();
        // The admission is durable before the agent hears its id (docs/design.md D77).
        let write = self.registry.stage_admit(&info);
        self.record(write);
        info!(agent = %id, address = %format!("{}:{}", info.hostname, info.port), "agent registered");
        self.log_principal(connection, "agent", id.as_str());
        let outbox = self
            .connections
            .contains_key(&connection)
            .then_some(connection);
        if let Some(entry) = self.connections.get_mut(&connection) {
            *entry = Peer::Agent(id.clone());
        }
        if let Some(outbox) = outbox {
            let answer = Body::AgentRegistered(proto::AgentRegistered {
                agent_id: id.to_string(),
                reconciliations: Vec::new(),
                leader_epoch: self.leadership.epoch,
            });
            self.send(outbox, answer);
        }
        let reported_resources = reserved_of(&info);
        self.agents.insert(
            id,
            AgentRecord {
                info,
                outbox,
                phase: AgentPhase::Connected,
                tasks: BTreeMap::new(),
                missed_pings: 0,
                ponged: true,
                pending_kills: BTreeSet::new(),
                disconnected_at: None,
                checkpointed_resources: None,
                reported_resources,
                recovering_on: None,
                heard_since_election: true,
                newest_connection: connection,
            },
        );
    }

    pub(super) fn reregister_agent(
        &mut self,
        connection: ConnectionId,
        message: proto::ReregisterAgent,
    ) {
        if self.agent_refused(connection) {
            return;
        }
        let info = message.info.unwrap_or_default();
        let id = AgentId::new(info.id.clone());
        let outbox = self
            .connections
            .contains_key(&connection)
            .then_some(connection);
        let removed = (self.registry.is_removed(id.as_str())
            || self
                .agents
                .get(&id)
                .is_some_and(|a| a.phase == AgentPhase::Removed))
            && !broken!(self.config.breakage.master_readmits_removed_agents);
        let stale = !removed && self.stale_connection(&id, connection);
        match decisions::reregistration(removed, stale) {
            AgentVerdict::ShutDown => {
                crate::coverage::point!("master_removed_agent_refused");
                info!(agent = %id, "removed agent tried to re-register: telling it to shut down");
                if let Some(outbox) = outbox {
                    self.send(
                        outbox,
                        Body::ShutdownAgent(proto::ShutdownAgent {
                            reason: "agent was removed by the master".into(),
                        }),
                    );
                }
                return;
            }
            AgentVerdict::Ignore => {
                crate::coverage::point!("master_stale_agent_message_ignored");
                info!(agent = %id, "stale re-registration ignored: it came on an earlier connection than the agent's newest");
                return;
            }
            AgentVerdict::Accept => {}
        }
        // docs/design.md D77.
        let write = self.registry.stage_admit(&info);
        self.record(write);
        if let Some(entry) = self.connections.get_mut(&connection) {
            *entry = Peer::Agent(id.clone());
        }
        // Frameworks torn down while the agent was away (or whose shutdown it missed): the
        // agent is told to shut them down, and their tasks are not added back.
        let mut torn_down: BTreeSet<FrameworkId> = BTreeSet::new();
        let reported_frameworks = message
            .frameworks
            .iter()
            .map(|f| f.id.as_str())
            .chain(message.tasks.iter().map(|t| t.framework_id.as_str()))
            .chain(message.executors.iter().map(|e| e.framework_id.as_str()));
        for framework in reported_frameworks {
            let framework = FrameworkId::new(framework.to_owned());
            if self.is_torn_down(&framework) {
                torn_down.insert(framework);
            }
        }
        for framework in &message.frameworks {
            let framework_id = FrameworkId::new(framework.id.clone());
            if torn_down.contains(&framework_id) {
                continue;
            }
            // A framework this master has not seen connected: its failover timeout runs
            // from this master's election (docs/lifecycle-rules.md rule 9).
            let elected_at = self.elected_at;
            self.frameworks
                .entry(framework_id)
                .or_insert_with(|| FrameworkRecord {
                    info: framework.clone(),
                    // docs/security.md SEC40: the principal the master that registered
                    // it named.
                    principal: (!framework.principal.is_empty())
                        .then(|| framework.principal.clone()),
                    outbox: None,
                    missed_pongs: 0,
                    disconnected_at: Some(elected_at),
                });
        }
        for task in message
            .tasks
            .iter()
            .filter(|t| torn_down.contains(&FrameworkId::new(t.framework_id.clone())))
        {
            let completed = self
                .completed_frameworks
                .entry(FrameworkId::new(task.framework_id.clone()))
                .or_insert_with(|| CompletedFramework {
                    name: String::new(),
                    tasks: BTreeMap::new(),
                    message: TORN_DOWN_MESSAGE.into(),
                });
            let mut killed = task.clone();
            if !crate::domain::task_state::is_terminal(killed.state()) {
                killed.state = proto::TaskState::TaskKilled as i32;
            }
            completed
                .tasks
                .entry(TaskId::new(task.task_id.clone()))
                .or_insert(killed);
        }
        let reported: BTreeMap<(FrameworkId, TaskId), TaskReport> = message
            .tasks
            .iter()
            .filter(|t| !torn_down.contains(&FrameworkId::new(t.framework_id.clone())))
            .map(|t| {
                (
                    (
                        FrameworkId::new(t.framework_id.clone()),
                        TaskId::new(t.task_id.clone()),
                    ),
                    t.clone(),
                )
            })
            .collect();
        let known = self.agents.contains_key(&id);
        let mut reconciliations = Vec::new();
        if let Some(record) = self.agents.get(&id) {
            for (key, task) in &record.tasks {
                let terminal = crate::domain::task_state::is_terminal(task.state());
                if !reported.contains_key(key) && !terminal {
                    reconciliations.push(task.clone());
                }
            }
        }
        info!(agent = %id, known, tasks = reported.len(), reconciliations = reconciliations.len(), "agent re-registered");
        self.log_principal(connection, "agent", id.as_str());
        let record = self
            .agents
            .entry(id.clone())
            .or_insert_with(|| AgentRecord {
                info: info.clone(),
                outbox: None,
                phase: AgentPhase::Connected,
                tasks: BTreeMap::new(),
                missed_pings: 0,
                ponged: true,
                pending_kills: BTreeSet::new(),
                disconnected_at: None,
                checkpointed_resources: None,
                reported_resources: Vec::new(),
                recovering_on: None,
                heard_since_election: true,
                newest_connection: connection,
            });
        record.reported_resources = message.checkpointed_resources.clone();
        let resend_resources = record.checkpointed_resources.clone();
        record.info = info;
        record.outbox = outbox;
        record.newest_connection = connection;
        record.recovering_on = None;
        record.phase = AgentPhase::Connected;
        record.missed_pings = 0;
        record.ponged = true;
        record.disconnected_at = None;
        record.heard_since_election = true;
        for (key, task) in reported {
            record.tasks.insert(key, task);
        }
        let kills = std::mem::take(&mut record.pending_kills);
        if let Some(outbox) = outbox {
            let answer = Body::AgentReregistered(proto::AgentReregistered {
                agent_id: id.to_string(),
                reconciliations,
                leader_epoch: self.leadership.epoch,
            });
            self.send(outbox, answer);
            for (framework, task) in kills {
                info!(agent = %id, task = %task, "re-sending a kill issued while the agent was away");
                self.send(
                    outbox,
                    Body::KillTask(proto::KillTask {
                        framework_id: framework.to_string(),
                        task_id: task.to_string(),
                    }),
                );
            }
            for framework in &torn_down {
                info!(agent = %id, framework = %framework, "agent reported a torn-down framework: shutting it down there");
                self.send(
                    outbox,
                    Body::ShutdownFramework(proto::ShutdownFramework {
                        framework_id: framework.to_string(),
                    }),
                );
            }
            // The master's view of the agent's checkpointed resources wins over the
            // agent's report (an agent without resource providers; reference B,
            // CheckpointedResources): it is sent again, and the agent checkpoints it.
            if let Some(resources) = resend_resources {
                info!(
                    agent = %id,
                    resources = %crate::domain::resources::describe_resources(&resources),
                    reported = %crate::domain::resources::describe_resources(&message.checkpointed_resources),
                    "re-sending the master's view of the agent's checkpointed resources"
                );
                self.send(
                    outbox,
                    Body::CheckpointResources(proto::CheckpointResources {
                        agent_id: id.to_string(),
                        resources,
                    }),
                );
            }
        }
    }

    /// Removes an agent; its non-terminal tasks are reported to their frameworks.
    pub(super) fn remove_agent(&mut self, agent: &AgentId, reason: TaskReason, message: &str) {
        let Some(record) = self.agents.get_mut(agent) else {
            return;
        };
        // The removal is durable before anyone hears of it (docs/design.md D77).
        let write = self.registry.stage_remove(&record.info);
        self.effects.push(Effect::Record(write));
        record.phase = AgentPhase::Removed;
        for outbox in [record.outbox.take(), record.recovering_on.take()]
            .into_iter()
            .flatten()
        {
            self.effects.push(Effect::Send {
                to: outbox,
                body: Body::ShutdownAgent(proto::ShutdownAgent {
                    reason: message.to_owned(),
                }),
            });
        }
        let open: Vec<TaskReport> = record
            .tasks
            .values()
            .filter(|t| !crate::domain::task_state::is_terminal(t.state()))
            .cloned()
            .collect();
        for task in open {
            let key = (
                FrameworkId::new(task.framework_id.clone()),
                TaskId::new(task.task_id.clone()),
            );
            if let Some(entry) = self
                .agents
                .get_mut(agent)
                .and_then(|a| a.tasks.get_mut(&key))
            {
                entry.state = proto::TaskState::TaskLost as i32;
            }
            crate::coverage::point!("master_task_lost_with_agent");
            info!(agent = %agent, task = %task.task_id, "task lost with its agent");
            let update = self.master_update(&task, proto::TaskState::TaskLost, reason, message);
            self.send_to_framework(&key.0, update);
        }
    }
}

/// The reserved resources of an agent's flags (a role other than `*`): what a new agent
/// checkpoints in `resources.info` when it registers.
fn reserved_of(info: &AgentInfo) -> Vec<Resource> {
    info.resources
        .iter()
        .filter(|r| !r.role.is_empty())
        .cloned()
        .collect()
}
