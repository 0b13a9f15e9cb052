//! The agent's side of executor wakes (docs/recovery-rules.md R31–R36): it checkpoints
//! each executor's wake endpoint in the run's `pids/libprocess.pid` when the executor
//! registers, reads it back at recovery, and, as soon as recovery has read the
//! checkpoints, connects to the endpoint of every executor it waits for, answers the
//! endpoint's challenge with a proof made from the run's secret verifier and leaves. The
//! executor then reconnects at once; whatever goes wrong here (no endpoint, a stale or
//! torn file, the executor gone, a lost message) costs only time: the executor's own
//! back-off still brings it back (R35).
//!
//! Wakes are paced (docs/recovery-latency.md P20): at most [`WAKES_IN_FLIGHT_MAX`]
//! woken executors are on their way back at once, so that the crowd the agent calls
//! never overflows its own bound on connections not yet identified (docs/security.md
//! SEC4) nor its listener's backlog.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info};

use super::{Agent, AgentError, ExecutorPhase};
use crate::checkpoint::recover::RunState;
use crate::executor::wake;
use crate::ids::{ContainerId, ExecutorId, FrameworkId};
use crate::proto::envelope::Body;
use crate::proto::WakeExecutor;
use crate::security::executor_secret::Verifier;
use crate::wire::{self, ConnectionId};

/// P20: at most this many executors woken and not yet re-registered at once; well under
/// `wire::UNIDENTIFIED_CONNECTIONS_MAX` (128) and the listener's backlog.
pub(super) const WAKES_IN_FLIGHT_MAX: usize = 64;

/// P20: a woken executor holds its place among the [`WAKES_IN_FLIGHT_MAX`] until it
/// re-registers, or at most this long after its wake started (a failed or lost wake
/// must not hold a place for ever): the wake's own bound and as much again for the
/// executor's connection.
pub(super) const WAKE_SLOT: Duration = Duration::from_secs(2);

/// One executor to wake.
type Target = (FrameworkId, ExecutorId, ContainerId, String, Verifier);

/// The executors still to wake, and those woken that have not re-registered yet with
/// when their place frees itself (P20).
#[derive(Default)]
pub(super) struct WakeQueue {
    waiting: VecDeque<Target>,
    woken: BTreeMap<(FrameworkId, ExecutorId), Instant>,
}

impl WakeQueue {
    /// A queue of `targets` to wake in this order, none woken yet.
    fn new(targets: VecDeque<Target>) -> WakeQueue {
        WakeQueue {
            waiting: targets,
            woken: BTreeMap::new(),
        }
    }

    /// When a place next frees itself while executors still wait to be woken: the
    /// agent's loop must run then (nothing when none waits).
    pub(super) fn next_release(&self) -> Option<Instant> {
        if self.waiting.is_empty() {
            return None;
        }
        self.woken.values().min().copied()
    }

    /// An executor re-registered: whether it held a place (P20).
    fn back(&mut self, fid: &FrameworkId, eid: &ExecutorId) -> bool {
        self.woken.remove(&(fid.clone(), eid.clone())).is_some()
    }

