//! The master's `/state` and `/metrics` (docs/http.md), served by `crate::http` on the
//! master's port: this module only reads the master into the typed answers.

use std::collections::BTreeMap;

use super::{AgentPhase, Effect, Master};
use crate::http::metrics::MasterMetrics;
use crate::http::state::{
    AgentTask, CompletedFramework, MasterAgent, MasterFramework, MasterState, OrphanTask, Task,
};
use crate::http::Response;
use crate::wire::ConnectionId;

impl Master {
    /// Answers the HTTP request of connection `id` for `path`.
    pub(super) fn http(&mut self, id: ConnectionId, path: &str) {
        if self.connections.remove(&id).is_none() {
            return;
        }
        let response = self.http_answer(path);
        self.effects.push(Effect::Respond {
            connection: id,
            response,
        });
    }

    /// `/state` (JSON) and `/metrics` (Prometheus text) for operators.
    fn http_answer(&self, path: &str) -> Response {
        match path {
            "/state" => Response::json(&self.state()),
            "/metrics" => self.metrics().response(),
            _ => Response::not_found(),
        }
    }

    pub(super) fn state(&self) -> MasterState {
        let agents = self
            .agents
            .iter()
            .map(|(agent_id, a)| MasterAgent {
                address: format!("{}:{}", a.info.hostname, a.info.port),
                checkpointed_resources: a
                    .checkpointed_resources
                    .as_deref()
                    .map(crate::domain::resources::describe_resources),
                id: agent_id.as_str().to_owned(),
                phase: format!("{:?}", a.phase).to_lowercase(),
                resources: crate::domain::resources::describe_resources(&a.info.resources),
                tasks: a
                    .tasks
                    .values()
                    .map(|t| AgentTask {
                        framework_id: t.framework_id.clone(),
                        id: t.task_id.clone(),
                        state: t.state().as_str_name().to_owned(),
                    })
                    .collect(),
            })
            .collect();
        let frameworks = self
            .frameworks
            .iter()
            .map(|(framework_id, f)| MasterFramework {
                connected: f.outbox.is_some(),
                id: framework_id.as_str().to_owned(),
                name: f.info.name.clone(),
            })
            .collect();
        let completed_frameworks = self
            .completed_frameworks
            .iter()
            .map(|(framework_id, f)| CompletedFramework {
                id: framework_id.as_str().to_owned(),
                name: f.name.clone(),
                tasks: f
                    .tasks
                    .values()
                    .map(|t| Task {
                        id: t.task_id.clone(),
                        state: t.state().as_str_name().to_owned(),
                    })
                    .collect(),
            })
            .collect();
        // Tasks on the agents whose framework the master knows neither as active nor as
        // completed.
        let orphan_tasks = self
            .agents
            .iter()
            .filter(|(_, a)| a.phase != AgentPhase::Removed)
            .flat_map(|(agent_id, a)| {
                a.tasks
                    .iter()
                    .filter(|((f, _), _)| {
                        !self.frameworks.contains_key(f)
                            && !self.completed_frameworks.contains_key(f)
                    })
                    .map(move |(_, t)| OrphanTask {
                        agent_id: agent_id.as_str().to_owned(),
                        framework_id: t.framework_id.clone(),
                        id: t.task_id.clone(),
                        state: t.state().as_str_name().to_owned(),
                    })
            })
            .collect();
        let leading = self.leadership.leading;
        MasterState {
            agents,
            completed_frameworks,
            frameworks,
            leader: if leading {
                self.config.listen.clone()
            } else {
                self.leadership.leader.clone()
            },
            leading,
            orphan_tasks,
            pending_tasks: self.pending_tasks.len(),
        }
    }

    fn metrics(&self) -> MasterMetrics {
        let mut agents_by_phase = BTreeMap::new();
        for phase in [
            AgentPhase::Connected,
            AgentPhase::Disconnected,
            AgentPhase::Removed,
        ] {
            let count = self.agents.values().filter(|a| a.phase == phase).count();
            agents_by_phase.insert(format!("{phase:?}").to_lowercase(), count);
        }
        let mut tasks_by_state: BTreeMap<String, usize> = BTreeMap::new();
        for task in self.agents.values().flat_map(|a| a.tasks.values()) {
            *tasks_by_state
                .entry(task.state().as_str_name().to_owned())
                .or_default() += 1;
        }
        MasterMetrics {
            agents_by_phase,
            frameworks: self.frameworks.len(),
            completed_frameworks: self.completed_frameworks.len(),
            tasks_by_state,
            pending_tasks: self.pending_tasks.len(),
        }
    }
}
