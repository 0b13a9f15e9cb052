//! `sweep --shrink`: each failure of a sweep is shrunk into a regression scenario written
//! beside its reproduction file. The failure is made on purpose (the agent recovers
//! across reboots, a test-only breakage): the sweep must write a small fixed scenario
//! that, read back, fails the same oracle at the same seed, and the same sweep must write
//! the same bytes again.
#![allow(clippy::disallowed_methods)] // reads the files the sweep wrote to a temporary directory

use std::path::Path;

use revenant::breakage::Breakage;
use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::scenario::{FaultKind, Scenario};
use revenant_sim::{shrink, sweep};

#[test]
fn a_sweep_failure_is_shrunk_beside_its_repro_file() {
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

    let shrink_once = || {
        let out = tempfile::tempdir().unwrap();
        let summary = sweep::sweep(
            std::slice::from_ref(&path),
            &sweep::SweepOptions {
                out: Some(out.path().to_path_buf()),
                run: options.clone(),
                ..sweep::SweepOptions::new(seed..seed + 1)
            },
        )
        .unwrap();
        assert_eq!(summary.failed.len(), 1, "{:?}", summary.failed);
        let failure = &summary.failed[0];
        assert!(
            failure.violations.iter().any(|v| v.starts_with("[reboot]")),
            "{:?}",
            failure.violations
        );
        let (written, shrunk) = shrink::shrink_failure(out.path(), failure, &options).unwrap();
        assert_eq!(
            written,
            out.path().join(format!(
                "regression_shrunk_swarm_agent_machine_seed{seed}.toml"
            ))
        );
        assert!(
            out.path()
                .join(format!("swarm_agent_machine-seed{seed}.repro.toml"))
                .exists(),
            "written beside the reproduction file"
        );
        let timeline = std::fs::read_to_string(
            out.path()
                .join(format!("swarm_agent_machine-seed{seed}.timeline.html")),
        )
        .expect("the sweep wrote the failure's timeline");
        assert!(
            timeline.contains("data-oracle=\"reboot\""),
            "with its violation"
        );
        assert_eq!(shrunk.oracle, "reboot");
        let text = std::fs::read_to_string(&written).unwrap();
        (out, written, shrunk, text)
    };
    let (_out, written, shrunk, text) = shrink_once();
    assert!(
        shrunk.faults_after < shrunk.faults_before && shrunk.faults_after <= 3,
        "{} of {} faults left:\n{text}",
        shrunk.faults_after,
        shrunk.faults_before
    );
    assert!(
        text.starts_with("# Shrunk by `revenant-sim shrink`"),
        "{text}"
    );
    assert!(text.contains("`reboot` oracle"), "{text}");
    assert!(text.contains(&format!("pinned_seeds = [{seed}]")), "{text}");
    let fixed = Scenario::load(&written).expect("the shrunk scenario loads");
    assert!(
        fixed
            .swarm
            .as_ref()
            .is_some_and(|s| s.per_minute.is_empty()),
        "a fixed schedule: the swarm draws no fault of its own"
    );
    assert!(fixed.faults.iter().any(|f| f.kind == FaultKind::Reboot));
    assert!(breaks(&fixed, seed, &options), "the file as written fails");
    assert!(
        !breaks(&fixed, seed, &RunOptions::default()),
        "and holds without the breakage"
    );

    // Deterministic: the same sweep shrinks to the same bytes.
    let (_again, _, _, again) = shrink_once();
    assert_eq!(text, again);
}
