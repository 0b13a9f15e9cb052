//! Checkpoint writes as effects (docs/design.md D65–D67). A decision that must make
//! something durable before it is told returns a [`Write`] among its [`Step`]s; the
//! driver (`perform.rs`) makes it through the checkpoint store at the point the decision
//! was made, and a failed write stops the list there and fails the agent (D6), so no
//! message of the list after it leaves.

use crate::checkpoint::paths::RunPath;
use crate::checkpoint::ForkedPid;
use crate::ids::{AgentId, ContainerId, ExecutorId, FrameworkId, TaskId, Uuid};
use crate::proto::{AgentInfo, ExecutorInfo, FrameworkInfo, Resource, StatusUpdate, Task};

use super::effects::Effect;

/// An executor's run, named by owned ids (a [`RunPath`] borrows them).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Run {
    /// The agent.
    pub agent: AgentId,
    /// The framework.
    pub framework: FrameworkId,
    /// The executor.
    pub executor: ExecutorId,
    /// The run.
    pub container: ContainerId,
}

impl Run {
    /// The run of `executor` of `framework` on `agent`.
    pub fn new(
        agent: &AgentId,
        framework: &FrameworkId,
        executor: &ExecutorId,
        container: &ContainerId,
    ) -> Run {
        Run {
            agent: agent.clone(),
            framework: framework.clone(),
            executor: executor.clone(),
            container: container.clone(),
        }
    }

    /// The checkpoint paths' view of it.
    pub fn path(&self) -> RunPath<'_> {
        RunPath {
            agent: &self.agent,
            framework: &self.framework,
            executor: &self.executor,
            container: &self.container,
        }
    }
}

/// One checkpoint write (docs/design.md D65).
#[derive(Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // moved once; boxing buys nothing
pub(super) enum Write {
    /// `agent.info` and the `latest` link (a first registration).
    AgentInfo(AgentInfo),
    /// Replace `resources.info`.
    Resources(Vec<Resource>),
    /// `framework.info` of a framework new to the agent.
    Framework {
        /// The agent.
        agent: AgentId,
        /// The framework.
        info: FrameworkInfo,
    },
    /// `executor.info` of an executor about to be launched.
    Executor {
        /// The agent.
        agent: AgentId,
        /// The executor.
        info: ExecutorInfo,
    },
    /// The run's directory and the executor's `latest` link.
    Run(Run),
    /// `task.info` (TASK_STAGING) and an empty `task.updates`.
    Task {
        /// The run.
        run: Run,
        /// The task.
        task: Task,
    },
    /// Append a status update to the task's log.
    Update {
        /// The run.
        run: Run,
        /// The task.
        task: TaskId,
        /// The update.
        update: StatusUpdate,
    },
    /// Append an acknowledgement to the task's log.
    Ack {
        /// The run.
        run: Run,
        /// The task.
        task: TaskId,
        /// The acknowledged update.
        uuid: Uuid,
    },
    /// `forked.pid` of a launched executor.
    ForkedPid {
        /// The run.
        run: Run,
        /// The process, the boot and the secret's verifier.
        forked: ForkedPid,
    },
    /// `libprocess.pid`: where a registered executor is reached (its wake endpoint, or
    /// its connection).
    LibprocessPid {
        /// The run.
        run: Run,
        /// The file's text.
        text: String,
    },
    /// The run's `executor.sentinel` (it completed).
    Sentinel(Run),
}

/// One thing a writing decision asks for: an [`Effect`] or a [`Write`], carried out in
/// order (docs/design.md D66).
#[derive(Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // moved once; boxing buys nothing
pub(super) enum Step {
    /// Done to a connection, a process or a directory (never fails the agent).
    Effect(Effect),
    /// Made durable (a failure fails the agent: docs/design.md D6).
    Write(Write),
}

impl From<Effect> for Step {
    fn from(effect: Effect) -> Step {
        Step::Effect(effect)
    }
}

impl From<Write> for Step {
    fn from(write: Write) -> Step {
        Step::Write(write)
    }
}
