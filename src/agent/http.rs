//! The agent's `/state` and `/metrics` (docs/http.md), served by `crate::http` on the
//! agent's port: this module only reads the agent into the typed answers.

use std::collections::BTreeMap;

use super::{describe_resources, Agent, Phase};
use crate::http::metrics::AgentMetrics;
use crate::http::state::{AgentExecutor, AgentFramework, AgentRecovering, AgentState, Task};
use crate::http::Response;
use crate::wire::ConnectionId;

impl Agent {
    /// Answers the HTTP request of connection `id` for `path`.
    pub(super) fn http(&mut self, id: ConnectionId, path: &str) {
        let Some(outbox) = self.unidentified.remove(&id) else {
            return;
        };
        outbox.respond(self.http_answer(path));
    }

    /// `/state` (JSON; `503` while recovering) and `/metrics` (Prometheus text).
    fn http_answer(&self, path: &str) -> Response {
        match path {
            "/state" if self.phase == Phase::Recovering => {
                let mut answer = Response::json(&AgentRecovering {
                    error: "the agent is recovering".into(),
                });
                answer.status = 503;
                answer
            }
            "/state" => Response::json(&self.state()),
            "/metrics" => self.metrics().response(),
            _ => Response::not_found(),
        }
    }

    fn state(&self) -> AgentState {
        let frameworks = self
            .frameworks
            .iter()
            .map(|(fid, f)| AgentFramework {
                checkpoint: f.info.checkpoint,
                executors: f
                    .executors
                    .iter()
                    .map(|(eid, e)| AgentExecutor {
                        container: e.container.as_str().to_owned(),
                        id: eid.as_str().to_owned(),
                        phase: format!("{:?}", e.phase).to_lowercase(),
                        pid: e.process.as_ref().map(|p| p.pid),
                        queued: e.queued.iter().map(|t| t.task_id.clone()).collect(),
                        tasks: e
                            .tasks
                            .iter()
                            .map(|(tid, t)| Task {
                                id: tid.as_str().to_owned(),
                                state: t.state.as_str_name().to_owned(),
                            })
                            .collect(),
                    })
                    .collect(),
                id: fid.as_str().to_owned(),
                name: f.info.name.clone(),
            })
            .collect();
        AgentState {
            checkpointed_resources: describe_resources(&self.checkpointed_resources),
            frameworks,
            id: self.info.id.clone(),
            master: self.master_address.clone(),
            pending_updates: self.updates.pending_count(),
            phase: format!("{:?}", self.phase).to_lowercase(),
            registered: self.link.registered,
        }
    }

    /// The body of the `/metrics` answer, for the simulator's tap (`crate::observe`).
    #[cfg(feature = "coverage")]
    pub(super) fn metrics_text(&self) -> String {
        self.metrics().response().body
    }

    fn metrics(&self) -> AgentMetrics {
        let mut tasks_by_state: BTreeMap<String, usize> = BTreeMap::new();
        for (_, _, executor) in self.executors() {
            for task in executor.tasks.values() {
                *tasks_by_state
                    .entry(task.state.as_str_name().to_owned())
                    .or_default() += 1;
            }
        }
        AgentMetrics {
            recovery_errors: u64::from(self.recovery_errors),
            updates_pending: self.updates.pending_count(),
            executors: self.executors().count(),
            tasks_by_state,
            registrations: self.registrations,
            recovering: self.phase == Phase::Recovering,
        }
    }
}
