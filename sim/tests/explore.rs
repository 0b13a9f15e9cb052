//! `sweep --explore` (docs/failing-runs.md F11–F15): a branch replays its parent run up
//! to its moment and takes another path after it; the same sweep with exploration gives
//! the same results twice; the branches reach the first pass's rarest points more often.

use std::path::{Path, PathBuf};
use std::time::Duration;

use revenant_sim::cluster::RunOptions;
use revenant_sim::explore::{self, Branch, Settings};
use revenant_sim::scenario::Scenario;
use revenant_sim::sweep;

fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../scenarios/{name}.toml"))
}

#[test]
fn a_branch_replays_its_parent_up_to_its_moment_then_departs() {
    let scenario = Scenario::load(&scenario_path("swarm_agent_machine")).unwrap();
    let options = RunOptions::default();
    let seed = 7;
    let (parent, first) = explore::run(&scenario, seed, None, &options);
    // Branch at the moment the parent first recovered (or first reached any point).
    let at = first
        .get("agent_recovered")
        .or_else(|| first.values().find(|t| **t > Duration::from_secs(5)))
        .copied()
        .expect("the run reached a coverage point after 5 s");
    let branch = Branch { at, index: 1 };
    let (one, one_first) = explore::run(&scenario, seed, Some(branch), &options);
    let (again, _) = explore::run(&scenario, seed, Some(branch), &options);
    assert_eq!(one.trace_hash, again.trace_hash, "a branch is reproducible");
    let before = |trace: &[revenant_sim::trace::TraceEvent]| {
        trace
            .iter()
            .filter(|e| e.time <= at)
            .map(|e| e.line())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        before(&parent.trace),
        before(&one.trace),
        "up to its moment a branch is its parent"
    );
    for (point, time) in &first {
        if *time <= at {
            assert_eq!(
                one_first.get(point),
                Some(time),
                "{point} reached as before"
            );
        }
    }
    let (two, _) = explore::run(&scenario, seed, Some(Branch { at, index: 2 }), &options);
    assert!(
        parent.trace_hash != one.trace_hash || parent.trace_hash != two.trace_hash,
        "after its moment a branch departs from its parent"
    );
    assert_ne!(
        one.trace_hash, two.trace_hash,
        "and branches from each other"
    );
    // Outside a branch, nothing changes: the plain run is the run of `cluster::run`.
    let plain = revenant_sim::cluster::run(&scenario, seed, &options);
    assert_eq!(plain.trace_hash, parent.trace_hash);
}

#[test]
fn an_exploring_sweep_is_deterministic_and_reaches_rare_points_more() {
    let files = vec![scenario_path("swarm_agent_machine")];
    let settings = Settings {
        rarest: 10,
        branches: 2,
    };
    let sweep_once = || {
        sweep::sweep(
            &files,
            &sweep::SweepOptions {
                jobs: 2,
                explore: Some(settings),
                ..sweep::SweepOptions::new(0..10)
            },
        )
        .unwrap()
    };
    let one = sweep_once();
    let two = sweep_once();
    let (first, first_runs) = one.first_pass.clone().expect("a first pass");
    assert_eq!(first_runs, 10);
    let runs = one.passed + one.failed.len();
    assert!(runs > first_runs, "some runs branched: {runs}");
    assert_eq!(one.coverage, two.coverage, "same coverage twice");
    assert_eq!(one.branch_new, two.branch_new);
    assert_eq!(one.passed, two.passed);
    assert_eq!(
        one.failed
            .iter()
            .map(|f| (f.seed, f.branch))
            .collect::<Vec<_>>(),
        two.failed
            .iter()
            .map(|f| (f.seed, f.branch))
            .collect::<Vec<_>>()
    );
    let rare = explore::rarest(&first, 10);
    let hits = |coverage: &std::collections::BTreeMap<&'static str, usize>| {
        rare.iter()
            .map(|p| coverage.get(p).copied().unwrap_or(0))
            .sum::<usize>()
    };
    assert!(
        hits(&one.coverage) > hits(&first),
        "the branches reach the rarest points again: {} > {}",
        hits(&one.coverage),
        hits(&first)
    );
    let report = revenant_sim::sweep::explore_report(&one);
    assert!(report.starts_with("explore: 10 runs, then"), "{report}");
}
