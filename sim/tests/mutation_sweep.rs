#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
//! The test command of the mutation measurement (`docs/mutation-report.md`): every
//! scenario of `scenarios/` under the oracles alone, swarm scenarios over
//! `REVENANT_MUTANT_SEEDS` seeds (default 200), fixed and regression scenarios over their
//! snapshot seed and pinned seeds. It stops at the first violation, so that a mutant the
//! oracles catch costs little. Snapshots are deliberately not compared here: the
//! measurement is of what the simulator's oracles catch, not of trace text.
//!
//! Before the swarms it also runs the crash points (`revenant_sim::crash_points`) of the
//! catalogue's launch, status update and reboot scenarios: agent 1 dies at each of its
//! filesystem operations that change the disk, and the machine loses power (the
//! harshest crash state: only what was synced) after each such one, every rule oracle
//! judging (`docs/crash-points.md`). Without them the store's ordering (the group-commit
//! barrier, the removal of `slaves/latest`) is judged only where a swarm happens to
//! crash at the right operation.
//!
//! `REVENANT_MUTANT_ONLY=a,b` keeps only the scenarios whose name contains `a` or `b`
//! (their crash points too): for checking a few chosen mutants against the scenarios
//! meant to kill them, not for the measurement.
//!
//! Ignored by default (CI does not run it); `cargo mutants` runs it with `--ignored`
//! (see `.cargo/mutants.toml`), and by hand:
//! `cargo test --release -p revenant-sim --test mutation_sweep -- --ignored`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::crash_points;
use revenant_sim::scenario::Scenario;

/// The fixed scenarios whose operations that change the disk are crash points here: a
/// launch and executor reconnection, an update retried until acknowledged, a reboot;
/// with power losses or not. Three scenarios and the disk-changing operations only, so
/// that a mutant the oracles miss costs about 500 runs here (a minute of CPU) rather than
/// the 1,500 of every operation of five scenarios.
///
/// The reboot scenario has its power losses too: a power loss in its first start used to
/// fail the liveness oracle for a task still genuinely running (the power loss absorbs
/// the scenario's own reboot); docs/task-lifecycle.md L24 and the regression scenario
/// `regression_reboot_while_machine_off`.
const CRASH_POINT_SCENARIOS: &[(&str, bool)] = &[
    ("agent_restart_reconnects_executor", true),
    ("status_update_retried_until_acknowledged", true),
    ("reboot_registers_new_agent", true),
];

/// The crash-point runs of `scenario`: one counting run (serial, here), then one run per
/// operation with the agent dying there, and one per operation after a change to the
/// disk with a power loss leaving only what was synced (crash state 0).
fn crash_point_runs(scenario: &Scenario, power_losses: bool) -> Vec<(Scenario, u64, RunOptions)> {
    let end = std::time::Duration::from_secs_f64(scenario.duration_s.max(0.0));
    let long = crash_points::settled(scenario);
    let counting = RunOptions {
        record_agent_ops: true,
        ..RunOptions::default()
    };
    let _ = cluster::run(&long, 0, &counting);
    let ops: Vec<_> = crash_points::take_report()
        .ops
        .into_iter()
        .filter(|op| op.time < end)
        .collect();
    let mut runs = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if op.changes_disk {
            runs.push((
                long.clone(),
                0,
                RunOptions {
                    crash_at_agent_op: Some(op.index),
                    ..RunOptions::default()
                },
            ));
        }
        if power_losses && i > 0 && ops[i - 1].changes_disk {
            runs.push((
                long.clone(),
                0,
                RunOptions {
                    power_loss_at_agent_op: Some(op.index),
                    power_loss_state: 0,
                    power_loss_states: 1,
                    ..RunOptions::default()
                },
            ));
        }
    }
    runs
}

