//! Placement: tasks placed on agents (or queued), kills, and dynamic reservations.

use tracing::{info, warn};

use super::decisions;
use super::{AgentPhase, Master, DYNAMIC_RESERVATION_PREFIX, PENDING_TASKS_MAX};
use crate::ids::{AgentId, FrameworkId, TaskId};
use crate::proto::envelope::Body;
use crate::proto::{self, ExecutorInfo, Resource, TaskInfo, TaskReason, TaskReport};
use crate::security::acls::Action;
use crate::wire::{self, ConnectionId};

impl Master {
    /// A dynamic reservation: the master adds it to its view of the agent's checkpointed
    /// resources and sends the agent that view to checkpoint. Bad requests are refused
    /// with a warning that says why.
    pub(super) fn reserve_resources(
        &mut self,
        connection: ConnectionId,
        message: proto::ReserveResources,
    ) {
        let framework = FrameworkId::new(message.framework_id.clone());
        // docs/security.md SEC22, SEC23: the framework's principal must be allowed every
        // role it reserves for.
        let principal = self
            .frameworks
            .get(&framework)
            .and_then(|f| f.principal.clone());
        for resource in &message.resources {
            let role = resource.role.as_str();
            if let Err(refusal) =
                self.authorize(principal.as_deref(), Action::ReserveResources { role })
            {
                self.refuse_framework(connection, framework.as_str(), &refusal);
                return;
            }
        }
        match self.try_reserve(&message) {
            Ok((agent, view)) => {
                let record = self.agents.get_mut(&agent).expect("checked");
                info!(framework = %framework, agent = %agent, resources = %crate::domain::resources::describe_resources(&view), "reserved resources: sending the agent its checkpointed resources");
                record.checkpointed_resources = Some(view.clone());
                if let Some(outbox) = &record.outbox {
                    outbox.send(Body::CheckpointResources(proto::CheckpointResources {
                        agent_id: agent.to_string(),
                        resources: view,
                    }));
                }
            }
            Err(error) => warn!(framework = %framework, %error, "reservation refused"),
        }
    }

    pub(super) fn try_reserve(
        &self,
        message: &proto::ReserveResources,
    ) -> Result<(AgentId, Vec<Resource>), String> {
        let framework = FrameworkId::new(message.framework_id.clone());
        if !self.frameworks.contains_key(&framework) {
            return Err(format!("unknown framework '{framework}'"));
        }
        if message.resources.is_empty() {
            return Err("no resources to reserve".into());
        }
        for resource in &message.resources {
            if resource.name.is_empty() {
                return Err("a resource without a name".into());
            }
            if resource.role.is_empty() || resource.role == "*" {
                return Err(format!(
                    "resource {} names no role to reserve it for",
                    resource.name
                ));
            }
            if !resource.scalar.is_finite() || resource.scalar <= 0.0 {
                return Err(format!(
                    "resource {}({}) has a bad amount {}",
                    resource.name, resource.role, resource.scalar
                ));
            }
        }
        let agent = if message.agent_id.is_empty() {
            self.agents
                .iter()
                .find(|(_, a)| a.phase == AgentPhase::Connected)
                .map(|(id, _)| id.clone())
                .ok_or("no connected agent to reserve resources on")?
        } else {
            AgentId::new(message.agent_id.clone())
        };
        let record = self
            .agents
            .get(&agent)
            .filter(|a| a.phase != AgentPhase::Removed)
            .ok_or_else(|| format!("unknown agent '{agent}'"))?;
        let mut view = record
            .checkpointed_resources
            .clone()
            .unwrap_or_else(|| record.reported_resources.clone());
        let reservation = format!("{DYNAMIC_RESERVATION_PREFIX}{framework}");
        for resource in &message.resources {
            match view.iter_mut().find(|r| {
                r.name == resource.name && r.role == resource.role && r.reservation == reservation
            }) {
                Some(existing) => existing.scalar += resource.scalar,
                None => view.push(Resource {
                    name: resource.name.clone(),
                    scalar: resource.scalar,
                    role: resource.role.clone(),
                    reservation: reservation.clone(),
                }),
            }
        }
        // Dynamic reservations are carved from the agent's unreserved resources.
        for resource in &message.resources {
            let unreserved: f64 = record
                .info
                .resources
                .iter()
                .filter(|r| r.name == resource.name && r.role.is_empty())
                .map(|r| r.scalar)
                .sum();
            let reserved: f64 = view
                .iter()
                .filter(|r| {
                    r.name == resource.name && r.reservation.starts_with(DYNAMIC_RESERVATION_PREFIX)
                })
                .map(|r| r.scalar)
                .sum();
            if reserved > unreserved {
                return Err(format!(
                    "agent {agent} has {unreserved} unreserved {}, {reserved} would be reserved",
                    resource.name
                ));
            }
        }
        Ok((agent, view))
    }

