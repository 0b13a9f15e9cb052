//! Typed trace decisions: the events the oracles and reviewers reason about, parsed once
//! (from the role and message of the real code's `tracing` event) when the trace records
//! them, so that oracles match on a variant instead of a free-text prefix. The printed
//! trace line is unchanged: the decision is carried beside it in
//! [`crate::trace::TraceEvent::decision`].

/// A decision one role made (or a fact the simulator recorded), as the trace names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Decision {
    // The simulator.
    /// A fault was injected.
    FaultInjected,
    /// An agent process starts (an incarnation).
    AgentProcessStarting,
    /// An agent process ended.
    AgentProcessEnded,
    /// The agent machine boots after a power loss.
    MachineBoots,
    /// A framework received a status update (recorded by the simulator on the
    /// framework's side of the wire).
    FrameworkReceivedUpdate,
    // The agent.
    /// Recovery saw a new boot id: nothing of the old agent is recovered.
    RebootDetected,
    /// Recovery recovered the old agent (its id and state).
    RecoveredAgent,
    /// Recovery recovered checkpointed resources.
    RecoveredCheckpointedResources,
    /// The agent checkpointed its resources.
    CheckpointedResources,
    /// Recovery found an executor alive and waits for it to re-register.
    ExecutorAliveAfterRestart,
    /// An executor re-registered with a restarted agent.
    ExecutorReconnected,
    /// An executor did not re-register in time: the agent destroys it.
    ExecutorReregistrationTimedOut,
    /// Recovery is complete.
    RecoveryComplete,
    /// Recovery found an executor's process gone.
    ExecutorProcessGone,
    /// `recover=cleanup`: the agent shuts an executor down (or exits).
    CleanupRecovery,
    /// The agent asks an executor to shut down (its framework is shut down).
    AskingExecutorToShutDown,
    /// An executor of a framework being shut down terminated.
    ShutDownFrameworkExecutorTerminated,
    /// The agent garbage collected a directory.
    GarbageCollected,
    /// The agent registered as a new agent.
    RegisteredWithMaster,
    /// The agent re-registered under its old id.
    ReregisteredWithMaster,
    /// The agent checkpointed and accepted a status update.
    StatusUpdateAccepted,
    /// The agent acknowledged a status update to its executor.
    UpdateAcknowledgedToExecutor,
    // The master.
    /// The master admitted a new agent.
    MasterAgentRegistered,
    /// The master admitted a re-registering agent.
    MasterAgentReregistered,
    /// The master reported a task lost with its removed agent.
    TaskLostWithAgent,
    /// The master reserved resources and sent the agent its view.
    MasterReservedResources,
    /// The master re-sent its view of the agent's checkpointed resources.
    MasterResentResources,
}

impl Decision {
    /// Every variant, for the test that each one is produced by the catalogue.
    pub const ALL: &'static [Decision] = &[
        Decision::FaultInjected,
        Decision::AgentProcessStarting,
        Decision::AgentProcessEnded,
        Decision::MachineBoots,
        Decision::FrameworkReceivedUpdate,
        Decision::RebootDetected,
        Decision::RecoveredAgent,
        Decision::RecoveredCheckpointedResources,
        Decision::CheckpointedResources,
        Decision::ExecutorAliveAfterRestart,
        Decision::ExecutorReconnected,
        Decision::ExecutorReregistrationTimedOut,
        Decision::RecoveryComplete,
        Decision::ExecutorProcessGone,
        Decision::CleanupRecovery,
        Decision::AskingExecutorToShutDown,
        Decision::ShutDownFrameworkExecutorTerminated,
        Decision::GarbageCollected,
        Decision::RegisteredWithMaster,
        Decision::ReregisteredWithMaster,
        Decision::StatusUpdateAccepted,
        Decision::UpdateAcknowledgedToExecutor,
        Decision::MasterAgentRegistered,
        Decision::MasterAgentReregistered,
        Decision::TaskLostWithAgent,
        Decision::MasterReservedResources,
        Decision::MasterResentResources,
    ];

    /// The decision an event of `role` with `message` records, if any.
    pub fn parse(role: &str, message: &str) -> Option<Decision> {
        let exact = |text: &str| message == text;
        let prefix = |text: &str| message.starts_with(text);
        Some(match role {
            "sim" => match () {
                _ if exact("fault injected") => Decision::FaultInjected,
                _ if exact("agent process starting") => Decision::AgentProcessStarting,
                _ if exact("agent process ended") => Decision::AgentProcessEnded,
                _ if exact("agent machine boots") => Decision::MachineBoots,
                _ if exact("framework received a status update") => {
                    Decision::FrameworkReceivedUpdate
                }
                _ => return None,
            },
            "agent" => match () {
                _ if prefix("machine rebooted") => Decision::RebootDetected,
                _ if exact("recovered agent") => Decision::RecoveredAgent,
                _ if exact("recovered checkpointed resources") => {
                    Decision::RecoveredCheckpointedResources
                }
                _ if exact("checkpointed resources") => Decision::CheckpointedResources,
                _ if prefix("executor alive") => Decision::ExecutorAliveAfterRestart,
                _ if exact("executor re-registered") => Decision::ExecutorReconnected,
                _ if prefix("executor did not re-register in time") => {
                    Decision::ExecutorReregistrationTimedOut
                }
                _ if exact("recovery complete") => Decision::RecoveryComplete,
                _ if prefix("executor process is gone") => Decision::ExecutorProcessGone,
                _ if prefix("recover=cleanup") => Decision::CleanupRecovery,
                _ if exact("asking executor to shut down") => Decision::AskingExecutorToShutDown,
                _ if exact("executor of a framework being shut down terminated") => {
                    Decision::ShutDownFrameworkExecutorTerminated
                }
                _ if exact("garbage collected") => Decision::GarbageCollected,
                _ if exact("registered with master") => Decision::RegisteredWithMaster,
                _ if exact("re-registered with master") => Decision::ReregisteredWithMaster,
                _ if exact("status update accepted") => Decision::StatusUpdateAccepted,
                _ if exact("acknowledged status update to executor") => {
                    Decision::UpdateAcknowledgedToExecutor
                }
                _ => return None,
            },
            "master" => match () {
                _ if exact("agent registered") => Decision::MasterAgentRegistered,
                _ if exact("agent re-registered") => Decision::MasterAgentReregistered,
                _ if exact("task lost with its agent") => Decision::TaskLostWithAgent,
                _ if prefix("reserved resources") => Decision::MasterReservedResources,
                _ if prefix(
                    "re-sending the master's view of the agent's checkpointed resources",
                ) =>
                {
                    Decision::MasterResentResources
                }
                _ => return None,
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Decision;

    #[test]
    fn parses_by_role() {
        assert_eq!(
            Decision::parse("agent", "recovered agent"),
            Some(Decision::RecoveredAgent)
        );
        assert_eq!(Decision::parse("master", "recovered agent"), None);
        assert_eq!(
            Decision::parse(
                "agent",
                "machine rebooted: agent state not recovered, registering as a new agent"
            ),
            Some(Decision::RebootDetected)
        );
        assert_eq!(Decision::parse("agent", "checkpointed resources x"), None);
    }
}
