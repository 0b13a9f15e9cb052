//! Leadership and the registry: election (the registry read), stepping down, and the
//! periodic tick that pings agents and frameworks and runs the timeouts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tracing::{info, warn};

use super::decisions::{self, PingDecision, PingState};
use super::{
    AgentPhase, AgentRecord, CompletedFramework, Effect, Master, FRAMEWORK_MISSED_PONGS_MAX,
    TORN_DOWN_MESSAGE,
};
use crate::ids::{AgentId, FrameworkId};
use crate::proto::envelope::Body;
use crate::proto::{self, TaskReason};
use crate::wire::ConnectionId;

impl Master {
    /// Leadership changes: a newly elected master starts from the registry; a master that
    /// lost the lease forgets everything and drops its connections, so that agents and
    /// frameworks go and find the new leader.
    pub(super) fn maintain_leadership(&mut self, leading: bool) {
        if leading == self.leading {
            return;
        }
        self.leading = leading;
        if leading {
            self.elected();
        } else {
            warn!(leader = %self.leadership.leader, "no longer the leading master: forgetting all state");
            self.agents.clear();
            self.frameworks.clear();
            self.completed_frameworks.clear();
            self.pending_tasks.clear();
            self.next_ping = None;
            for connection in std::mem::take(&mut self.connections).into_keys() {
                self.close(connection);
            }
        }
    }

    pub(super) fn elected(&mut self) {
        let now = self.now.at;
        self.elected_at = now;
        self.next_ping = Some(now + self.config.agent_ping_timeout);
        if let Err(error) = self.registry.reload() {
            self.failed = Some(error);
            return;
        }
        for framework in self.registry.torn_down_frameworks() {
            // docs/security.md SEC44: told the reason the registry keeps.
            let message = self
                .registry
                .removal_message(framework)
                .unwrap_or(TORN_DOWN_MESSAGE);
            self.completed_frameworks.insert(
                FrameworkId::new(framework.clone()),
                CompletedFramework {
                    name: String::new(),
                    tasks: BTreeMap::new(),
                    message: message.into(),
                },
            );
        }
        let mut known = 0;
        for entry in self.registry.agents() {
            let Some(info) = entry.info.clone() else {
                continue;
            };
            if entry.removed {
                continue;
            }
            known += 1;
            self.agents.insert(
                AgentId::new(info.id.clone()),
                AgentRecord {
                    info,
                    outbox: None,
                    phase: AgentPhase::Disconnected,
                    tasks: BTreeMap::new(),
                    missed_pings: 0,
                    ponged: true,
                    pending_kills: BTreeSet::new(),
                    disconnected_at: Some(now),
                    checkpointed_resources: None,
                    reported_resources: Vec::new(),
                    recovering_on: None,
                    heard_since_election: false,
                    newest_connection: ConnectionId(0),
                },
            );
        }
        if known == 0 {
            info!("elected leading master; the registry knows no agents");
        } else {
            info!(
                known_agents = known,
                reregister_timeout_s = self.config.agent_reregister_timeout.as_secs_f64(),
                "elected leading master: waiting for known agents to re-register"
            );
        }
    }

