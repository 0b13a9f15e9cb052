//! Executor ids chosen by the framework (docs/lifecycle-rules.md rules 4, 14, 15): several
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
        broken
            .iter()
            .any(|(oracle, message)| *oracle == "delivery" && message.contains("task t1"))
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

#[test]
fn the_agent_machine_swarm_draws_shared_executors_and_aimed_disk_errors() {
    // docs/simulator-reach.md rules 7 and 11: the default sweep's swarm gives executors
    // several tasks, and aims some of its disk errors at a path or an operation kind.
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scenarios")
        .join("swarm_agent_machine.toml");
    let scenario = Scenario::load(&path).expect("scenario parses");
    let (mut shared, mut aimed_path, mut aimed_op, mut plain) = (0, 0, 0, 0);
    for seed in 0..100 {
        let executors = cluster::executors_of_tasks(&scenario, seed);
        let mut count = std::collections::BTreeMap::new();
        for executor in executors.values() {
            *count.entry(executor.clone()).or_insert(0) += 1;
        }
        shared += count.values().filter(|n| **n > 1).count();
        for fault in cluster::schedule_for(&scenario, seed) {
            if fault.kind != revenant_sim::scenario::FaultKind::DiskError {
                continue;
            }
            match (&fault.path, &fault.op) {
                (None, None) => plain += 1,
                (path, op) => {
                    aimed_path += usize::from(path.is_some());
                    aimed_op += usize::from(op.is_some());
                }
            }
        }
    }
    assert!(shared > 100, "{shared} executor ids with several tasks");
    assert!(
        aimed_path > 5 && aimed_op > 5 && plain > 5,
        "aimed at a path {aimed_path}, at an op {aimed_op}, plain {plain}"
    );
}

#[test]
fn a_task_naming_a_bad_executor_id_is_refused_with_a_clear_error() {
    let text = r#"
        [[tasks]]
        id = "t1"
        executor = "../x"
        command = "sleep 1"
    "#;
    let scenario: Scenario = toml::from_str(text).expect("parses");
    let error = scenario.validate().expect_err("refused");
    assert!(error.contains("executor '../x'"), "{error}");
    let text = r#"
        [[faults]]
        at_s = 1
        kind = "disk_error"
        op = "frobnicate"
        [[tasks]]
        id = "t1"
        command = "sleep 1"
    "#;
    let scenario: Scenario = toml::from_str(text).expect("parses");
    let error = scenario.validate().expect_err("refused");
    assert!(error.contains("unknown op 'frobnicate'"), "{error}");
}

#[test]
fn the_master_refuses_an_executor_id_that_cannot_name_a_directory() {
    // Rule 8. The scenario format refuses such an id itself, so the run is built by hand.
    let text = r#"
        duration_s = 30
        [[tasks]]
        id = "t1"
        command = "sleep 1"
        [[tasks]]
        id = "t2"
        command = "sleep 1"
    "#;
    let mut scenario: Scenario = toml::from_str(text).expect("parses");
    scenario.name = "bad_executor_id".into();
    scenario.tasks[1].executor = Some("../escape".into());
    let result = cluster::run(&scenario, 1, &RunOptions::default());
    assert_eq!(result.violations, Vec::new());
    let (state, reason) = &result.final_states["t2"];
    assert_eq!(
        (*state, reason.as_str()),
        (revenant::proto::TaskState::TaskError, "REASON_TASK_INVALID")
    );
    assert_eq!(
        result.final_states["t1"].0,
        revenant::proto::TaskState::TaskFinished
    );
}
