//! `shrink` turns a failing swarm run into a small fixed schedule that still fails the same
//! oracle. The failure here is made on purpose (the agent recovers across reboots, a
//! test-only breakage): the shrunk schedule must keep a reboot, lose most other faults,
//! fail under the breakage when read back from its file, and hold without it.

use std::path::Path;

use revenant::breakage::Breakage;
use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::scenario::{FaultKind, Scenario};

#[test]
fn a_reboot_failure_shrinks_to_a_few_faults_and_still_fails() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/swarm_agent_machine.toml");
    let scenario = Scenario::load(&path).unwrap();
    let options = RunOptions {
        breakage: Breakage {
            ignore_boot_id: true,
            ..Breakage::default()
        },
        ..RunOptions::default()
    };
    let breaks = |scenario: &Scenario, seed: u64, options: &RunOptions| {
        cluster::run(scenario, seed, options)
            .violations
            .iter()
            .any(|v| v.oracle == "reboot")
    };
    let seed = (0..300)
        .find(|seed| breaks(&scenario, *seed, &options))
        .expect("the breakage is caught within 300 seeds");
    let before = cluster::schedule_for(&scenario, seed).len();

    let mut lines = Vec::new();
    let shrunk =
        revenant_sim::shrink::shrink(&path, seed, &options, &mut |l| lines.push(l.to_owned()))
            .unwrap();
    assert_eq!(shrunk.oracle, "reboot");
    assert_eq!(shrunk.faults_before, before);
    assert!(
        shrunk.faults_after < before && shrunk.faults_after <= 3,
        "{} of {before} faults left:\n{}",
        shrunk.faults_after,
        shrunk.toml
    );
    assert!(shrunk.toml.starts_with("# Shrunk by `revenant-sim shrink`"));
    assert!(shrunk.toml.contains(&format!("pinned_seeds = [{seed}]")));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("regression_shrunk.toml");
    #[allow(clippy::disallowed_methods)] // a test's temporary file, outside any simulation
    std::fs::write(&file, &shrunk.toml).unwrap();
    let written = Scenario::load(&file).expect("the shrunk scenario loads");
    assert!(
        written.faults.iter().any(|f| f.kind == FaultKind::Reboot),
        "{}",
        shrunk.toml
    );
    assert!(
        written
            .swarm
            .as_ref()
            .is_some_and(|s| s.per_minute.is_empty()),
        "the swarm draws no fault of its own"
    );
    assert_eq!(
        cluster::schedule_for(&written, seed).len(),
        shrunk.faults_after
    );
    assert!(
        breaks(&written, seed, &options),
        "the file as written still fails"
    );
    assert!(
        !breaks(&written, seed, &RunOptions::default()),
        "without the breakage it holds: the failure is the breakage's"
    );
}
