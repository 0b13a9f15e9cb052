//! docs/lifecycle-rules.md rules 19 and 20: the swarms run with the knob
//! `hanging_executor_fraction` on, so that the executor registration timeout (rule 1)
//! strikes in the default sweep, not only in its regression scenario; and the agent's
//! destruction of orphan executors at recovery (rule 20) happens there too. This checks
//! both points in the first seeds of each swarm as it is (printing how many runs reach
//! each, and how many reach the registration timeout with the knob off).
#![allow(clippy::disallowed_methods)]

use std::path::Path;

use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::scenario::Scenario;

const SEEDS: u64 = 40;

fn runs_reaching(scenario: &Scenario, point: &str) -> u64 {
    (0..SEEDS)
        .filter(|seed| {
            cluster::run(scenario, *seed, &RunOptions::default())
                .coverage
                .get(point)
                .is_some_and(|n| *n > 0)
        })
        .count() as u64
}

#[test]
fn the_swarms_reach_the_registration_timeout_and_orphan_destruction() {
    for name in ["swarm_agent_machine.toml", "swarm_master_failover.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios")
            .join(name);
        let mut scenario = Scenario::load(&path).expect("scenario parses");
        let fraction = scenario
            .swarm
            .as_ref()
            .expect("a swarm")
            .hanging_executor_fraction;
        assert!(fraction > 0.0, "{name}: hanging_executor_fraction is off");
        let timeout = runs_reaching(&scenario, "agent_executor_registration_timeout");
        let orphans = runs_reaching(&scenario, "agent_orphan_executor_destroyed");
        scenario
            .swarm
            .as_mut()
            .expect("a swarm")
            .hanging_executor_fraction = 0.0;
        let off = runs_reaching(&scenario, "agent_executor_registration_timeout");
        eprintln!(
            "{name}: of {SEEDS} runs, {timeout} reached the registration timeout with {fraction} hanging launches ({off} with none), {orphans} destroyed an orphan"
        );
        assert!(
            timeout > 0,
            "{name}: no run of {SEEDS} reached the registration timeout"
        );
        assert!(
            orphans > 0,
            "{name}: no run of {SEEDS} destroyed an orphan executor"
        );
    }
}
