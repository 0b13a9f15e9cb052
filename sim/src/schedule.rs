//! A run's fault schedule: the scenario's fixed faults, or its rates drawn for the seed,
//! and in an exploration branch a fresh draw after the branch's moment. Below the
//! driver, the oracles and the cluster's entry point (docs/design.md D62).

use rand::{Rng, SeedableRng};

use crate::scenario::{AgentTarget, FaultSpec, Scenario};
use crate::seams::derive_seed;

/// Turns the scenario's faults (fixed, or rates) into a schedule for this seed.
pub fn schedule_for(scenario: &Scenario, seed: u64) -> Vec<FaultSpec> {
    let mut schedule = scenario.faults.clone();
    if let Some(swarm) = &scenario.swarm {
        let mut rng = rand::rngs::StdRng::seed_from_u64(derive_seed(seed, "swarm"));
        let minutes = scenario.fault_phase_s / 60.0;
        for (kind, rate) in &swarm.per_minute {
            // Kinds added later draw from streams of their own (below).
            if !crate::faults::draws_from_shared_stream(*kind) {
                continue;
            }
            if !rng.gen_bool(swarm.kind_on_probability.clamp(0.0, 1.0)) {
                continue;
            }
            // A Poisson count by thinning: at most 4x the mean, each with probability 1/4.
            let expected = rate * minutes;
            let trials = (expected * 4.0).ceil() as u32;
            for _ in 0..trials {
                if !rng.gen_bool(0.25) {
                    continue;
                }
                let at_s = rng.gen_range(1.0..scenario.fault_phase_s.max(2.0));
                let restart = rng.gen_range(
                    swarm.restart_after_s[0]
                        ..=swarm.restart_after_s[1].max(swarm.restart_after_s[0]),
                );
                let masters = scenario.masters;
                let hosts = [
                    "agent1".to_owned(),
                    "framework".to_owned(),
                    format!("master{}", rng.gen_range(1..=masters)),
                ];
                let a = rng.gen_range(0..hosts.len());
                let mut b = rng.gen_range(0..hosts.len());
                if a == b {
                    b = (b + 1) % hosts.len();
                }
                schedule.push(FaultSpec {
                    at_s,
                    kind: *kind,
                    restart_after_s: Some(restart),
                    ops: Some(rng.gen_range(1..40)),
                    duration_s: Some(rng.gen_range(1.0..30.0)),
                    a: Some(hosts[a].clone()),
                    b: Some(hosts[b].clone()),
                    max_ms: Some(rng.gen_range(10..500)),
                    jump_s: Some(rng.gen_range(-3600.0..3600.0)),
                    task: None,
                    error: None,
                    message: None,
                    from: None,
                    to: None,
                    count: None,
                    state: None,
                    agent: None,
                    framework: None,
                    path: None,
                    op: None,
                    boot: None,
                    how: None,
                    zero_fill: None,
                    // Drawn last, and only with several agents, so that one-agent
                    // schedules stay as they were.
                    on_agent: (scenario.agents > 1)
                        .then(|| AgentTarget::One(rng.gen_range(1..=scenario.agents))),
                });
            }
        }
        let fixed = scenario.faults.len();
        crate::faults::weight_boundaries(scenario, seed, &mut schedule[fixed..]);
        crate::disk_faults::aim_drawn(scenario, seed, &mut schedule[fixed..]);
        crate::faults::zero_fill_reboots(scenario, seed, &mut schedule[fixed..]);
        let at_recovery = crate::disk_faults::at_recovery(scenario, seed, &schedule[fixed..]);
        schedule.extend(at_recovery);
        let mut extras = crate::faults::swarm_extras(scenario, seed);
        crate::faults::tear_headers(scenario, seed, &mut extras);
        schedule.extend(extras);
    }
    schedule.sort_by(|x, y| x.at_s.total_cmp(&y.at_s));
    schedule
}

/// The run's fault schedule: [`schedule_for`], or in a branch, the parent's
/// faults up to the branch's moment and a fresh draw after it.
pub fn schedule(scenario: &Scenario, seed: u64) -> Vec<FaultSpec> {
    let parent = schedule_for(scenario, seed);
    let Some(branch) = crate::branch::current() else {
        return parent;
    };
    let at = branch.at.as_secs_f64();
    let fresh = schedule_for(
        scenario,
        derive_seed(seed, &format!("branch-{}", branch.index)),
    );
    let mut schedule: Vec<FaultSpec> = parent.into_iter().filter(|f| f.at_s <= at).collect();
    schedule.extend(fresh.into_iter().filter(|f| f.at_s > at));
    schedule.sort_by(|x, y| x.at_s.total_cmp(&y.at_s));
    schedule
}
