//! Status updates: the one place one is made (docs/design.md D21), and reading one back.

use crate::ids::Uuid;
use crate::proto::{StatusUpdate, TaskReason, TaskSource, TaskState, TaskStatus};

/// Who makes a status update, with what only that sender knows (docs/design.md D21).
#[derive(Clone, Debug)]
pub enum Sender {
    /// The executor running the task; `uuid` is fresh, and the agent acknowledges it.
    Executor {
        /// The update's uuid.
        uuid: Vec<u8>,
    },
    /// The agent, speaking for a task whose executor cannot; `uuid` is fresh, and the
    /// framework acknowledges it.
    Agent {
        /// The agent's id.
        agent_id: String,
        /// The update's uuid.
        uuid: Vec<u8>,
    },
    /// The master (or the framework library refusing a task before the master saw it):
    /// no uuid, since nothing acknowledges it.
    Master,
}

/// What every status update says, whoever sends it.
#[derive(Clone, Copy, Debug)]
pub struct Fields<'a> {
    /// The task's framework.
    pub framework_id: &'a str,
    /// The task's executor.
    pub executor_id: &'a str,
    /// The task.
    pub task_id: &'a str,
    /// The state the update reports.
    pub state: TaskState,
    /// Why (`ReasonNone` when nothing needs saying).
    pub reason: TaskReason,
    /// A message for people.
    pub message: &'a str,
    /// The sender's wall clock, in seconds since the UNIX epoch.
    pub timestamp: f64,
}

/// A status update of `fields` from `sender` (docs/design.md D21). The update and its
/// status carry the same uuid, timestamp and agent id; the status names the executor
/// only when an executor's or the agent's update (the master speaks for the task, not
/// for an executor); `latest_state` starts as the state reported.
pub fn new(fields: Fields<'_>, sender: Sender) -> StatusUpdate {
    let (source, agent_id, uuid, status_executor) = match sender {
        Sender::Executor { uuid } => (
            TaskSource::SourceExecutor,
            String::new(),
            uuid,
            fields.executor_id,
        ),
        Sender::Agent { agent_id, uuid } => {
            (TaskSource::SourceAgent, agent_id, uuid, fields.executor_id)
        }
        Sender::Master => (TaskSource::SourceMaster, String::new(), Vec::new(), ""),
    };
    StatusUpdate {
        framework_id: fields.framework_id.to_owned(),
        executor_id: fields.executor_id.to_owned(),
        agent_id: agent_id.clone(),
        status: Some(TaskStatus {
            task_id: fields.task_id.to_owned(),
            state: fields.state as i32,
            source: source as i32,
            reason: fields.reason as i32,
            message: fields.message.to_owned(),
            agent_id,
            executor_id: status_executor.to_owned(),
            timestamp: fields.timestamp,
            uuid: uuid.clone(),
        }),
        timestamp: fields.timestamp,
        uuid,
        latest_state: fields.state as i32,
    }
}

/// The task an update is about (empty when it has no status).
pub fn task_of(update: &StatusUpdate) -> String {
    update
        .status
        .as_ref()
        .map(|s| s.task_id.clone())
        .unwrap_or_default()
}

/// The state an update reports (`TaskStaging` when it has no status).
pub fn state_of(update: &StatusUpdate) -> TaskState {
    update
        .status
        .as_ref()
        .map(|s| s.state())
        .unwrap_or(TaskState::TaskStaging)
}

/// The state an update reports, as the protocol spells it.
pub fn state_name_of(update: &StatusUpdate) -> &'static str {
    state_of(update).as_str_name()
}

/// An update's uuid (the nil uuid when it carries none or a malformed one).
pub fn uuid_of(update: &StatusUpdate) -> Uuid {
    Uuid::from_bytes(&update.uuid).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Fields<'static> {
        Fields {
            framework_id: "f",
            executor_id: "e",
            task_id: "t",
            state: TaskState::TaskLost,
            reason: TaskReason::ReasonExecutorTerminated,
            message: "gone",
            timestamp: 12.5,
        }
    }

    #[test]
    fn an_agent_update_names_agent_executor_and_uuid_twice() {
        let uuid = vec![7; 16];
        let update = new(
            fields(),
            Sender::Agent {
                agent_id: "a".into(),
                uuid: uuid.clone(),
            },
        );
        let status = update.status.as_ref().unwrap();
        assert_eq!(
            (update.agent_id.as_str(), status.agent_id.as_str()),
            ("a", "a")
        );
        assert_eq!((&update.uuid, &status.uuid), (&uuid, &uuid));
        assert_eq!(status.executor_id, "e");
        assert_eq!(status.source(), TaskSource::SourceAgent);
        assert_eq!(update.latest_state(), TaskState::TaskLost);
        assert_eq!(update.timestamp, status.timestamp);
        assert_eq!(task_of(&update), "t");
        assert_eq!(state_name_of(&update), "TASK_LOST");
        assert_eq!(uuid_of(&update), Uuid::from_bytes(&uuid).unwrap());
    }

    #[test]
    fn an_executor_update_has_no_agent_id() {
        let update = new(fields(), Sender::Executor { uuid: vec![1; 16] });
        let status = update.status.as_ref().unwrap();
        assert!(update.agent_id.is_empty() && status.agent_id.is_empty());
        assert_eq!(status.executor_id, "e");
        assert_eq!(status.source(), TaskSource::SourceExecutor);
    }

    #[test]
    fn a_master_update_has_no_uuid_and_names_no_executor_in_its_status() {
        let update = new(fields(), Sender::Master);
        let status = update.status.as_ref().unwrap();
        assert!(update.uuid.is_empty() && status.uuid.is_empty());
        assert_eq!(update.executor_id, "e");
        assert!(status.executor_id.is_empty());
        assert_eq!(status.source(), TaskSource::SourceMaster);
        assert_eq!(uuid_of(&update), Uuid::default());
    }

    #[test]
    fn an_update_without_status_reads_as_staging_of_no_task() {
        let update = StatusUpdate::default();
        assert_eq!(task_of(&update), "");
        assert_eq!(state_of(&update), TaskState::TaskStaging);
    }
}
