//! The agent's side of executor wakes (docs/recovery-rules.md R31–R36): it checkpoints
//! each executor's wake endpoint in the run's `pids/libprocess.pid` when the executor
//! registers, reads it back at recovery, and, as soon as recovery has read the
//! checkpoints, connects to the endpoint of every executor it waits for, answers the
//! endpoint's challenge with a proof made from the run's secret verifier and leaves. The
//! executor then reconnects at once; whatever goes wrong here (no endpoint, a stale or
//! torn file, the executor gone, a lost message) costs only time: the executor's own
//! back-off still brings it back (R35).

use tracing::{debug, info};

use super::{Agent, AgentError, ExecutorPhase};
use crate::checkpoint::paths::RunPath;
use crate::checkpoint::recover::RunState;
use crate::executor::wake;
use crate::ids::{ContainerId, ExecutorId, FrameworkId};
use crate::proto::envelope::Body;
use crate::proto::WakeExecutor;
use crate::security::executor_secret::Verifier;
use crate::wire::{self, ConnectionId};

/// R31: the wake endpoint a recovered run's `libprocess.pid` names, if it names one.
pub(super) fn recovered_endpoint(
    framework: &FrameworkId,
    executor: &ExecutorId,
    run: &RunState,
) -> Option<String> {
    let text = run.libprocess_pid.as_deref()?;
    match wake::parse_libprocess(text) {
        Ok(endpoint) => Some(endpoint),
        Err(why) => {
            info!(%framework, %executor, run = %run.id, %why, "no wake endpoint in libprocess.pid: the executor's back-off will bring it back");
            None
        }
    }
}

impl Agent {
    /// R31: writes `libprocess.pid` when an executor registers, and again when it
    /// re-registers with an endpoint other than the recovered one (the file was missing,
    /// stale or torn). Without an endpoint the file names the connection, as before.
    pub(super) fn checkpoint_endpoint(
        &mut self,
        fid: &FrameworkId,
        eid: &ExecutorId,
        container: &ContainerId,
        connection: ConnectionId,
        endpoint: &str,
        reregistering: bool,
    ) -> Result<(), AgentError> {
        let presented = wake::parse_libprocess(&wake::libprocess_text(eid.as_str(), endpoint)).ok();
        let known = self
            .executor_mut(fid, eid)
            .and_then(|executor| executor.endpoint.clone());
        if reregistering && (presented.is_none() || presented == known) {
            return Ok(());
        }
        let text = match &presented {
            Some(endpoint) => wake::libprocess_text(eid.as_str(), endpoint),
            None => format!("executor({eid})@{connection}"),
        };
        let agent = self.agent_id();
        let run = RunPath {
            agent: &agent,
            framework: fid,
            executor: eid,
            container,
        };
        self.store.write_libprocess_pid(&run, &text)?;
        if let Some(executor) = self.executor_mut(fid, eid) {
            executor.endpoint = presented;
        }
        Ok(())
    }

    /// R32: tells every executor recovery waits for, that has an endpoint and a secret
    /// verifier, to reconnect now. Each wake runs on its own and is bounded by
    /// [`wake::WAKE_TIMEOUT`]; none is waited for.
    pub(super) fn wake_executors(&mut self) {
        let targets: Vec<(FrameworkId, ExecutorId, ContainerId, String, Verifier)> = self
            .executors()
            .filter(|(_, _, e)| e.phase == ExecutorPhase::Reregistering)
            .filter_map(|(fid, eid, e)| {
                Some((
                    fid.clone(),
                    eid.clone(),
                    e.container.clone(),
                    e.endpoint.clone()?,
                    e.secret.clone()?,
                ))
            })
            .collect();
        if targets.is_empty() {
            return;
        }
        info!(
            executors = targets.len(),
            "waking the executors to re-register"
        );
        for (fid, eid, container, endpoint, verifier) in targets {
            let net = self.env.net.clone();
            let clock = self.env.clock.clone();
            self.tasks.spawn_local(async move {
                let deadline = clock.sleep(wake::WAKE_TIMEOUT);
                let wake = wake_one(net, clock, &endpoint, &verifier, &fid, &eid, &container);
                let outcome = tokio::select! {
                    biased;
                    outcome = wake => outcome,
                    _ = deadline => Err("timed out".to_owned()),
                };
                match outcome {
                    Ok(()) => debug!(framework = %fid, executor = %eid, %endpoint, "executor woken"),
                    Err(why) => info!(framework = %fid, executor = %eid, %endpoint, %why, "could not wake the executor: its back-off will bring it back"),
                }
            });
        }
    }
}

/// One wake: connect, read the challenge, answer it (R33), close.
async fn wake_one(
    net: std::rc::Rc<dyn crate::os::Network>,
    clock: std::rc::Rc<dyn crate::os::Clock>,
    endpoint: &str,
    verifier: &Verifier,
    fid: &FrameworkId,
    eid: &ExecutorId,
    container: &ContainerId,
) -> Result<(), String> {
    let mut stream = wire::connect(net, clock, endpoint.to_owned(), wake::WAKE_TIMEOUT).await?;
    let challenge = match wire::read_envelope(&mut stream).await {
        Ok(Body::WakeChallenge(challenge)) => challenge,
        Ok(other) => return Err(format!("the endpoint sent {}", wire::kind(&other))),
        Err(error) => return Err(error.to_string()),
    };
    if challenge.nonce.len() != wake::NONCE_BYTES {
        return Err(format!(
            "the endpoint's challenge has {} bytes",
            challenge.nonce.len()
        ));
    }
    let proof = wake::proof(
        verifier,
        &challenge.nonce,
        fid.as_str(),
        eid.as_str(),
        container.as_str(),
    );
    let body = Body::WakeExecutor(WakeExecutor {
        framework_id: fid.to_string(),
        executor_id: eid.to_string(),
        container_id: container.to_string(),
        proof,
    });
    wire::write_envelope(&mut stream, body)
        .await
        .map_err(|error| error.to_string())
}
