//! ZooKeeper faults (docs/zookeeper.md Z14): a master partitioned from the ZooKeeper
//! host, the host down and back, a session expired by the server. A swarm draws them
//! from streams of their own (`crate::faults::swarm_extras`); their durations sit near
//! the timeouts that matter (the client's two thirds of the session timeout, the
//! session timeout itself) with the share `boundary_weight` (at least a half), a few
//! per cent either side, so that both sides of each timeout are reached.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;

pub use crate::scenario::fault_checks::{is_zk_fault, validate_zk as validate};
use crate::scenario::{FaultKind, FaultSpec, Scenario};
use crate::zk::ZK_HOST;

fn session_timeout(scenario: &Scenario) -> f64 {
    scenario
        .zookeeper
        .as_ref()
        .map_or(10.0, |zk| zk.session_timeout_s)
}

/// A duration near one of the timeouts (±0.5-5%), or anywhere up to 2.5 timeouts.
fn near_timeout(rng: &mut StdRng, scenario: &Scenario) -> f64 {
    let timeout = session_timeout(scenario);
    let weight = scenario
        .swarm
        .as_ref()
        .map_or(0.5, |s| s.boundary_weight.max(0.5));
    if rng.gen_bool(weight.clamp(0.0, 1.0)) {
        let boundary = if rng.gen_bool(0.5) {
            timeout
        } else {
            timeout * 2.0 / 3.0
        };
        let epsilon = rng.gen_range(0.005..0.05);
        if rng.gen_bool(0.5) {
            boundary * (1.0 + epsilon)
        } else {
            boundary * (1.0 - epsilon)
        }
    } else {
        rng.gen_range(1.0..timeout * 2.5)
    }
}

/// Fills a drawn ZooKeeper fault's fields.
pub fn draw(fault: &mut FaultSpec, rng: &mut StdRng, scenario: &Scenario) {
    let masters = scenario.masters.max(1);
    match fault.kind {
        FaultKind::ZkPartition => {
            // A third of them hit whoever leads then.
            if !rng.gen_bool(1.0 / 3.0) {
                fault.a = Some(format!("master{}", rng.gen_range(1..=masters)));
            }
            fault.duration_s = Some(near_timeout(rng, scenario));
        }
        FaultKind::ZkDown => {
            fault.restart_after_s = Some(near_timeout(rng, scenario));
        }
        // Half of them hit whoever leads then.
        FaultKind::ZkExpire | FaultKind::ZkLoseReply if !rng.gen_bool(1.0 / 2.0) => {
            fault.a = Some(format!("master{}", rng.gen_range(1..=masters)));
        }
        _ => {}
    }
}

/// What the driver must do later.
pub enum Later {
    /// Join `master` and the ZooKeeper host again.
    Repair(String),
    /// Start the ZooKeeper host again.
    Restart,
}

/// Applies a ZooKeeper fault at `now`; returns its trace description and what is due
/// later (with when), or `None` when it does not apply (no ZooKeeper, host already down).
pub fn apply(
    sim: &mut turmoil::Sim<'_>,
    fault: &FaultSpec,
    now: Duration,
) -> Option<(String, Option<(Duration, Later)>)> {
    let world = crate::zk::current()?;
    let target = || {
        fault
            .a
            .clone()
            .or_else(|| world.leader_host())
            .unwrap_or_else(|| "master1".to_owned())
    };
    match fault.kind {
        FaultKind::ZkPartition => {
            let master = target();
            if !master.starts_with("master") {
                return None;
            }
            let duration = Duration::from_secs_f64(fault.duration_s.unwrap_or(10.0).max(0.0));
            sim.partition(master.as_str(), ZK_HOST);
            world.set_cut(&master, true);
            Some((
                format!(
                    "partition {master} <-> {ZK_HOST} for {:.3}s",
                    duration.as_secs_f64()
                ),
                Some((now + duration, Later::Repair(master))),
            ))
        }
        FaultKind::ZkDown => {
            if !sim.is_host_running(ZK_HOST) {
                return None;
            }
            sim.crash(ZK_HOST);
            world.down();
            let restart = Duration::from_secs_f64(fault.restart_after_s.unwrap_or(10.0).max(0.0));
            Some((
                format!("zookeeper down (back after {:.3}s)", restart.as_secs_f64()),
                Some((now + restart, Later::Restart)),
            ))
        }
        FaultKind::ZkExpire => {
            let master = target();
            world
                .expire_host(&master)
                .then(|| (format!("zookeeper expires the session of {master}"), None))
        }
        FaultKind::ZkLoseReply => {
            let master = target();
            let only = fault.message.clone();
            world.lose_next_reply(&master, only.clone());
            Some((
                format!(
                    "the answer to the next ZooKeeper {} of {master} will be lost",
                    only.as_deref().unwrap_or("write")
                ),
                None,
            ))
        }
        _ => None,
    }
}

/// Does what was due later.
pub fn later(sim: &mut turmoil::Sim<'_>, what: Later) {
    let Some(world) = crate::zk::current() else {
        return;
    };
    match what {
        Later::Repair(master) => {
            tracing::info!(target: "revenant_sim", a = %master, b = ZK_HOST, "partition healed");
            sim.repair(master.as_str(), ZK_HOST);
            world.set_cut(&master, false);
        }
        Later::Restart => {
            tracing::info!(target: "revenant_sim", "zookeeper restarts");
            sim.bounce(ZK_HOST);
        }
    }
}
