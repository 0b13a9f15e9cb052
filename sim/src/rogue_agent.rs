//! The rogue agent (docs/security.md SEC48, docs/simulator-reach.md 15p): in runs that
//! draw the rogue party ([`crate::rogue`]) and then, from a stream of its own
//! (`rogue-agent`), the swarm's `rogue_agent_fraction`, an agent whose principal the
//! masters' `register_agents` ACL refuses tries to join the cluster. From a host of its
//! own ([`ROGUE_AGENT_HOST`], principal [`ROGUE_AGENT_PRINCIPAL`], handed to the master
//! by the simulated transport as TLS or credentials would on real binaries, SEC40) it
//! sends `RegisterAgent` with plausible resources and its own host name and port to
//! whichever master leads, once in the fault phase and, in half of those runs, once more
//! later (often after a master failover in the failover swarm). It records on its own
//! side what it sent and every message the masters answered; the masters' end of its
//! connections is recorded by `crate::master_wire`. The `rogue_agent` oracle judges both.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use revenant::os::Network;
use revenant::proto::envelope::Body;
use revenant::proto::{AgentInfo, RegisterAgent, Resource};

pub use crate::hosts::{ROGUE_AGENT_HOST, ROGUE_AGENT_PRINCIPAL};
use crate::observations::{Observations, MASTER_PORT};
use crate::scenario::Scenario;
use crate::seams::{derive_seed, SimNet};

/// The port the rogue agent says it listens on.
pub const ROGUE_AGENT_PORT: u16 = 5051;

/// How long the rogue agent listens on a connection after its registration.
pub const LISTEN: Duration = Duration::from_secs(3);

/// How long it keeps listening once a master admitted it (a violation), to hear whether
/// a task is placed on it.
pub const LISTEN_ADMITTED: Duration = Duration::from_secs(10);

/// When the rogue agent registers (simulated time from the run's start): empty unless the
/// run draws the rogue party and then the swarm's `rogue_agent_fraction`; one time in
/// the fault phase, and in half of those runs a second one 10 to 60 s later. Every draw
/// comes from the stream `rogue-agent`, so no other draw of the run changes.
pub fn plan(scenario: &Scenario, seed: u64) -> Vec<Duration> {
    let fraction = scenario
        .swarm
        .as_ref()
        .map_or(0.0, |s| s.rogue_agent_fraction);
    if fraction <= 0.0 || crate::rogue::plan(scenario, seed).is_empty() {
        return Vec::new();
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(derive_seed(seed, "rogue-agent"));
    if !rng.gen_bool(fraction.clamp(0.0, 1.0)) {
        return Vec::new();
    }
    let phase = scenario.fault_phase_s.max(10.0);
    let first = rng.gen_range(5.0..phase);
    let mut out = vec![Duration::from_secs_f64(first)];
    if rng.gen_bool(0.5) {
        out.push(Duration::from_secs_f64(first + rng.gen_range(10.0..60.0)));
    }
    out
}

/// The rogue agent's information: no id (a new agent), its own host and port, and
/// resources an agent of the scenario could have.
pub fn info() -> AgentInfo {
    let resource = |name: &str, scalar: f64| Resource {
        name: name.into(),
        scalar,
        ..Default::default()
    };
    AgentInfo {
        id: String::new(),
        hostname: ROGUE_AGENT_HOST.into(),
        port: u32::from(ROGUE_AGENT_PORT),
        resources: vec![
            resource("cpus", 8.0),
            resource("mem", 16384.0),
            resource("disk", 65536.0),
        ],
        checkpoint: true,
    }
}

/// The rogue agent: registers at each planned time (module documentation).
pub async fn party(
    plan: Vec<Duration>,
    scenario: Scenario,
    observations: Rc<RefCell<Observations>>,
) {
    for (number, at) in plan.into_iter().enumerate() {
        let now = turmoil::sim_elapsed().unwrap_or_default();
        tokio::time::sleep(at.saturating_sub(now)).await;
        register(&scenario, number + 1, &observations).await;
    }
}

/// One attempt: `RegisterAgent` to each master in turn (ten rounds) until one answers it
/// with anything but `NotLeader`.
async fn register(scenario: &Scenario, number: usize, observations: &Rc<RefCell<Observations>>) {
    let net = SimNet::on(ROGUE_AGENT_HOST);
    for round in 0..10u32 {
        for index in 1..=scenario.masters.max(1) {
            let master = format!("master{index}");
            let Ok(Ok(mut stream)) = tokio::time::timeout(
                Duration::from_secs(2),
                net.connect(&format!("{master}:{MASTER_PORT}")),
            )
            .await
            else {
                continue;
            };
            let register = Body::RegisterAgent(RegisterAgent { info: Some(info()) });
            if revenant::wire::write_envelope(&mut stream, register)
                .await
                .is_err()
            {
                continue;
            }
            let on = format!("attempt {number} to {master}");
            tracing::info!(target: "revenant_sim", attempt = %on, principal = ROGUE_AGENT_PRINCIPAL, "rogue agent registers");
            {
                let now = turmoil::sim_elapsed().unwrap_or_default();
                observations
                    .borrow_mut()
                    .rogue
                    .agent_sent
                    .push((now, on.clone()));
            }
            let mut until = tokio::time::Instant::now() + LISTEN;
            let mut answered = false;
            while let Ok(Ok(body)) =
                tokio::time::timeout_at(until, revenant::wire::read_envelope(&mut stream)).await
            {
                let now = turmoil::sim_elapsed().unwrap_or_default();
                let kind = revenant::wire::kind(&body);
                let reason = match &body {
                    Body::ShutdownAgent(m) => m.reason.clone(),
                    _ => String::new(),
                };
                tracing::info!(target: "revenant_sim", kind, attempt = %on, "rogue agent heard from the master");
                observations
                    .borrow_mut()
                    .rogue
                    .agent_heard
                    .push((now, kind, on.clone(), reason));
                match body {
                    Body::NotLeader(_) => break,
                    Body::ShutdownAgent(_) => return,
                    // Admitted (a violation the oracle reports): listen on, to hear
                    // whether a task is placed on it.
                    Body::AgentRegistered(_) | Body::AgentReregistered(_) if !answered => {
                        answered = true;
                        until = tokio::time::Instant::now() + LISTEN_ADMITTED;
                    }
                    _ => {}
                }
            }
            if answered {
                return;
            }
        }
        tokio::time::sleep(Duration::from_secs(1 + u64::from(round))).await;
    }
}
