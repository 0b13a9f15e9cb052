//! Executor ids chosen by the framework (docs/lifecycle-rules.md rules 4, 8, 9): several
//! tasks on one executor, an executor id launched again after its run completed. Each
//! regression scenario passes against the real agent and fails, on the oracle that
//! guards its rule, with the agent's old behaviour switched back on
//! (`revenant::breakage`, a test-only switch).

use std::path::Path;

use revenant::breakage::Breakage;
use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::scenario::Scenario;

fn violations(scenario: &str, breakage: Breakage) -> Vec<(&'static str, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scenarios")
        .join(scenario);
    let scenario = Scenario::load(&path).expect("scenario parses");
    let seed = scenario.pinned_seeds.first().copied().unwrap_or(0);
    cluster::run(
        &scenario,
        seed,
        &RunOptions {
            breakage,
            ..RunOptions::default()
        },
    )
    .violations
    .into_iter()
    .map(|v| (v.oracle, v.message))
    .collect()
}

#[test]
fn earlier_run_of_a_relaunched_executor_is_collected_after_a_restart() {
    let scenario = "regression_relaunched_executor_old_run_collected.toml";
    assert_eq!(violations(scenario, Breakage::default()), Vec::new());
    let broken = violations(
        scenario,
        Breakage {
            collect_old_runs_at_once: true,
            ..Breakage::default()
        },
    );
    assert!(
        broken.iter().any(|(oracle, message)| *oracle == "leaked"
            && message.contains("sandbox that no meta directory records")
            && message.contains("executors/e1/runs/")),
        "{broken:#?}"
    );
}

#[test]
fn task_for_a_terminating_executor_is_lost_and_the_old_run_completes() {
    let scenario = "regression_task_for_terminating_executor.toml";
    assert_eq!(violations(scenario, Breakage::default()), Vec::new());
    let broken = violations(
        scenario,
        Breakage {
            relaunch_over_terminated_executor: true,
            ..Breakage::default()
        },
    );
    assert!(
        broken.iter().any(|(oracle, message)| *oracle == "delivery"
            && message.contains("task t1"))
            && broken
                .iter()
                .any(|(oracle, message)| *oracle == "expectations" && message.contains("t1")),
        "{broken:#?}"
    );
}

#[test]
fn relaunching_an_executor_id_unschedules_its_directories() {
    // Rule 4 (Mesos's GC unschedule case): e1's and its framework's directories are due
    // while e1's second run (t3) is live; left scheduled, they are removed under it.
    let scenario = "regression_task_for_terminating_executor.toml";
    let broken = violations(
        scenario,
        Breakage {
            skip_unschedule_on_launch: true,
            ..Breakage::default()
        },
    );
    assert!(
        broken
            .iter()
            .any(|(oracle, message)| *oracle == "expectations" && message.contains("t3")),
        "{broken:#?}"
    );
}
