//! The JSON of `/state`, as typed structs (schema: docs/http.md). Fields are declared in
//! name order, the order the JSON has always had. The CLI and the tests read `/state`
//! back into these same structs.

use serde::{Deserialize, Serialize};

/// A task and its latest state (`TASK_RUNNING`, ...).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// The task id.
    pub id: String,
    /// Its latest state.
    pub state: String,
}

/// The agent's `/state` (`200` once recovered).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentState {
    /// The resources checkpointed in `resources.info`, described (`cpus(web):1`).
    pub checkpointed_resources: String,
    /// The frameworks with executors on this agent.
    pub frameworks: Vec<AgentFramework>,
    /// The agent id (empty before the first registration).
    pub id: String,
    /// The master the agent talks to (or last tried).
    pub master: String,
    /// Status updates not yet acknowledged by their framework.
    pub pending_updates: usize,
    /// `recovering`, `running`, ... (the agent's phase, docs/recovery-rules.md R11).
    pub phase: String,
    /// Whether a master registered the agent.
    pub registered: bool,
}

/// The agent's `/state` while it recovers (`503`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentRecovering {
    /// Why there is no state yet.
    pub error: String,
}

/// A framework as the agent knows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentFramework {
    /// Whether the framework checkpoints.
    pub checkpoint: bool,
    /// Its executors on this agent.
    pub executors: Vec<AgentExecutor>,
    /// The framework id.
    pub id: String,
    /// The framework's name.
    pub name: String,
}

/// An executor as the agent knows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentExecutor {
    /// The run (container) id.
    pub container: String,
    /// The executor id.
    pub id: String,
    /// `launched`, `registered`, `terminating`, ... (lower case).
    pub phase: String,
    /// The executor's process id, once known.
    pub pid: Option<u32>,
    /// Task ids waiting for the executor to register.
    pub queued: Vec<String>,
    /// Its tasks.
    pub tasks: Vec<Task>,
}

/// The master's `/state`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MasterState {
    /// Every agent the master knows, removed ones included.
    pub agents: Vec<MasterAgent>,
    /// Frameworks torn down or removed, with their tasks as recorded.
    pub completed_frameworks: Vec<CompletedFramework>,
    /// Active frameworks.
    pub frameworks: Vec<MasterFramework>,
    /// The leading master's address (this one's when it leads; may be empty).
    pub leader: String,
    /// Whether this master leads.
    pub leading: bool,
    /// Tasks on agents whose framework is neither active nor completed.
    pub orphan_tasks: Vec<OrphanTask>,
    /// Tasks submitted and not yet placed on an agent.
    pub pending_tasks: usize,
}

/// An agent as the master knows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MasterAgent {
    /// `host:port`.
    pub address: String,
    /// The master's view of the agent's checkpointed resources, once a reservation set it.
    pub checkpointed_resources: Option<String>,
    /// The agent id.
    pub id: String,
    /// `connected`, `disconnected`, `removed`, ... (lower case).
    pub phase: String,
    /// The resources the agent said it has when it last registered or re-registered
    /// (`describe_resources` form; docs/task-lifecycle.md L37).
    #[serde(default)]
    pub resources: String,
    /// Its tasks.
    pub tasks: Vec<AgentTask>,
}

/// A task on an agent, as the master knows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentTask {
    /// The framework it belongs to.
    pub framework_id: String,
    /// The task id.
    pub id: String,
    /// Its latest state.
    pub state: String,
}

/// An active framework.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MasterFramework {
    /// Whether its scheduler is connected.
    pub connected: bool,
    /// The framework id.
    pub id: String,
    /// Its name.
    pub name: String,
}

/// A framework torn down or removed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletedFramework {
    /// The framework id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its tasks, as recorded when it ended.
    pub tasks: Vec<Task>,
}

/// A task whose framework the master knows neither as active nor as completed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OrphanTask {
    /// The agent it runs on.
    pub agent_id: String,
    /// Its framework.
    pub framework_id: String,
    /// The task id.
    pub id: String,
    /// Its latest state.
    pub state: String,
}
