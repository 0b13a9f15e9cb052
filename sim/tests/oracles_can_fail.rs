//! Each oracle can fail: a deliberately broken variant of the behaviour it guards
//! (a test-only switch in `revenant::breakage`) makes a sweep of the swarm scenario fail
//! that oracle within a bounded number of seeds, while the unbroken code passes the same
//! seeds (checked by the sweep tests).

use std::path::Path;

use revenant::breakage::Breakage;
use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::scenario::Scenario;

fn first_failing_seed(scenario: &str, breakage: Breakage, oracle: &str, seeds: u64) -> Option<u64> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scenarios")
        .join(scenario);
    let scenario = Scenario::load(&path).expect("scenario parses");
    let options = RunOptions {
        breakage,
        ..RunOptions::default()
    };
    (0..seeds).find(|seed| {
        cluster::run(&scenario, *seed, &options)
            .violations
            .iter()
            .any(|v| v.oracle == oracle)
    })
}

fn assert_caught(scenario: &str, breakage: Breakage, oracle: &str, seeds: u64) {
    let seed = first_failing_seed(scenario, breakage, oracle, seeds);
    assert!(
        seed.is_some(),
        "oracle {oracle} did not catch {breakage:?} within {seeds} seeds of {scenario}"
    );
    eprintln!("{oracle}: caught at seed {}", seed.unwrap());
}

#[test]
fn delivery_catches_updates_acknowledged_without_a_checkpoint() {
    let breakage = Breakage {
        skip_update_checkpoint: true,
        ..Breakage::default()
    };
    assert_caught("swarm_agent_machine.toml", breakage, "delivery", 300);
}

#[test]
fn terminal_catches_a_task_reported_running_after_it_finished() {
    let breakage = Breakage {
        resurrect_after_terminal: true,
        ..Breakage::default()
    };
    assert_caught(
        "agent_restart_reconnects_executor.toml",
        breakage,
        "terminal",
        5,
    );
}

#[test]
fn reboot_catches_an_agent_that_recovers_across_a_reboot() {
    let breakage = Breakage {
        ignore_boot_id: true,
        ..Breakage::default()
    };
    assert_caught("swarm_agent_machine.toml", breakage, "reboot", 300);
}

#[test]
fn recovery_timeout_catches_executors_that_wait_forever() {
    let breakage = Breakage {
        executor_ignores_recovery_timeout: true,
        ..Breakage::default()
    };
    assert_caught(
        "swarm_agent_machine.toml",
        breakage,
        "recovery_timeout",
        300,
    );
}

#[test]
fn strict_recovery_catches_non_atomic_checkpoints() {
    let breakage = Breakage {
        non_atomic_checkpoints: true,
        ..Breakage::default()
    };
    assert_caught("swarm_agent_machine.toml", breakage, "strict_recovery", 400);
}

#[test]
fn liveness_catches_an_agent_that_never_resumes_forwarding() {
    let breakage = Breakage {
        no_resume_after_registration: true,
        ..Breakage::default()
    };
    assert_caught(
        "agent_restart_reconnects_executor.toml",
        breakage,
        "liveness",
        5,
    );
}

#[test]
fn no_panic_catches_a_panic_in_recovery() {
    let breakage = Breakage {
        panic_on_recovery_warning: true,
        ..Breakage::default()
    };
    assert_caught("swarm_agent_machine.toml", breakage, "no_panic", 400);
}

#[test]
fn resources_catches_an_agent_that_forgets_its_checkpointed_resources() {
    let breakage = Breakage {
        forget_checkpointed_resources: true,
        ..Breakage::default()
    };
    assert_caught(
        "agent_restart_reconnects_executor.toml",
        breakage,
        "resources",
        5,
    );
}

#[test]
fn teardown_catches_an_agent_that_ignores_shutdown_framework() {
    let breakage = Breakage {
        ignore_shutdown_framework: true,
        ..Breakage::default()
    };
    assert_caught(
        "torn_down_framework_shut_down_on_reregistration.toml",
        breakage,
        "teardown",
        1,
    );
}

#[test]
fn resources_catches_an_agent_that_ignores_the_masters_view() {
    let breakage = Breakage {
        ignore_checkpoint_resources: true,
        ..Breakage::default()
    };
    assert_caught(
        "checkpointed_resources_resent_on_reregistration.toml",
        breakage,
        "resources",
        1,
    );
    // The scenario's own expectation fails too.
    assert_caught(
        "checkpointed_resources_resent_on_reregistration.toml",
        breakage,
        "expectations",
        1,
    );
}
