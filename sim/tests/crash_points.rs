//! Crash points over the catalogue's launch, status update, acknowledgement,
//! registration and garbage-collection scenarios: the agent dies at each of its
//! filesystem operations, and the machine loses power after each operation that changed
//! the disk (a bounded number of crash states per point, to keep the test within a few
//! minutes on two cores); every point must hold every rule (`docs/crash-points.md`).
//! A test-only breakage that skips a directory sync must be found.

use std::path::{Path, PathBuf};

use revenant::breakage::Breakage;
use revenant_sim::crash_points::{self, Report, Settings};
use revenant_sim::scenario::Scenario;

fn scenario(name: &str) -> Scenario {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&path).expect("scenario")
}

fn jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

fn search(name: &str, power_loss_states: usize, breakage: Breakage) -> Report {
    search_with(name, power_loss_states, true, breakage)
}

fn search_with(name: &str, power_loss_states: usize, deaths: bool, breakage: Breakage) -> Report {
    let settings = Settings {
        seed: 0,
        power_loss_states,
        deaths,
        jobs: jobs(),
        breakage,
        progress: false,
    };
    let report = crash_points::search(&scenario(name), &settings).expect("a fixed scenario");
    eprint!("{}", report.render());
    report
}

fn assert_green(report: &Report) {
    assert!(
        report.baseline_violations.is_empty(),
        "{}: the scenario fails without any crash: {:?}",
        report.scenario,
        report.baseline_violations
    );
    assert!(
        report.ops.len() > 20,
        "{}: only {} operations counted",
        report.scenario,
        report.ops.len()
    );
    assert_eq!(report.process_runs, report.ops.len());
    let unexpected: Vec<String> = report.failures.iter().map(|f| format!("{f:?}")).collect();
    assert!(
        unexpected.is_empty(),
        "{}: {} failed points:\n{}",
        report.scenario,
        unexpected.len(),
        unexpected.join("\n")
    );
}

#[test]
fn launch_and_reconnect_every_point_holds() {
    let report = search("agent_restart_reconnects_executor", 2, Breakage::default());
    assert_green(&report);
    assert!(report.power_loss_runs > report.power_loss_points);
    assert_zero_filled_and_bounded(&report, 2);
}

/// docs/crash-points.md CP-7: some power losses leave zeroed bytes, and no point tries
/// more than its bound plus the zero-filled states.
fn assert_zero_filled_and_bounded(report: &Report, power_loss_states: usize) {
    assert!(
        report.zero_filled_runs > 0,
        "{}: no power loss left zeroed bytes",
        report.scenario
    );
    assert!(
        report.power_loss_runs
            <= report.power_loss_points * (power_loss_states + crash_points::ZERO_FILLED_STATES),
        "{}: {} power-loss runs at {} points",
        report.scenario,
        report.power_loss_runs,
        report.power_loss_points
    );
}

#[test]
fn checkpointed_update_replay_every_point_holds() {
    let report = search(
        "replay_checkpointed_update_after_restart",
        2,
        Breakage::default(),
    );
    assert_green(&report);
    assert_zero_filled_and_bounded(&report, 2);
}

#[test]
fn update_retry_and_acknowledgement_every_point_holds() {
    assert_green(&search(
        "status_update_retried_until_acknowledged",
        1,
        Breakage::default(),
    ));
}

/// With power losses: a power loss in the first operations delays the agent's
/// registration past the task's submission; a task placed while the registration reply
/// was lost is reconciled by the master (docs/stream-rules.md S2,
/// `regression_task_placed_while_registration_reply_lost`), so every point holds.
#[test]
fn reliable_registration_every_point_holds() {
    assert_green(&search("reliable_registration", 1, Breakage::default()));
}

/// Power losses in the first start of a reboot scenario can leave the machine off when
/// the scenario's own reboot is due; its task then runs to the end of the run, which
/// has converged (docs/task-lifecycle.md L24). Every point holds.
#[test]
fn reboot_every_point_holds() {
    assert_green(&search(
        "reboot_registers_new_agent",
        1,
        Breakage::default(),
    ));
}

#[test]
fn completed_run_collection_every_point_holds() {
    assert_green(&search(
        "completed_executor_not_relaunched",
        1,
        Breakage::default(),
    ));
}

/// With the parent directory sync skipped after renames, some power loss loses a name
/// the agent acted on: crash points with power losses find it, by the durability rule
/// (docs/task-lifecycle.md L22: an update acknowledged to the executor or forwarded to
/// the master, or resources reported to the master, are still on the disk the power
/// loss leaves). Agent deaths alone cannot: the disk keeps everything a dead process
/// did; power losses only, to keep the test short.
#[test]
fn a_skipped_directory_sync_is_found_by_power_losses() {
    let breakage = Breakage {
        skip_dir_sync: true,
        ..Breakage::default()
    };
    let report = search_with("agent_restart_reconnects_executor", 2, false, breakage);
    assert_eq!(report.process_runs, 0);
    let found = report
        .failures
        .iter()
        .filter(|f| f.violations.iter().any(|v| v.oracle == "durability"))
        .count();
    assert!(
        found > 0,
        "no power-loss point failed the durability rule with the directory sync skipped"
    );
}

#[test]
fn a_swarm_scenario_is_refused_with_a_reason() {
    let error = crash_points::search(
        &scenario("swarm_agent_machine"),
        &Settings {
            seed: 0,
            power_loss_states: 1,
            deaths: true,
            jobs: 1,
            breakage: Breakage::default(),
            progress: false,
        },
    )
    .expect_err("a swarm scenario");
    assert!(error.contains("[swarm]"), "{error}");
}
