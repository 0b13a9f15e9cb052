//! The rogue party (docs/security.md SEC31-SEC42, docs/simulator-reach.md 14s): it happens
//! in the default sweep, the `rogue` oracle holds against the real agent and master, and
//! it fails against test-only breakages that let a forged update through, run a task the
//! ACLs refuse, or let the rogue framework fail another framework over.

use std::path::Path;

use revenant::breakage::Breakage;
use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::rogue::{self, Attempt};
use revenant_sim::scenario::Scenario;

fn scenario(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&path).expect("scenario parses")
}

/// The agent-machine swarm with a rogue in every run.
fn always_rogue() -> Scenario {
    let mut scenario = scenario("swarm_agent_machine");
    scenario.swarm.as_mut().expect("a swarm").rogue_fraction = 1.0;
    scenario
}

/// Seeds of the default sweep's swarms draw the rogue, with every kind of attempt, and
/// regression scenarios draw it only when their own file says so (`rogue_fraction`, as
/// copies of a swarm made since the rogue exists do, so that their pinned seeds run as
/// they failed): files written before keep their traces.
#[test]
fn the_rogue_party_is_drawn_in_the_default_sweep() {
    let files = revenant_sim::sweep::scenario_files(
        &[Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")],
        false,
    )
    .expect("scenarios");
    let mut kinds = std::collections::BTreeSet::new();
    let mut runs_with_rogue = 0;
    for file in &files {
        let scenario = Scenario::load(file).expect("scenario parses");
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        for seed in 0..100 {
            let plan = rogue::plan(&scenario, seed);
            // Regressions of the rogue party itself keep it (their pinned seeds draw it),
            // and so do regressions whose file sets the fraction.
            if name.starts_with("regression_") || scenario.swarm.is_none() {
                let asked = name.starts_with("regression_rogue_")
                    || std::fs::read_to_string(file)
                        .expect("scenario file")
                        .contains("rogue_fraction");
                assert!(plan.is_empty() || asked, "{name} seed {seed} draws a rogue");
                continue;
            }
            if !plan.is_empty() {
                runs_with_rogue += 1;
            }
            kinds.extend(plan.iter().map(|p| format!("{:?}", p.attempt)));
        }
    }
    eprintln!("runs with a rogue over seeds 0..100 of the swarms: {runs_with_rogue}");
    assert!(runs_with_rogue >= 20, "{runs_with_rogue}");
    for attempt in [
        Attempt::Register,
        Attempt::Forge,
        Attempt::ReregisterAfterRestart,
    ] {
        assert!(
            kinds.contains(&format!("{attempt:?}")),
            "{attempt:?} never drawn"
        );
    }
}

/// With a rogue in every run, it reaches the agent (it is answered or cut off after
/// sending), and the real agent keeps SEC32-SEC34 on every seed.
#[test]
fn the_rogue_oracle_holds_against_the_real_agent() {
    let scenario = always_rogue();
    let mut attempts = 0;
    for seed in 0..6 {
        let result = cluster::run(&scenario, seed, &RunOptions::default());
        attempts += result.observations.rogue.sent.len();
        let rogue: Vec<_> = result
            .violations
            .iter()
            .filter(|v| v.oracle == "rogue")
            .collect();
        assert!(rogue.is_empty(), "seed {seed}: {rogue:?}");
        assert!(
            result
                .observations
                .rogue
                .received
                .iter()
                .all(|(_, kind, _)| *kind == "shutdown_executor"),
            "seed {seed}: {:?}",
            result.observations.rogue.received
        );
    }
    assert!(attempts > 0, "the rogue tried nothing in six runs");
}

/// SEC33 broken on purpose: the agent takes updates from a connection that never
/// registered, so a forged update reaches the framework; the oracle fails.
#[test]
fn the_rogue_oracle_fails_when_a_forged_update_gets_through() {
    let scenario = always_rogue();
    let options = RunOptions {
        breakage: Breakage {
            accept_unregistered_updates: true,
            ..Breakage::default()
        },
        ..RunOptions::default()
    };
    let caught = (0..20).find_map(|seed| {
        let result = cluster::run(&scenario, seed, &options);
        result
            .violations
            .into_iter()
            .find(|v| v.oracle == "rogue")
            .map(|v| (seed, v))
    });
    let (seed, violation) =
        caught.expect("the rogue oracle catches a forged update within 20 seeds");
    eprintln!("rogue: caught at seed {seed}: {}", violation.message);
}

/// With a rogue in every run, the rogue framework registers with the master (in the
/// default sweep's swarms too: the runs that draw the rogue), and the master refuses
/// what it has no right to (SEC35, SEC36, SEC41): it hears its task's TASK_ERROR, and
/// its failover as another framework is answered with the principal refusal.
#[test]
fn the_rogue_framework_registers_and_is_refused() {
    for name in ["swarm_agent_machine", "swarm_master_failover"] {
        let mut scenario = scenario(name);
        scenario.swarm.as_mut().expect("a swarm").rogue_fraction = 1.0;
        let (mut registered, mut failovers_refused) = (0, 0);
        for seed in 0..4 {
            let result = cluster::run(&scenario, seed, &RunOptions::default());
            let log = &result.observations.rogue;
            let rogue: Vec<_> = result
                .violations
                .iter()
                .filter(|v| v.oracle == "rogue")
                .collect();
            assert!(rogue.is_empty(), "{name} seed {seed}: {rogue:?}");
            if log.framework_id.is_some() {
                registered += 1;
                assert!(
                    log.framework_received
                        .iter()
                        .any(|(_, kind, detail)| *kind == "status_update"
                            && detail.ends_with("rogue-task TASK_ERROR")),
                    "{name} seed {seed}: {:?}",
                    log.framework_received
                );
            }
            if log.framework_received.iter().any(|(_, kind, detail)| {
                *kind == "framework_error"
                    && detail.starts_with("failover ")
                    && detail.contains("a framework's principal cannot change")
            }) {
                failovers_refused += 1;
            }
        }
        eprintln!("{name}: registered {registered}/4, failovers refused {failovers_refused}");
        assert!(
            registered > 0,
            "{name}: the rogue framework never registered"
        );
        assert!(
            failovers_refused > 0,
            "{name}: no failover under another principal was tried and refused"
        );
    }
}

/// Runs the always-rogue swarm with `breakage` until the `rogue` oracle fails, within
/// `seeds` seeds; returns the seed and the violation.
fn caught_with(breakage: Breakage, seeds: u64) -> (u64, revenant_sim::oracles::Violation) {
    let scenario = always_rogue();
    let options = RunOptions {
        breakage,
        ..RunOptions::default()
    };
    (0..seeds)
        .find_map(|seed| {
            let result = cluster::run(&scenario, seed, &options);
            result
                .violations
                .into_iter()
                .find(|v| v.oracle == "rogue")
                .map(|v| (seed, v))
        })
        .unwrap_or_else(|| panic!("the rogue oracle catches {breakage:?} within {seeds} seeds"))
}

/// SEC36 broken on purpose: the master skips the `run_tasks` ACL, so the rogue
/// framework's task as `root` is placed; the oracle fails.
#[test]
fn the_rogue_oracle_fails_when_the_master_skips_run_tasks() {
    let (seed, violation) = caught_with(
        Breakage {
            master_skips_run_tasks_acl: true,
            ..Breakage::default()
        },
        10,
    );
    eprintln!("rogue: caught at seed {seed}: {}", violation.message);
}

/// SEC40 broken on purpose: the master lets a framework's principal change, so the
/// rogue framework's failover as another framework is registered; the oracle fails.
#[test]
fn the_rogue_oracle_fails_when_a_framework_principal_may_change() {
    let (seed, violation) = caught_with(
        Breakage {
            master_ignores_framework_principal: true,
            ..Breakage::default()
        },
        10,
    );
    assert!(
        violation.message.contains("framework_registered")
            || violation.message.contains("status_update"),
        "{}",
        violation.message
    );
    eprintln!("rogue: caught at seed {seed}: {}", violation.message);
}

/// SEC45 and SEC47 against the real agent: with a rogue in every run, its registrations
/// reach the agent and the `refusal` oracle judges them at the agent's end: each is
/// refused at once, and those naming a run the agent had admitted (an executor it does
/// not expect) are told `ShutdownExecutor`.
#[test]
fn every_rogue_registration_is_refused_at_once() {
    use std::time::Duration;

    let scenario = always_rogue();
    let sync = Duration::from_secs_f64(scenario.agent.disk_group_sync_ms / 1000.0);
    let (mut judged, mut unexpected) = (0, 0);
    for seed in 0..12 {
        let result = cluster::run(&scenario, seed, &RunOptions::default());
        let record = &result.observations.registration_answers;
        let (j, u) = revenant_sim::oracles::refusal::judged(record, sync);
        judged += j;
        unexpected += u;
        let refused: Vec<_> = result
            .violations
            .iter()
            .filter(|v| v.oracle == "refusal")
            .collect();
        assert!(refused.is_empty(), "seed {seed}: {refused:?}");
    }
    eprintln!("rogue registrations judged: {judged}, of executors the agent does not expect: {unexpected}");
    assert!(
        judged > 0 && unexpected > 0,
        "judged {judged}, unexpected {unexpected}"
    );
}
