//! docs/lifecycle-rules.md rule 19: the swarms' `hanging_executor_fraction` makes the
//! executor registration timeout (rule 1) strike within swarm runs, not only in its
//! fixed regression scenario: some of the first seeds of each swarm reach the coverage
//! point, and every run that does still holds every oracle.
#![allow(clippy::disallowed_methods)]

use std::path::Path;

use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::scenario::Scenario;

fn runs_reaching_the_timeout(scenario: &str, seeds: u64) -> u64 {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(scenario);
    let scenario = Scenario::load(&path).expect("scenario parses");
    let mut reached = 0;
    for seed in 0..seeds {
        let result = cluster::run(&scenario, seed, &RunOptions::default());
        if result
            .coverage
            .get("agent_executor_registration_timeout")
            .is_some_and(|n| *n > 0)
        {
            reached += 1;
            assert!(
                result.violations.is_empty(),
                "{} seed {seed}: {:?}",
                scenario.name,
                result.violations
            );
        }
    }
    reached
}

#[test]
fn both_swarms_reach_the_executor_registration_timeout() {
    for scenario in ["swarm_agent_machine.toml", "swarm_master_failover.toml"] {
        let reached = runs_reaching_the_timeout(scenario, 40);
        eprintln!("{scenario}: {reached} of 40 runs reached the registration timeout");
        assert!(reached > 0, "{scenario}: no run of 40 reached it");
    }
}
