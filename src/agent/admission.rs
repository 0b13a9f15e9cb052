//! What the agent decides about its executors' connections (docs/design.md D55-D57):
//! whether a registration or re-registration is admitted, refused or closed
//! (docs/security.md SEC16), who sent a status update, and which executors the
//! re-registration timeout destroys (docs/recovery-rules.md R12). Plain functions of
//! the agent's records and `now`; `executors.rs`, `recovery.rs` and `driver.rs` log the
//! verdicts, carry out the [`Effect`]s and do the rest (checkpoints, updates).

use std::collections::BTreeMap;

use tokio::time::Instant;

use super::effects::Effect;
use super::ExecutorPhase;
use crate::ids::{AgentId, ExecutorId, FrameworkId};
use crate::os::ProcessId;
use crate::proto::{
    envelope::Body, ExecutorInfo, ExecutorRegistered, FrameworkInfo, RunTask, ShutdownExecutor,
    TaskInfo,
};
use crate::security::executor_secret::{self, Verifier};
use crate::wire::ConnectionId;

/// A registration as the agent's records see it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Registering<'a> {
    /// The phase of the executor named, if the agent runs it with the run named.
    pub phase: Option<ExecutorPhase>,
    /// What verifies the secret of the executor's current run, if known.
    pub verifier: Option<&'a Verifier>,
    /// The secret the connection presented.
    pub secret: &'a str,
    /// A re-registration (it carries the executor's updates and tasks).
    pub reregistering: bool,
    /// The agent itself is still recovering.
    pub agent_recovering: bool,
    /// The executor's framework is being shut down.
    pub shutting_down: bool,
}

/// The verdict on a registration (D55).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Admission {
    /// An executor that never registered before the agent restarted registers: it is
    /// left alone (its connection kept, unanswered) to the re-registration timeout.
    LeftToTimeout,
    /// Not an executor the agent awaits: told to shut down.
    Refused,
    /// Its secret does not verify (the reason, without the secret): the connection is
    /// closed and nothing of the executor changes (SEC16).
    SecretRefused(&'static str),
    /// Admitted: it runs.
    Admitted,
}

/// Judges `registering` (D55): an awaited executor that never registered is only
/// checked for its secret; any other must be one the agent expects in this phase (a
/// launched one registering while the agent runs, a recovered or a reconnecting one
/// re-registering, never one of a framework being shut down) and then present its
/// run's secret.
pub(super) fn admit(registering: Registering<'_>) -> Admission {
    let secret = || executor_secret::check(registering.verifier, registering.secret);
    let phase = registering.phase;
    if phase == Some(ExecutorPhase::Reregistering) && !registering.reregistering {
        return match secret() {
            Ok(()) => Admission::LeftToTimeout,
            Err(reason) => Admission::SecretRefused(reason),
        };
    }
    let expected = match phase {
        Some(ExecutorPhase::Launching) => {
            !registering.reregistering && !registering.agent_recovering
        }
        Some(ExecutorPhase::Reregistering) | Some(ExecutorPhase::Running) => {
            registering.reregistering
        }
        _ => false,
    };
    if registering.shutting_down || !expected {
        return Admission::Refused;
    }
    match secret() {
        Ok(()) => Admission::Admitted,
        Err(reason) => Admission::SecretRefused(reason),
    }
}

/// What a refusal does to `connection` (D55); an admission's messages are the
/// driver's (they carry its records).
pub(super) fn refusal(admission: Admission, connection: ConnectionId) -> Vec<Effect> {
    match admission {
        Admission::Refused => vec![Effect::Send {
            to: connection,
            body: Body::ShutdownExecutor(ShutdownExecutor {
                reason: "unknown executor".into(),
            }),
        }],
        Admission::SecretRefused(_) => vec![Effect::Close { connection }],
        Admission::LeftToTimeout | Admission::Admitted => Vec::new(),
    }
}

/// D55: what an admitted executor on `connection` is sent: that it is registered with
/// agent `agent`, then every task queued for it while it was not, in order.
pub(super) fn welcome(
    connection: ConnectionId,
    agent: &AgentId,
    framework: &FrameworkInfo,
    executor: &ExecutorInfo,
    queued: Vec<TaskInfo>,
) -> Vec<Effect> {
    let registered = Body::ExecutorRegistered(ExecutorRegistered {
        agent_id: agent.to_string(),
    });
    std::iter::once(registered)
        .chain(queued.into_iter().map(|task| {
            Body::RunTask(RunTask {
                framework: Some(framework.clone()),
                executor: Some(executor.clone()),
                task: Some(task),
            })
        }))
        .map(|body| Effect::Send {
            to: connection,
            body,
        })
        .collect()
}

/// D56: the executor a status update on `connection` comes from: only a connection
/// that registered speaks for an executor (SEC16); `None` drops the update.
pub(super) fn update_sender(
    registered: &BTreeMap<ConnectionId, (FrameworkId, ExecutorId)>,
    connection: ConnectionId,
) -> Option<(FrameworkId, ExecutorId)> {
    registered.get(&connection).cloned()
}

/// An executor the re-registration timeout destroys (D57).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Late {
    /// Its framework.
    pub framework: FrameworkId,
    /// The executor.
    pub executor: ExecutorId,
    /// Its process, killed first.
    pub kill: Option<ProcessId>,
}

/// D57: once `now` reaches the re-registration `deadline`, every executor still
/// awaited (recovered alive, not re-registered) is late: its process is killed and
/// its tasks end. `None` while the deadline has not come (or none is armed).
pub(super) fn late_reregistrations<'a>(
    now: Instant,
    deadline: Option<Instant>,
    executors: impl Iterator<
        Item = (
            &'a FrameworkId,
            &'a ExecutorId,
            ExecutorPhase,
            Option<&'a ProcessId>,
        ),
    >,
) -> Option<Vec<Late>> {
    if deadline.is_none_or(|deadline| now < deadline) {
        return None;
    }
    Some(
        executors
            .filter(|(_, _, phase, _)| *phase == ExecutorPhase::Reregistering)
            .map(|(framework, executor, _, process)| Late {
                framework: framework.clone(),
                executor: executor.clone(),
                kill: process.cloned(),
            })
            .collect(),
    )
}

/// The effects of destroying `late` executors: their processes killed, in order.
pub(super) fn kills(late: &Late) -> Vec<Effect> {
    late.kill
        .iter()
        .map(|process| Effect::Kill {
            process: process.clone(),
        })
        .collect()
}
