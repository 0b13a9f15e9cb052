//! docs/simulator-reach.md 15f happens in the default sweep: in the first seeds of
//! `swarm_agent_machine`, an operator restarts the agent with more resources (or a new
//! one) under `--reconfiguration_policy additive`, and the agent keeps its id and takes
//! them (coverage point `agent_resources_changed_compatibly`, which no swarm seed reached
//! before); and restarts it with less, which stops recovery with the error R9 names
//! (docs/recovery-rules.md), after which the operator starts it afresh as a new agent.
//! Judged from the faults the simulator injected, the agent processes' exits and starts
//! it saw, and the coverage points.
#![allow(clippy::disallowed_methods)]

use std::path::Path;

use revenant_sim::cluster::{self, AgentOutcome, RunOptions};
use revenant_sim::scenario::Scenario;

const SEEDS: u64 = 60;

#[test]
fn reconfigured_restarts_happen_in_the_default_swarm() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/swarm_agent_machine.toml");
    let scenario = Scenario::load(&path).expect("scenario parses");
    let mut additive_taken = 0;
    let mut incompatible_stopped_and_restarted = 0;
    for seed in 0..SEEDS {
        let result = cluster::run(&scenario, seed, &RunOptions::default());
        assert!(
            result.violations.is_empty(),
            "seed {seed}: {:?}",
            result.violations
        );
        let faults = &result.observations.faults;
        let additive = faults
            .iter()
            .any(|(_, f)| f.starts_with(revenant_sim::corrupt::ADDITIVE_RECONFIGURATION));
        let taken = result
            .coverage
            .get("agent_resources_changed_compatibly")
            .is_some_and(|n| *n > 0);
        if additive && taken {
            additive_taken += 1;
        }
        let changed = faults
            .iter()
            .find(|(_, f)| f.starts_with(revenant_sim::corrupt::INCOMPATIBLE_RECONFIGURATION));
        let Some((changed, _)) = changed else {
            continue;
        };
        let exits = &result.observations.agent_exits;
        let stopped = exits.iter().find(|(time, _, outcome)| {
            time >= changed
                && matches!(outcome, AgentOutcome::Failed(m) if m.starts_with("incompatible agent info"))
        });
        let restarted = stopped.is_some_and(|(stop, _, _)| {
            result
                .observations
                .agent_starts
                .iter()
                .any(|(time, _, _)| time > stop)
        });
        if restarted {
            incompatible_stopped_and_restarted += 1;
        }
    }
    eprintln!(
        "of {SEEDS} seeds: {additive_taken} with an additive change taken, {incompatible_stopped_and_restarted} with an incompatible change stopping recovery and the agent started afresh"
    );
    assert!(additive_taken > 0, "no additive change was taken");
    assert!(
        incompatible_stopped_and_restarted > 0,
        "no incompatible change stopped recovery and was repaired"
    );
}
