//! Exploration (`sweep --explore`, docs/failing-runs.md F11–F15): random seeds reach
//! rare recovery states rarely, so when a run reaches one of the sweep's rarest coverage
//! points, the same seed is run again up to the moment it first reached that point, and
//! branches there with fresh randomness:
//!
//! - the faults drawn for the run before that moment are kept, and those after it are
//!   drawn again from a seed derived from (seed, branch index) (a fixed scenario's
//!   faults stay as they are);
//! - every process's random stream (the `Random` seam) is reseeded, from its own seed
//!   and the branch index, at its first draw after that moment.
//!
//! Up to that moment a branch is the same run as its parent (same seed, same faults,
//! same draws), so it reaches the rare point again; from there it takes another path.
//! Everything derives from the seed and the branch index, so a branch is reproducible
//! (`run --seed S --branch AT:K`) and a sweep with `--explore` gives the same results
//! every time: which runs branch is decided from the whole first pass, in work order.

use std::collections::BTreeMap;
use std::time::Duration;

pub use crate::branch::{branch_seed, with_branch, Branch};
pub use crate::schedule::schedule;

use crate::cluster::{self, RunOptions, RunResult};
use crate::scenario::Scenario;

fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_else(|| crate::trace::DRIVER_TIME.with(|t| t.get()))
}

/// Runs `scenario` at `seed` (as branch `branch`, if any) and says when it first reached
/// each coverage point.
pub fn run(
    scenario: &Scenario,
    seed: u64,
    branch: Option<Branch>,
    options: &RunOptions,
) -> (RunResult, BTreeMap<&'static str, Duration>) {
    revenant::coverage::set_clock(now);
    let result = with_branch(branch, || cluster::run(scenario, seed, options));
    (result, revenant::coverage::first_reached())
}

/// How a sweep explores.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// How many of the first pass's rarest reached points count as rare.
    pub rarest: usize,
    /// Branches per run that reached one.
    pub branches: u64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            rarest: 10,
            branches: 4,
        }
    }
}

/// The rarest points reached in `coverage` (runs per point): at most `count`, fewest
/// runs first, ties by name.
pub fn rarest(coverage: &BTreeMap<&'static str, usize>, count: usize) -> Vec<&'static str> {
    let mut reached: Vec<(&usize, &&'static str)> = coverage
        .iter()
        .filter(|(_, runs)| **runs > 0)
        .map(|(point, runs)| (runs, point))
        .collect();
    reached.sort();
    reached.into_iter().take(count).map(|(_, p)| *p).collect()
}

/// The branches to run after a first pass: for each run (in work order) that reached a
/// rare point, `branches` branches at the moment it first reached the rarest of them.
/// `first` holds each run's work position and first reaches.
pub fn plan(
    first: &[(usize, BTreeMap<&'static str, Duration>)],
    coverage: &BTreeMap<&'static str, usize>,
    settings: &Settings,
) -> Vec<(usize, Branch)> {
    let rare = rarest(coverage, settings.rarest);
    let mut plan = Vec::new();
    for (work, reached) in first {
        // The rarest point this run reached (`rare` is rarest first).
        let Some(at) = rare.iter().find_map(|point| reached.get(point)) else {
            continue;
        };
        for index in 1..=settings.branches {
            plan.push((*work, Branch { at: *at, index }));
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branches_parse_and_print_back() {
        let branch = Branch::parse("12.5:3").unwrap();
        assert_eq!(branch.at, Duration::from_millis(12_500));
        assert_eq!(branch.index, 3);
        assert_eq!(Branch::parse(&branch.to_string()).unwrap(), branch);
        assert!(Branch::parse("12.5").unwrap_err().contains("AT:K"));
        assert!(Branch::parse("-1:2").unwrap_err().contains("moment"));
        assert!(Branch::parse("1:x").unwrap_err().contains("index"));
    }

    #[test]
    fn the_plan_branches_runs_at_their_rarest_point() {
        let coverage: BTreeMap<&'static str, usize> =
            [("common", 100), ("rare", 2), ("rarer", 1), ("never", 0)].into();
        assert_eq!(rarest(&coverage, 2), vec!["rarer", "rare"]);
        let reached = |points: &[(&'static str, u64)]| {
            points
                .iter()
                .map(|(p, s)| (*p, Duration::from_secs(*s)))
                .collect::<BTreeMap<_, _>>()
        };
        let first = vec![
            (0, reached(&[("common", 1)])),
            (1, reached(&[("common", 1), ("rare", 5), ("rarer", 9)])),
            (2, reached(&[("rare", 7)])),
        ];
        let settings = Settings {
            rarest: 2,
            branches: 2,
        };
        let plan = plan(&first, &coverage, &settings);
        let at = |s| Duration::from_secs(s);
        assert_eq!(
            plan,
            vec![
                (
                    1,
                    Branch {
                        at: at(9),
                        index: 1
                    }
                ),
                (
                    1,
                    Branch {
                        at: at(9),
                        index: 2
                    }
                ),
                (
                    2,
                    Branch {
                        at: at(7),
                        index: 1
                    }
                ),
                (
                    2,
                    Branch {
                        at: at(7),
                        index: 2
                    }
                ),
            ]
        );
    }
}