    pub(super) fn tick(&mut self, leading: bool) {
        let now = self.now.at;
        self.maintain_leadership(leading);
        // The simulator's tap: what /state would answer now (docs/task-lifecycle.md L25).
        #[cfg(feature = "coverage")]
        if crate::observe::master_states_wanted() {
            crate::observe::report_master_state(&self.config.listen, self.state());
        }
        if !self.leading {
            return;
        }
        self.registrations_after_recovery();
        if !self.pending_tasks.is_empty()
            && self
                .agents
                .values()
                .any(|a| a.phase == AgentPhase::Connected)
        {
            for (framework, task) in std::mem::take(&mut self.pending_tasks) {
                self.submit_task(framework, task);
            }
        }
        if self.next_ping.is_some_and(|at| now >= at) {
            self.next_ping = Some(now + self.config.agent_ping_timeout);
            self.ping_sequence += 1;
            let mut unreachable = Vec::new();
            for (id, record) in self.agents.iter_mut() {
                let mut state = PingState {
                    missed_pings: record.missed_pings,
                    ponged: record.ponged,
                };
                let decision = decisions::ping_round(
                    record.phase,
                    record.recovering_on.is_some(),
                    &mut state,
                    self.config.max_agent_ping_timeouts,
                );
                record.missed_pings = state.missed_pings;
                record.ponged = state.ponged;
                match decision {
                    PingDecision::Skip => {}
                    PingDecision::Unreachable => unreachable.push(id.clone()),
                    PingDecision::Ping => {
                        // Registered agents, and recovering ones on the connection they
                        // said so on (docs/recovery-rules.md R5).
                        let pinged = match record.phase {
                            AgentPhase::Connected => record.outbox,
                            _ => record.recovering_on,
                        };
                        if let Some(outbox) = pinged {
                            if record.phase == AgentPhase::Disconnected {
                                crate::coverage::point!("master_recovering_agent_pinged");
                            }
                            self.effects.push(Effect::Send {
                                to: outbox,
                                body: Body::Ping(proto::Ping {
                                    sequence: self.ping_sequence,
                                }),
                            });
                        }
                    }
                }
            }
            // Frameworks get a heartbeat too, so that one whose connection died silently
            // (a partition that dropped segments) notices and reconnects.
            let mut silent = Vec::new();
            for (id, record) in self.frameworks.iter_mut() {
                if let Some(outbox) = record.outbox {
                    if record.missed_pongs >= FRAMEWORK_MISSED_PONGS_MAX {
                        silent.push((id.clone(), outbox));
                        continue;
                    }
                    record.missed_pongs += 1;
                    self.effects.push(Effect::Send {
                        to: outbox,
                        body: Body::Ping(proto::Ping {
                            sequence: self.ping_sequence,
                        }),
                    });
                }
            }
            for (framework, connection) in silent {
                // Closing the connection (reader and writer) drops the socket: the
                // framework sees it closed and reconnects, and no task is left waiting on
                // a dead stream.
                info!(framework = %framework, "framework stopped answering heartbeats: closing its connection");
                if self.connections.remove(&connection).is_some() {
                    self.close(connection);
                }
                if let Some(record) = self.frameworks.get_mut(&framework) {
                    record.outbox = None;
                    record.missed_pongs = 0;
                    record.disconnected_at = Some(now);
                }
            }
            for id in unreachable {
                crate::coverage::point!("master_agent_unreachable");
                info!(agent = %id, "agent stopped answering pings: unreachable");
                self.remove_agent(&id, TaskReason::ReasonAgentRemoved, "Agent unreachable");
            }
        }
        // Agents that stayed away past the re-registration timeout.
        let expired: Vec<AgentId> = self
            .agents
            .iter()
            .filter(|(_, a)| {
                decisions::reregistration_expired(
                    a.phase,
                    a.disconnected_at,
                    now,
                    self.config.agent_reregister_timeout,
                )
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            crate::coverage::point!("master_agent_reregister_timeout");
            info!(agent = %id, "agent did not re-register within the timeout: removing it");
            self.remove_agent(
                &id,
                TaskReason::ReasonAgentRemoved,
                "Agent did not re-register in time",
            );
        }
        // Frameworks that stayed disconnected past their failover timeout
        // (docs/lifecycle-rules.md rule 8).
        let failed_over: Vec<(FrameworkId, Duration)> = self
            .frameworks
            .iter()
            .filter(|(_, f)| f.outbox.is_none())
            .filter(|_| !broken!(self.config.breakage.master_ignores_failover_timeout))
            .filter_map(|(id, f)| {
                let at = f.disconnected_at?;
                let timeout = f.failover_timeout();
                (now.saturating_duration_since(at) >= timeout).then(|| (id.clone(), timeout))
            })
            .collect();
        for (id, timeout) in failed_over {
            crate::coverage::point!("master_framework_failover_timeout");
            let message = format!(
                "framework removed: no scheduler failed over within its failover timeout ({} s)",
                timeout.as_secs_f64()
            );
            let (tasks, killed, agents) = self.remove_framework(&id, &message);
            info!(framework = %id, tasks, killed, agents_told = agents, failover_timeout_s = timeout.as_secs_f64(), "framework did not fail over within its failover timeout: removed");
        }
    }
}
