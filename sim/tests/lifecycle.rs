//! The executor lifecycle rules (docs/lifecycle-rules.md) against their regression
//! scenarios: with the agent's old behaviour switched back on (`revenant::breakage`, a
//! test-only switch) each scenario fails, and the oracle that guards the rule is the one
//! that says so; the real agent passes. Rules 8 and 13 are the master's, switched back
//! the same way.

use std::path::Path;

use revenant::breakage::Breakage;
use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::scenario::Scenario;

fn oracles_failing(scenario: &str, breakage: Breakage) -> Vec<&'static str> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scenarios")
        .join(scenario);
    let scenario = Scenario::load(&path).expect("scenario parses");
    let seed = scenario.pinned_seeds.first().copied().unwrap_or(0);
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
    oracles.dedup();
    oracles
}

fn old_behaviour() -> Breakage {
    Breakage {
        keep_idle_unregistered_executors: true,
        ..Breakage::default()
    }
}

#[test]
fn registration_timeout_fails_the_task_of_an_executor_that_never_registers() {
    let scenario = "regression_executor_registration_timeout.toml";
    assert_eq!(
        oracles_failing(scenario, Breakage::default()),
        Vec::<&str>::new()
    );
    let broken = oracles_failing(scenario, old_behaviour());
    assert!(
        broken.contains(&"liveness") && broken.contains(&"expectations"),
        "{broken:?}"
    );
}

#[test]
fn left_behind_catches_an_idle_unregistered_executor() {
    let scenario = "regression_killed_queued_task_destroys_executor.toml";
    assert_eq!(
        oracles_failing(scenario, Breakage::default()),
        Vec::<&str>::new()
    );
    assert_eq!(
        oracles_failing(scenario, old_behaviour()),
        vec!["left_behind"]
    );
}

fn leaking() -> Breakage {
    Breakage {
        leak_completed_directories: true,
        ..Breakage::default()
    }
}

#[test]
fn completed_framework_is_collected_meta_and_sandbox() {
    let scenario = "regression_completed_framework_collected.toml";
    assert_eq!(
        oracles_failing(scenario, Breakage::default()),
        Vec::<&str>::new()
    );
    let broken = oracles_failing(scenario, leaking());
    assert!(
        broken.contains(&"leaked") && broken.contains(&"expectations"),
        "{broken:?}"
    );
}

#[test]
fn collection_survives_restarts_more_frequent_than_gc_delay() {
    let scenario = "regression_gc_across_restarts.toml";
    assert_eq!(
        oracles_failing(scenario, Breakage::default()),
        Vec::<&str>::new()
    );
    let broken = oracles_failing(scenario, leaking());
    assert!(
        broken.contains(&"leaked") && broken.contains(&"expectations"),
        "{broken:?}"
    );
}

#[test]
fn old_agents_are_collected_after_a_reboot() {
    let scenario = "regression_old_agent_collected.toml";
    assert_eq!(
        oracles_failing(scenario, Breakage::default()),
        Vec::<&str>::new()
    );
    assert_eq!(oracles_failing(scenario, leaking()), vec!["leaked"]);
}

/// Rule 8: with the master's old behaviour (it never read `failover_timeout`) the
/// frameworks that stay away keep their executors; the failover oracle and the
/// expectations say so. (The liveness oracle used to say so too, for t2 of the
/// returning scheduler, which is not refused; but t2's `sleep 300` is still genuinely
/// running when the 150 s run ends, which docs/task-lifecycle.md L24 counts as
/// converged: that the task should have been killed is the failover rule's to judge.)
#[test]
fn failover_timeout_removes_a_framework_that_stays_away() {
    let scenario = "regression_framework_failover_timeout.toml";
    assert_eq!(
        oracles_failing(scenario, Breakage::default()),
        Vec::<&str>::new()
    );
    let broken = oracles_failing(
        scenario,
        Breakage {
            master_ignores_failover_timeout: true,
            ..Breakage::default()
        },
    );
    for oracle in ["failover", "expectations"] {
        assert!(broken.contains(&oracle), "{oracle} not in {broken:?}");
    }
}

/// Rule 13: with the master's old behaviour (unknown tasks answered only after the
/// re-registration timeout) the reconciliation of t-gone is never answered.
#[test]
fn new_master_answers_reconciliation_of_an_unknown_task_at_once() {
    let scenario = "regression_reconcile_unknown_task_new_master.toml";
    assert_eq!(
        oracles_failing(scenario, Breakage::default()),
        Vec::<&str>::new()
    );
    let broken = oracles_failing(
        scenario,
        Breakage {
            master_waits_to_reconcile_unknown_tasks: true,
            ..Breakage::default()
        },
    );
    // The scenario's `[expect]`. The `reconciliation` oracle does not judge L32's bound
    // here: the partition between the agent and the master is around the request, and
    // the bounds are judged only where no such fault could hold a message
    // (docs/task-lifecycle.md L31, L32); `oracles_can_fail` shows L32 failing late.
    assert_eq!(broken, vec!["expectations"]);
}

#[test]
fn a_crash_in_the_middle_of_a_collection_never_leaks() {
    // Item 5 of issue 10 (docs/lifecycle-rules.md rules 5, 6): the agent dies inside a
    // collection pass. The scenario's own death lands after t1's run sandbox is removed
    // and before its meta directory; the pass finishes after the restart. Moved to every
    // operation of the pass, the death never leaks with sandboxes removed first; with
    // paths removed in order (meta first) some death leaves a sandbox nothing records.
    let scenario = "regression_crash_mid_collection.toml";
    assert_eq!(
        oracles_failing(scenario, Breakage::default()),
        Vec::<&str>::new()
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scenarios")
        .join(scenario);
    let base = Scenario::load(&path).expect("scenario parses");
    let failing = |ops: u64, breakage: Breakage| -> Vec<&'static str> {
        let mut scenario = base.clone();
        scenario.faults[0].ops = Some(ops);
        cluster::run(
            &scenario,
            1,
            &RunOptions {
                breakage,
                ..RunOptions::default()
            },
        )
        .violations
        .iter()
        .map(|v| v.oracle)
        .collect()
    };
    let meta_first = Breakage {
        remove_meta_first: true,
        ..Breakage::default()
    };
    let mut leaks_meta_first = 0;
    for ops in 1..30 {
        assert_eq!(
            failing(ops, Breakage::default()),
            Vec::<&str>::new(),
            "ops {ops}"
        );
        if failing(ops, meta_first).contains(&"leaked") {
            leaks_meta_first += 1;
        }
    }
    assert!(
        leaks_meta_first > 0,
        "no death leaked with meta removed first"
    );
}