    /// At `now`: frees the places whose time is over and returns the executors to wake
    /// now, in queue order, as many as there are free places, each taking a place until
    /// `now + WAKE_SLOT`; those `awaited` says no to are dropped unwoken (P20).
    fn next_wakes(&mut self, now: Instant, awaited: impl Fn(&Target) -> bool) -> Vec<Target> {
        let mut wake = Vec::new();
        if self.waiting.is_empty() {
            return wake;
        }
        self.woken.retain(|_, until| *until > now);
        while self.woken.len() < WAKES_IN_FLIGHT_MAX {
            let Some(target) = self.waiting.pop_front() else {
                break;
            };
            if !awaited(&target) {
                continue;
            }
            self.woken
                .insert((target.0.clone(), target.1.clone()), now + WAKE_SLOT);
            wake.push(target);
        }
        if self.waiting.is_empty() {
            // Nothing left to pace: forget the places.
            self.woken.clear();
        }
        wake
    }
}

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
        // docs/design.md D65.
        let run = super::writes::Run::new(&self.agent_id(), fid, eid, container);
        let write = super::writes::Write::LibprocessPid { run, text };
        self.perform_steps(vec![write.into()], None)?;
        if let Some(executor) = self.executor_mut(fid, eid) {
            executor.endpoint = presented;
        }
        Ok(())
    }

    /// R32: tells every executor recovery waits for, that has an endpoint and a secret
    /// verifier, to reconnect now, [`WAKES_IN_FLIGHT_MAX`] at a time (P20). Each wake
    /// runs on its own and is bounded by [`wake::WAKE_TIMEOUT`]; none is waited for.
    pub(super) fn wake_executors(&mut self) {
        let targets: VecDeque<Target> = self
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
        self.wakes = WakeQueue::new(targets);
        self.pump_wakes();
    }

    /// P20: an executor re-registered; if it was woken, its place goes to the next.
    pub(super) fn woken_executor_back(&mut self, fid: &FrameworkId, eid: &ExecutorId) {
        if self.wakes.back(fid, eid) {
            self.pump_wakes();
        }
    }

    /// P20: frees the places whose time is over and wakes the next executors, as many
    /// as there are free places. An executor that is no longer awaited (it came back by
    /// its back-off, or recovery ended) is skipped.
    pub(super) fn pump_wakes(&mut self) {
        let now = self.now();
        let frameworks = &self.frameworks;
        let targets = self.wakes.next_wakes(now, |(fid, eid, ..)| {
            frameworks
                .get(fid)
                .and_then(|f| f.executors.get(eid))
                .is_some_and(|e| e.phase == ExecutorPhase::Reregistering)
        });
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

#[cfg(test)]
// Any instant will do as the start: only differences count.
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    fn targets(n: usize) -> VecDeque<Target> {
        (0..n)
            .map(|i| {
                (
                    FrameworkId::new("f"),
                    ExecutorId::new(format!("e{i:04}")),
                    ContainerId::new(format!("c{i}")),
                    format!("127.0.0.1:{}", 40000 + i),
                    Verifier::of("secret"),
                )
            })
            .collect()
    }

    fn names(wake: &[Target]) -> Vec<String> {
        wake.iter().map(|t| t.1.to_string()).collect()
    }

    #[test]
    fn fewer_than_the_bound_are_all_woken_at_once_and_nothing_is_paced() {
        let now = Instant::now();
        let mut queue = WakeQueue::new(targets(50));
        let wake = queue.next_wakes(now, |_| true);
        assert_eq!(wake.len(), 50);
        assert_eq!(queue.next_release(), None);
        assert!(queue.next_wakes(now, |_| true).is_empty());
    }

    #[test]
    fn at_most_the_bound_are_in_flight_and_each_return_wakes_the_next() {
        let now = Instant::now();
        let mut queue = WakeQueue::new(targets(200));
        let first = queue.next_wakes(now, |_| true);
        assert_eq!(first.len(), WAKES_IN_FLIGHT_MAX);
        assert_eq!(first[0].1.as_str(), "e0000");
        assert_eq!(queue.next_release(), Some(now + WAKE_SLOT));
        // Nothing more until a place frees itself.
        assert!(queue.next_wakes(now, |_| true).is_empty());
        // One woken executor is back: exactly one more goes, the next in order.
        assert!(queue.back(&FrameworkId::new("f"), &ExecutorId::new("e0003")));
        assert_eq!(names(&queue.next_wakes(now, |_| true)), ["e0064"]);
        // An executor that was not woken (it came back by its back-off) frees nothing.
        assert!(!queue.back(&FrameworkId::new("f"), &ExecutorId::new("e0150")));
        assert!(queue.next_wakes(now, |_| true).is_empty());
    }

    #[test]
    fn a_woken_executor_that_does_not_come_back_frees_its_place_after_the_slot() {
        let now = Instant::now();
        let mut queue = WakeQueue::new(targets(100));
        assert_eq!(queue.next_wakes(now, |_| true).len(), 64);
        let just_before = now + WAKE_SLOT - Duration::from_millis(1);
        assert!(queue.next_wakes(just_before, |_| true).is_empty());
        let wake = queue.next_wakes(now + WAKE_SLOT, |_| true);
        assert_eq!(wake.len(), 36);
        assert_eq!(wake[0].1.as_str(), "e0064");
        // The queue is empty: no more ticks are asked for.
        assert_eq!(queue.next_release(), None);
    }

    #[test]
    fn executors_no_longer_awaited_are_skipped_without_taking_a_place() {
        let now = Instant::now();
        let mut queue = WakeQueue::new(targets(100));
        let wake = queue.next_wakes(now, |t| t.1.as_str() >= "e0010");
        assert_eq!(wake.len(), 64);
        assert_eq!(wake[0].1.as_str(), "e0010");
        assert_eq!(wake[63].1.as_str(), "e0073");
    }
}