    pub(super) fn submit_task(&mut self, framework: FrameworkId, mut task: TaskInfo) {
        let Some((framework_info, principal)) = self
            .frameworks
            .get(&framework)
            .map(|f| (f.info.clone(), f.principal.clone()))
        else {
            warn!(framework = %framework, "task from an unknown framework dropped");
            return;
        };
        // docs/security.md SEC22, SEC23: the framework's principal must be allowed to run
        // tasks as its user; a refused task is answered TASK_ERROR, neither placed nor
        // queued.
        if let Err(refusal) = self
            .authorize(
                principal.as_deref(),
                Action::RunTask {
                    user: &framework_info.user,
                },
            )
            .or_else(|refusal| {
                if broken!(self.config.breakage.master_skips_run_tasks_acl) {
                    Ok(())
                } else {
                    Err(refusal)
                }
            })
        {
            let report = TaskReport {
                task_id: task.task_id.clone(),
                framework_id: framework.to_string(),
                executor_id: task.executor_id.clone(),
                state: proto::TaskState::TaskError as i32,
            };
            let update = self.master_update(
                &report,
                proto::TaskState::TaskError,
                TaskReason::ReasonTaskUnauthorized,
                &refusal.to_string(),
            );
            self.send_to_framework(&framework, update);
            return;
        }
        // A task id the master already knows for this framework is never launched again
        // (Mesos rejects duplicate task ids): the framework gets the task's current state.
        let key = (framework.clone(), TaskId::new(task.task_id.clone()));
        if let Some(known) = self
            .agents
            .values()
            .find_map(|a| a.tasks.get(&key))
            .cloned()
        {
            info!(framework = %framework, task = %task.task_id, state = known.state().as_str_name(), "duplicate task id: not launched again");
            let update = self.master_update(
                &known,
                known.state(),
                TaskReason::ReasonReconciliation,
                "Duplicate task id: task already known",
            );
            self.send_to_framework(&framework, update);
            return;
        }
        if self
            .pending_tasks
            .iter()
            .any(|(f, t)| *f == framework && t.task_id == task.task_id)
        {
            return;
        }
        let agent = if task.agent_id.is_empty() {
            // The connected agent running the fewest open tasks (the first by id on a
            // tie), so that tasks spread over several agents.
            decisions::least_loaded(self.agents.iter().map(|(id, a)| {
                let open = a
                    .tasks
                    .values()
                    .filter(|t| !crate::domain::task_state::is_terminal(t.state()))
                    .count();
                (id, a.phase == AgentPhase::Connected, open)
            }))
            .cloned()
        } else {
            Some(AgentId::new(task.agent_id.clone())).filter(|id| {
                self.agents
                    .get(id)
                    .is_some_and(|a| a.phase == AgentPhase::Connected)
            })
        };
        // The executor the framework named, or a command executor of its own named after
        // the task (docs/lifecycle-rules.md rule 14).
        let executor_id = if task.executor_id.is_empty() {
            task.task_id.clone()
        } else {
            task.executor_id.clone()
        };
        let report = TaskReport {
            task_id: task.task_id.clone(),
            framework_id: framework.to_string(),
            executor_id: executor_id.clone(),
            state: proto::TaskState::TaskStaging as i32,
        };
        // The executor id names a directory on the agent (docs/lifecycle-rules.md rule 14).
        if executor_id == "." || executor_id == ".." || executor_id.contains(['/', '\0']) {
            info!(framework = %framework, task = %task.task_id, executor = %executor_id, "task names an unusable executor id: refused");
            let update = self.master_update(
                &report,
                proto::TaskState::TaskError,
                TaskReason::ReasonTaskInvalid,
                &format!(
                    "Executor id '{executor_id}' cannot name a directory ('/', NUL, '.' and '..' are not allowed)"
                ),
            );
            self.send_to_framework(&framework, update);
            return;
        }
        let Some(agent) = agent else {
            if self.pending_tasks.len() >= PENDING_TASKS_MAX {
                info!(task = %task.task_id, "no agent to run the task and the queue is full: dropped");
                let update = self.master_update(
                    &report,
                    proto::TaskState::TaskDropped,
                    TaskReason::ReasonAgentRemoved,
                    "No agent available",
                );
                self.send_to_framework(&framework, update);
                return;
            }
            info!(task = %task.task_id, "no agent to run the task yet: queued");
            self.pending_tasks.push((framework, task));
            return;
        };
        task.agent_id = agent.to_string();
        task.framework_id = framework.to_string();
        task.executor_id = executor_id.clone();
        let executor = ExecutorInfo {
            name: if executor_id == task.task_id {
                format!("command executor for {}", task.task_id)
            } else {
                format!("executor {executor_id}")
            },
            executor_id,
            framework_id: framework.to_string(),
            command: None,
            resources: Vec::new(),
        };
        let run = Body::RunTask(proto::RunTask {
            framework: Some(framework_info),
            executor: Some(executor),
            task: Some(task),
        });
        // docs/security.md SEC5: a task whose RunTask would not fit in a frame is refused
        // here, where the framework hears why, and never reaches an agent.
        if let Err(error) = wire::check_fits(&run) {
            info!(framework = %framework, task = %report.task_id, %error, "task too large for a frame: refused");
            let update = self.master_update(
                &report,
                proto::TaskState::TaskError,
                TaskReason::ReasonTaskInvalid,
                &format!("Task refused: {error}"),
            );
            self.send_to_framework(&framework, update);
            return;
        }
        let task_id = report.task_id.clone();
        let record = self.agents.get_mut(&agent).expect("chosen above");
        record
            .tasks
            .insert((framework.clone(), TaskId::new(task_id.clone())), report);
        info!(framework = %framework, task = %task_id, agent = %agent, "task placed");
        if let Some(outbox) = &record.outbox {
            outbox.send(run);
        }
    }

    pub(super) fn kill_task(&mut self, framework: FrameworkId, task: TaskId) {
        let key = (framework.clone(), task.clone());
        let Some((agent, record)) = self
            .agents
            .iter_mut()
            .find(|(_, a)| a.tasks.contains_key(&key))
        else {
            return;
        };
        match &record.outbox {
            Some(outbox) => {
                outbox.send(Body::KillTask(proto::KillTask {
                    framework_id: framework.to_string(),
                    task_id: task.to_string(),
                }));
            }
            None => {
                info!(agent = %agent, task = %task, "kill for a task on a disconnected agent: kept for its return");
                record.pending_kills.insert(key);
            }
        }
    }
}
