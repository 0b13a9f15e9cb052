//! The seeded sweep CI runs: 500 seeds of the swarm scenarios (the README's main job
//! runs 2,000) and every pinned regression, with a determinism check on a sample; plus
//! the determinism and fault-coverage properties of the simulator itself.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::scenario::{FaultKind, Scenario};
use revenant_sim::sweep;

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scenarios")
}

fn seeds_from_env(default: u64) -> u64 {
    seeds_from_env_named("REVENANT_SWEEP_SEEDS", default)
}

fn seeds_from_env_named(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The default sweep: swarm scenarios over every seed, regression ones over their
/// pinned seeds, the fixed catalogue over its first few seeds.
#[test]
fn sweep_of_every_scenario_is_green() {
    let files = sweep::scenario_files(&[scenarios_dir()], false).expect("scenarios");
    assert!(files
        .iter()
        .any(|f| f.ends_with("swarm_agent_machine.toml")));
    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    // 500 seeds of each swarm keep the test command's cold run on 2 cores under its
    // 30-minute budget (docs/benchmarks.md, "CI's budget"); the README's main job runs
    // 2,000. `REVENANT_SWEEP_SEEDS=2000` runs the main job's seeds here.
    let seeds = seeds_from_env(500);
    let fixed_seeds =
        seeds_from_env_named("REVENANT_SWEEP_FIXED_SEEDS", sweep::FIXED_SEEDS_DEFAULT);
    let summary = sweep::sweep(
        &files,
        &sweep::SweepOptions {
            fixed_seeds: Some(fixed_seeds),
            jobs,
            determinism_every: 100,
            ..sweep::SweepOptions::new(0..seeds)
        },
    )
    .expect("sweep runs");
    let runs = summary.passed + summary.failed.len();
    eprintln!(
        "{runs} runs in {:.1}s ({:.1} runs/s); determinism checked on {} runs",
        summary.seconds,
        runs as f64 / summary.seconds,
        summary.determinism_checked
    );
    // Open findings of the 2,000-seed sweep, quarantined by exact seed and oracle (not
    // by rule) until they are pinned and fixed; listed in the README's known limits. Any
    // other failure, or these seeds failing another oracle, fails the test.
    // (Seeds 806 and 933 were pinned as regressions and fixed:
    // regression_acknowledged_update_wiped_by_operator,
    // regression_stale_reregistration_after_restart; so were swarm_agent_machine 1413,
    // 1652 and 1916 and swarm_master_failover 381 and 1817: regression_recovered_unsynced_*,
    // regression_meta_collected_before_sandbox,
    // regression_launch_of_task_with_unacknowledged_terminal_update.
    // The rogue framework's takeovers after a master failover or restart
    // (swarm_master_failover 304, 497, 603, 844, 1193, 1347 and swarm_agent_machine 1706)
    // were pinned as regression_rogue_framework_takeover_after_{failover,master_restart}
    // and fixed by docs/security.md SEC43, SEC44.)
    // Found on 2026-12-01 by this sweep at 500 seeds right after the `shutdown_grace`
    // (L36), `recovery_errors` (R43-R44) and zero-fill (CP-7) merges, quarantined for one
    // session, then pinned and fixed: swarm_agent_machine 208 and 229 (the oracle matched
    // a kill to an ask decided after it: regression_shutdown_ask_after_kill, L36) and 296
    // (the simulated operator never repaired a dangling latest when the stop counted as
    // a disk failure: regression_dangling_latest_after_disk_fault, docs/simulator-reach.md
    // 15e). Found on 2026-12-01 by the 2,000-seed sweep with 15n's retry draw on,
    // quarantined for one commit, then pinned and fixed: swarm_agent_machine 1160 (R12's
    // asks reached a rogue's connection that forged an update without registering:
    // regression_rogue_asked_to_reconnect, docs/security.md SEC46). None is open now.
    const OPEN_FINDINGS: [(&str, u64, &[&str]); 0] = [];
    let open = |f: &sweep::Failure| {
        OPEN_FINDINGS.iter().any(|(file, seed, oracles)| {
            f.scenario.ends_with(file)
                && f.seed == *seed
                && f.violations
                    .iter()
                    .all(|v| oracles.iter().any(|oracle| v.starts_with(oracle)))
        })
    };
    for f in summary.failed.iter().filter(|f| open(f)) {
        eprintln!(
            "open finding (quarantined): {} seed {}: {}",
            f.scenario.display(),
            f.seed,
            f.violations.join("; ")
        );
    }
    let failures: Vec<String> = summary
        .failed
        .iter()
        .filter(|f| !open(f))
        .map(|f| {
            format!(
                "{} seed {}:\n  {}",
                f.scenario.display(),
                f.seed,
                f.violations.join("\n  ")
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} failed runs:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        summary.nondeterministic.is_empty(),
        "nondeterministic runs: {:?}",
        summary.nondeterministic
    );
    assert!(summary.determinism_checked >= (seeds / 100) as usize);
    // Every listed coverage point is reached by some run (docs/crash-points.md CV-4),
    // judged on sweeps of CI's size (a quick sweep of a few seeds only prints the table).
    eprint!("{}", sweep::coverage_table(&summary.coverage));
    let never = sweep::unreached(&summary.coverage);
    assert!(
        seeds < COVERAGE_JUDGED_FROM_SEEDS || never.is_empty(),
        "coverage points never reached in {seeds} seeds: {never:?}"
    );
}

/// Sweeps of at least this many seeds must reach every listed coverage point.
const COVERAGE_JUDGED_FROM_SEEDS: u64 = 500;

#[test]
fn a_seed_gives_the_same_trace_bytes_twice() {
    let scenario =
        Scenario::load(&scenarios_dir().join("swarm_agent_machine.toml")).expect("scenario");
    for seed in [3, 17] {
        let first = cluster::run(&scenario, seed, &RunOptions::default());
        let second = cluster::run(&scenario, seed, &RunOptions::default());
        let text =
            |r: &cluster::RunResult| r.trace.iter().map(|e| e.line() + "\n").collect::<String>();
        assert!(first.trace.len() > 50, "the trace holds the run");
        assert_eq!(
            text(&first),
            text(&second),
            "seed {seed} is not deterministic"
        );
        assert_eq!(first.trace_hash, second.trace_hash);
    }
    let other = cluster::run(&scenario, 4, &RunOptions::default());
    let first = cluster::run(&scenario, 3, &RunOptions::default());
    assert_ne!(
        first.trace_hash, other.trace_hash,
        "different seeds give different runs"
    );
}

/// Every kind a swarm lists happens in some of its first seeds (in the default sweep),
/// the new ones too (docs/simulator-reach.md rules 3 to 6): a torn append, operator
/// damage while the agent is down, drawn message drops, duplicates and forgeries, an
/// agent killed at a message and at a process operation; and a reboot that lost or
/// tore writes.
#[test]
fn every_swarm_fault_kind_happens_in_some_run() {
    for (file, seeds) in [
        ("swarm_agent_machine.toml", 120),
        ("swarm_master_failover.toml", 40),
    ] {
        let scenario = Scenario::load(&scenarios_dir().join(file)).expect("scenario");
        let wanted: BTreeSet<FaultKind> = scenario
            .swarm
            .as_ref()
            .expect("swarm")
            .per_minute
            .keys()
            .copied()
            .collect();
        let mut seen = BTreeSet::new();
        let mut reboots_with_torn_or_lost_writes = 0;
        let mut deaths_at_a_message = 0;
        let mut done = false;
        for seed in 0..seeds {
            let result = cluster::run(&scenario, seed, &RunOptions::default());
            seen.extend(result.observations.fault_kinds.iter().copied());
            reboots_with_torn_or_lost_writes += result
                .observations
                .faults
                .iter()
                .filter(|(_, d)| {
                    d.starts_with("reboot") && !d.contains("inodes_lost: 0,")
                        || d.contains("appends_torn: 1")
                })
                .count();
            deaths_at_a_message += result
                .observations
                .faults
                .iter()
                .filter(|(_, d)| d.starts_with("agent crash") && d.ends_with(" message"))
                .count();
            let reboots_needed = wanted.contains(&FaultKind::Reboot);
            if seen == wanted
                && (!reboots_needed || reboots_with_torn_or_lost_writes > 0)
                && deaths_at_a_message > 0
            {
                done = true;
                break;
            }
        }
        let missing: Vec<&FaultKind> = wanted.difference(&seen).collect();
        assert!(
            done,
            "{file}: fault kinds never injected in {seeds} seeds: {missing:?}; reboots that \
             lost or tore writes: {reboots_with_torn_or_lost_writes}; agent deaths at a \
             message: {deaths_at_a_message}"
        );
    }
}

/// Timer boundaries and workload knobs (docs/simulator-reach.md rules 7 and 9): about
/// 30% of the agent-machine swarm's drawn downtimes and partitions sit within 5% of a
/// timeout in force; runs draw a short gc_delay, reservations and tasks near the frame
/// maximum.
#[test]
fn swarm_draws_timer_boundaries_and_workload_knobs() {
    let scenario =
        Scenario::load(&scenarios_dir().join("swarm_agent_machine.toml")).expect("scenario");
    let timeouts = revenant_sim::faults::timeouts_in_force(&scenario);
    assert!(timeouts.contains(&scenario.agent.recovery_timeout_s));
    assert!(timeouts.contains(&scenario.master.agent_reregister_timeout_s));
    let (mut near, mut drawn, mut below, mut above) = (0, 0, 0, 0);
    let (mut short_gc, mut reserving, mut large) = (0, 0, 0);
    for seed in 0..200 {
        for fault in cluster::schedule_for(&scenario, seed) {
            let value = match fault.kind {
                FaultKind::AgentCrash
                | FaultKind::Reboot
                | FaultKind::MasterCrash
                | FaultKind::FrameworkCrash => fault.restart_after_s,
                FaultKind::Partition | FaultKind::Delay => fault.duration_s,
                _ => None,
            };
            let Some(value) = value else { continue };
            drawn += 1;
            if let Some(timeout) = timeouts
                .iter()
                .find(|t| (value / **t - 1.0).abs() <= 0.05 && value != **t)
            {
                near += 1;
                if value < *timeout {
                    below += 1;
                } else {
                    above += 1;
                }
            }
        }
        let knobs = revenant_sim::faults::with_knobs(&scenario, seed);
        if knobs.agent.gc_delay_s < 90.0 + 1e-9 {
            short_gc += 1;
        }
        if !knobs.reservations.is_empty() {
            reserving += 1;
        }
        large += cluster::tasks_for(&knobs, seed)
            .iter()
            .filter(|(task, _)| {
                task.command.as_ref().map_or(0, |c| c.value.len())
                    > revenant::wire::FRAME_BYTES_MAX / 4
            })
            .count();
    }
    let share = f64::from(near) / f64::from(drawn.max(1));
    assert!(
        (0.25..0.6).contains(&share),
        "{near} of {drawn} drawn durations near a timeout"
    );
    assert!(below > 0 && above > 0, "below {below}, above {above}");
    assert_eq!(short_gc, 200, "every run draws gc_delay in [10, 90] s");
    assert!(reserving > 50, "{reserving} runs with reservations");
    assert!(large > 10, "{large} tasks near the frame maximum");
}

#[test]
fn corruption_and_leader_failover_happen_in_their_fixed_scenarios() {
    for (file, kind) in [
        (
            "strict_recovery_stops_on_corruption.toml",
            FaultKind::Corrupt,
        ),
        (
            "non_strict_recovery_counts_corruption.toml",
            FaultKind::Corrupt,
        ),
        ("master_failover.toml", FaultKind::MasterCrash),
    ] {
        let scenario = Scenario::load(&scenarios_dir().join(file)).expect("scenario");
        let result = cluster::run(&scenario, 0, &RunOptions::default());
        assert!(
            result.observations.fault_kinds.contains(&kind),
            "{file}: {kind:?} never happened"
        );
        if kind == FaultKind::MasterCrash {
            assert!(scenario.masters >= 2, "failover needs a second master");
            let moved = result
                .trace
                .iter()
                .any(|e| e.host == "master2" && e.message == "agent re-registered");
            assert!(moved, "the agent did not fail over to master2");
        }
    }
}

/// The failover swarm really fails over: in some of its first seeds the second master is
/// elected knowing the agent from the shared registry, and the agent re-registers with it.
#[test]
fn the_failover_swarm_elects_the_other_master_and_the_agent_follows() {
    let scenario =
        Scenario::load(&scenarios_dir().join("swarm_master_failover.toml")).expect("scenario");
    assert_eq!(scenario.masters, 2);
    let followed = (0..40).any(|seed| {
        let result = cluster::run(&scenario, seed, &RunOptions::default());
        let elected = result.trace.iter().any(|e| {
            e.host == "master2" && e.message.starts_with("elected leading master: waiting")
        });
        let reregistered = result
            .trace
            .iter()
            .any(|e| e.host == "master2" && e.message == "agent re-registered");
        elected && reregistered
    });
    assert!(followed, "no seed of 40 failed over to master2");
}

/// The registry of coverage points and the `point!` calls in the code agree: every
/// call names a listed point, and every listed point has a call (docs/crash-points.md
/// CV-3).
#[test]
// Reads the source tree, not simulated state.
#[allow(clippy::disallowed_methods)]
fn every_coverage_point_is_listed_and_placed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut placed = BTreeSet::new();
    // Every source file of the library, so a point moved to another room is still found.
    let mut files = Vec::new();
    // The simulator's own points (`sim_*`, docs/crash-points.md CV-1) are placed in
    // `sim/src` with `coverage::hit`.
    let mut dirs = vec![root.join("src"), root.join("sim").join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("source directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                // coverage.rs shows a point in its documentation.
                && !path.ends_with("src/coverage.rs")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("source file");
        // `hit("sim_…")`: the simulator's points; the prefix is part of the name.
        for (call, prefix) in [
            ("coverage::point!(\"", ""),
            ("coverage::hit(\"sim_", "sim_"),
        ] {
            for (offset, _) in text.match_indices(call) {
                let rest = &text[offset + call.len()..];
                let name = &rest[..rest.find('"').expect("a closing quote")];
                placed.insert(format!("{prefix}{name}"));
            }
        }
    }
    let listed: BTreeSet<String> = revenant::coverage::POINTS
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(
        revenant::coverage::POINTS.len(),
        listed.len(),
        "a point is listed twice"
    );
    let unlisted: Vec<&String> = placed.difference(&listed).collect();
    let unplaced: Vec<&String> = listed.difference(&placed).collect();
    assert!(
        unlisted.is_empty(),
        "points placed but not listed: {unlisted:?}"
    );
    assert!(
        unplaced.is_empty(),
        "points listed but not placed: {unplaced:?}"
    );
    for (point, _) in sweep::EXPECTED_UNREACHED {
        assert!(
            listed.contains(*point),
            "{point} is expected unreached but not listed"
        );
    }
}