#[test]
#[ignore = "the mutation measurement's test command; slow"]
fn oracles_hold_over_the_mutation_sweep() {
    let seeds: u64 = std::env::var("REVENANT_MUTANT_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut fixed: Vec<(Scenario, u64, RunOptions)> = Vec::new();
    let mut swarms: Vec<(Scenario, u64, RunOptions)> = Vec::new();
    let mut crashes: Vec<(Scenario, u64, RunOptions)> = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("scenarios/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let only: Vec<String> = std::env::var("REVENANT_MUTANT_ONLY")
        .map(|v| v.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    for file in files {
        let scenario = Scenario::load(&file).expect("scenario parses");
        if !only.is_empty() && !only.iter().any(|o| scenario.name.contains(o.as_str())) {
            continue;
        }
        // A regression scenario runs at its pinned seeds, with the fixed ones, even when it
        // keeps a `[swarm]` section (as `revenant-sim shrink` writes them), as `sweep` runs
        // it: as a swarm it would run over `0..seeds` and never at a pinned seed beyond.
        if scenario.swarm.is_some() && scenario.pinned_seeds.is_empty() {
            for seed in 0..seeds {
                swarms.push((scenario.clone(), seed, RunOptions::default()));
            }
        } else {
            let mut own: Vec<u64> = scenario.pinned_seeds.clone();
            if own.is_empty() {
                own.push(0);
            }
            if let Some((_, power_losses)) = CRASH_POINT_SCENARIOS
                .iter()
                .find(|(name, _)| *name == scenario.name)
            {
                crashes.extend(crash_point_runs(&scenario, *power_losses));
            }
            for seed in own {
                fixed.push((scenario.clone(), seed, RunOptions::default()));
            }
        }
    }
    eprintln!("{} crash-point runs", crashes.len());
    assert!(
        !only.is_empty() || crashes.len() > 50,
        "only {} crash-point runs: a scenario of CRASH_POINT_SCENARIOS is missing",
        crashes.len()
    );
    // Fixed scenarios first: they are short and catch many mutants at once; then the
    // crash points; the swarms last, seed by seed.
    fixed.sort_by_key(|(_, seed, _)| *seed);
    swarms.sort_by_key(|(_, seed, _)| *seed);
    let runs: Vec<(Scenario, u64, RunOptions)> =
        fixed.into_iter().chain(crashes).chain(swarms).collect();
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some((scenario, seed, options)) = runs.get(index) else {
                    return;
                };
                let crash =
                    options.crash_at_agent_op.is_some() || options.power_loss_at_agent_op.is_some();
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    cluster::run(scenario, *seed, options)
                }));
                // Uninstalls the run's crash plan from this thread.
                let _ = crash_points::take_report();
                let what = match (options.crash_at_agent_op, options.power_loss_at_agent_op) {
                    (Some(op), _) => format!("{} agent dies at op {op}", scenario.name),
                    (_, Some(op)) => format!("{} power loss at op {op}", scenario.name),
                    _ => format!("{} seed {seed}", scenario.name),
                };
                let message = match result {
                    // A crash point's run is judged by the rules alone: the scenario's
                    // `[expect]` describes the run without the crash (docs/crash-points.md).
                    Ok(result) => {
                        let violations: Vec<_> = result
                            .violations
                            .into_iter()
                            .filter(|v| !(crash && v.oracle == "expectations"))
                            .collect();
                        if violations.is_empty() {
                            // A point the mutated run never reached (the mutant moved
                            // the operations) is no verdict either way.
                            continue;
                        }
                        format!(
                            "{what}: {}",
                            violations
                                .iter()
                                .map(|v| format!("[{}] {}", v.oracle, v.message))
                                .collect::<Vec<_>>()
                                .join("; ")
                        )
                    }
                    Err(_) => format!("{what}: the run panicked"),
                };
                stop.store(true, Ordering::Relaxed);
                failure.lock().expect("failure").get_or_insert(message);
                return;
            });
        }
    });
    if let Some(message) = failure.into_inner().expect("failure") {
        panic!("{message}");
    }
}
