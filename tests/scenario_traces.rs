#![allow(clippy::disallowed_methods)]
//! The catalogue: every fixed scenario under `scenarios/` runs (seed 0), holds every
//! oracle, and its recovery trace (the agent's and master's decisions, with simulated
//! times and stable ids) matches the reviewed snapshot in `tests/snapshots/`. A change of
//! behaviour shows up here as a snapshot diff; `cargo insta review` accepts it.

use std::path::Path;

use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::scenario::Scenario;

fn recovery_trace(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    let scenario = Scenario::load(&path).expect("scenario parses");
    let result = cluster::run(&scenario, 0, &RunOptions::default());
    let violations: Vec<String> = result
        .violations
        .iter()
        .map(|v| format!("[{}] {:?}: {}", v.oracle, v.time, v.message))
        .collect();
    assert!(
        violations.is_empty(),
        "{name}: oracles failed:\n{}",
        violations.join("\n")
    );
    revenant_sim::trace::recovery_trace(&result.trace)
}

macro_rules! catalogue {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                insta::assert_snapshot!(stringify!($name), recovery_trace(stringify!($name)));
            }
        )*

        /// Every fixed scenario file has a snapshot test above.
        #[test]
        fn every_fixed_scenario_has_a_snapshot_test() {
            let listed: Vec<&str> = vec![$(stringify!($name)),*];
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
            let mut missing = Vec::new();
            for entry in std::fs::read_dir(&dir).expect("scenarios/") {
                let path = entry.expect("entry").path();
                let scenario = Scenario::load(&path).expect("every scenario parses");
                let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
                if scenario.swarm.is_none() && scenario.pinned_seeds.is_empty() && !listed.contains(&stem.as_str()) {
                    missing.push(stem);
                }
            }
            assert!(missing.is_empty(), "scenarios without a snapshot test: {missing:?}");
        }
    };
}

catalogue!(
    agent_dies_between_write_and_sync,
    agent_leaves_on_sigusr1,
    agent_restart_reconnects_executor,
    cleanup_shuts_down_executors,
    completed_executor_not_relaunched,
    disk_full_during_checkpoint,
    executor_gives_up_after_recovery_timeout,
    executor_terminated_while_agent_down,
    kill_task_after_restart,
    master_failover,
    non_checkpointing_framework_loses_task,
    non_strict_recovery_counts_corruption,
    partitioned_agent_removed,
    reboot_registers_new_agent,
    replay_checkpointed_update_after_restart,
    status_update_retried_until_acknowledged,
    strict_recovery_stops_on_corruption,
    tasks_missing_from_agent_reconciled,
);
