#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
//! The test command of the mutation measurement (`docs/mutation-report.md`): every
//! scenario of `scenarios/` under the oracles alone, swarm scenarios over
//! `REVENANT_MUTANT_SEEDS` seeds (default 200), fixed and regression scenarios over their
//! snapshot seed and pinned seeds. It stops at the first violation, so that a mutant the
//! oracles catch costs little. Snapshots are deliberately not compared here: the
//! measurement is of what the simulator's oracles catch, not of trace text.
//!
//! Ignored by default (CI does not run it); `cargo mutants` runs it with `--ignored`
//! (see `.cargo/mutants.toml`), and by hand:
//! `cargo test --release -p revenant-sim --test mutation_sweep -- --ignored`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::scenario::Scenario;

#[test]
#[ignore = "the mutation measurement's test command; slow"]
fn oracles_hold_over_the_mutation_sweep() {
    let seeds: u64 = std::env::var("REVENANT_MUTANT_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut runs: Vec<(Scenario, u64)> = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("scenarios/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    for file in files {
        let scenario = Scenario::load(&file).expect("scenario parses");
        if scenario.swarm.is_some() {
            for seed in 0..seeds {
                runs.push((scenario.clone(), seed));
            }
        } else {
            let mut own: Vec<u64> = scenario.pinned_seeds.clone();
            if own.is_empty() {
                own.push(0);
            }
            for seed in own {
                runs.push((scenario.clone(), seed));
            }
        }
    }
    // Fixed scenarios first: they are short and catch many mutants at once.
    runs.sort_by_key(|(s, seed)| (s.swarm.is_some(), *seed));
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
                let Some((scenario, seed)) = runs.get(index) else {
                    return;
                };
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    cluster::run(scenario, *seed, &RunOptions::default())
                }));
                let message = match result {
                    Ok(result) if result.violations.is_empty() => continue,
                    Ok(result) => format!(
                        "{} seed {seed}: {}",
                        scenario.name,
                        result
                            .violations
                            .iter()
                            .map(|v| format!("[{}] {}", v.oracle, v.message))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                    Err(_) => format!("{} seed {seed}: the run panicked", scenario.name),
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
