//! The four sweep findings fixed after issue 9 (docs/recovery-rules.md R14,
//! docs/task-lifecycle.md L23), each kept as a regression scenario at its original seed:
//! the real agent passes it, and with the old behaviour switched back on
//! (`revenant::breakage`, test-only) it fails under exactly the oracle that found it.
#![allow(clippy::disallowed_methods)]

use std::path::Path;

use revenant::breakage::Breakage;
use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::scenario::Scenario;

fn oracles_failing(scenario: &str, breakage: Breakage) -> Vec<&'static str> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(scenario);
    let scenario = Scenario::load(&path).expect("scenario parses");
    let seed = scenario.pinned_seeds[0];
    let mut oracles: Vec<&'static str> = cluster::run(
        &scenario,
        seed,
        &RunOptions {
            breakage,
            ..RunOptions::default()
        },
    )
    .violations
    .iter()
    .map(|v| v.oracle)
    .collect();
    oracles.sort_unstable();
    oracles.dedup();
    oracles
}

fn holds_and_fails_when_broken(scenario: &str, breakage: Breakage, oracle: &str) {
    assert_eq!(
        oracles_failing(scenario, Breakage::default()),
        Vec::<&str>::new(),
        "{scenario}"
    );
    assert_eq!(
        oracles_failing(scenario, breakage),
        vec![oracle],
        "{scenario} with the old behaviour"
    );
}

fn no_recovery_sync() -> Breakage {
    Breakage {
        skip_recovery_sync: true,
        ..Breakage::default()
    }
}

#[test]
fn a_launch_log_recovered_unsynced_is_made_durable_before_it_is_acted_on() {
    holds_and_fails_when_broken(
        "regression_recovered_unsynced_task_log.toml",
        no_recovery_sync(),
        "durability",
    );
    holds_and_fails_when_broken(
        "regression_recovered_unsynced_task_log_shared_executor.toml",
        no_recovery_sync(),
        "durability",
    );
}

#[test]
fn an_update_recovered_unsynced_is_made_durable_before_it_is_reacknowledged() {
    holds_and_fails_when_broken(
        "regression_recovered_unsynced_update_record.toml",
        no_recovery_sync(),
        "durability",
    );
}

#[test]
fn a_task_whose_terminal_update_is_unacknowledged_is_not_launched_again() {
    holds_and_fails_when_broken(
        "regression_launch_of_task_with_unacknowledged_terminal_update.toml",
        Breakage {
            relaunch_ended_task: true,
            ..Breakage::default()
        },
        "terminal",
    );
}
