//! Each open finding under `findings/` (see its README) still breaks the oracle its header
//! names at its pinned seed: the day one stops failing, it was fixed (or the schedule
//! lost its bite), and it must move to `scenarios/` as a regression.
#![allow(clippy::disallowed_methods)]

use std::path::Path;

use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::scenario::Scenario;

#[test]
fn every_open_finding_still_fails_its_oracle() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../findings");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let oracle = text
            .split('`')
            .skip_while(|part| !part.ends_with("breaks the\n# ") && !part.ends_with("breaks the "))
            .nth(1)
            .unwrap_or_else(|| panic!("{}: no oracle named in the header", file.display()))
            .to_owned();
        let scenario = Scenario::load(file).unwrap();
        assert_eq!(scenario.pinned_seeds.len(), 1, "{}", file.display());
        let seed = scenario.pinned_seeds[0];
        let result = cluster::run(&scenario, seed, &RunOptions::default());
        assert!(
            result.violations.iter().any(|v| v.oracle == oracle),
            "{} no longer breaks the {oracle} oracle at seed {seed}: fixed? move it to scenarios/ (findings/README.md)",
            file.display()
        );
    }
}
