//! Every typed trace decision (`revenant_sim::decision::Decision`) is produced by at
//! least one scenario of the catalogue, at the seed its snapshot runs: a variant nobody
//! produces is a message the code no longer logs (an oracle matching on it would hold
//! vacuously).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::path::Path;

use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::decision::Decision;
use revenant_sim::scenario::Scenario;

#[test]
fn every_decision_is_produced_by_the_catalogue() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scenarios");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("scenarios/")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    let mut produced: BTreeSet<Decision> = BTreeSet::new();
    for path in paths {
        let scenario = Scenario::load(&path).expect("scenario parses");
        let seed = revenant_sim::trace::snapshot_seed(&scenario);
        let result = cluster::run(&scenario, seed, &RunOptions::default());
        produced.extend(result.trace.iter().filter_map(|e| e.decision));
        if Decision::ALL.iter().all(|d| produced.contains(d)) {
            return;
        }
    }
    let missing: Vec<&Decision> = Decision::ALL
        .iter()
        .filter(|d| !produced.contains(d))
        .collect();
    panic!("decisions no catalogue scenario produces: {missing:?}");
}
