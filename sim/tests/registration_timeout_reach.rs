//! docs/lifecycle-rules.md rule 19: the swarm knob `hanging_executor_fraction` makes the
//! executor registration timeout (rule 1) strike within swarm runs. The swarms keep it
//! at 0 for now (the executor oracles judge hung processes as executors, see rule 19),
//! so this turns it on in a copy of each swarm and checks that some of the first seeds
//! reach the coverage point (and prints how many do with the knob off).
#![allow(clippy::disallowed_methods)]

use std::path::Path;

use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::scenario::Scenario;

fn runs_reaching_the_timeout(scenario: &Scenario, seeds: u64) -> u64 {
    (0..seeds)
        .filter(|seed| {
            cluster::run(scenario, *seed, &RunOptions::default())
                .coverage
                .get("agent_executor_registration_timeout")
                .is_some_and(|n| *n > 0)
        })
        .count() as u64
}

#[test]
fn hanging_executors_reach_the_registration_timeout() {
    for name in ["swarm_agent_machine.toml", "swarm_master_failover.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios")
            .join(name);
        let mut scenario = Scenario::load(&path).expect("scenario parses");
        let off = runs_reaching_the_timeout(&scenario, 20);
        scenario
            .swarm
            .as_mut()
            .expect("a swarm")
            .hanging_executor_fraction = 0.05;
        let on = runs_reaching_the_timeout(&scenario, 20);
        eprintln!("{name}: {on} of 20 runs reached the registration timeout with 5% hanging launches, {off} without");
        assert!(on > 0, "{name}: no run of 20 reached it with the knob on");
    }
}
