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

use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::cluster::{self, RunOptions, RunResult};
use crate::scenario::{FaultSpec, Scenario};
use crate::seams::derive_seed;

/// Where a branch leaves its parent run, and which of the parent's branches it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Branch {
    /// The moment (simulated time) the parent first reached the rare point.
    pub at: Duration,
    /// The branch's index (1, 2, ...): its fresh randomness derives from it.
    pub index: u64,
}

impl Branch {
    /// `AT:K` (seconds, index), as `run --branch` takes it and a repro file records it.
    pub fn parse(text: &str) -> Result<Branch, String> {
        let (at, index) = text
            .split_once(':')
            .ok_or_else(|| format!("--branch takes AT:K (seconds:index), not '{text}'"))?;
        let at: f64 = at
            .parse()
            .map_err(|_| format!("bad branch moment '{at}' (seconds)"))?;
        if !at.is_finite() || at < 0.0 {
            return Err(format!("bad branch moment '{at}' (seconds, at least 0)"));
        }
        let index = index
            .parse()
            .map_err(|_| format!("bad branch index '{index}'"))?;
        Ok(Branch {
            at: Duration::from_micros((at * 1e6).round() as u64),
            index,
        })
    }
}

impl std::fmt::Display for Branch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.6}:{}", self.at.as_secs_f64(), self.index)
    }
}

thread_local! {
    static BRANCH: Cell<Option<Branch>> = const { Cell::new(None) };
}

/// Runs `body` as branch `branch` (none: the plain run) on this thread.
pub fn with_branch<T>(branch: Option<Branch>, body: impl FnOnce() -> T) -> T {
    struct Restore(Option<Branch>);
    impl Drop for Restore {
        fn drop(&mut self) {
            BRANCH.with(|b| b.set(self.0));
        }
    }
    let _restore = Restore(BRANCH.with(|b| b.replace(branch)));
    body()
}

fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_else(|| crate::trace::DRIVER_TIME.with(|t| t.get()))
}

/// The seed a random stream (first seeded with `stream`) switches to, once the branch's
/// moment has passed; `None` outside a branch or before it.
pub fn branch_seed(stream: u64) -> Option<u64> {
    let branch = BRANCH.with(|b| b.get())?;
    let elapsed = turmoil::sim_elapsed()?;
    (elapsed > branch.at).then(|| derive_seed(stream, &format!("branch-{}", branch.index)))
}

/// The run's fault schedule: [`cluster::schedule_for`], or in a branch, the parent's
/// faults up to the branch's moment and a fresh draw after it.
pub fn schedule(scenario: &Scenario, seed: u64) -> Vec<FaultSpec> {
    let parent = cluster::schedule_for(scenario, seed);
    let Some(branch) = BRANCH.with(|b| b.get()) else {
        return parent;
    };
    let at = branch.at.as_secs_f64();
    let fresh = cluster::schedule_for(
        scenario,
        derive_seed(seed, &format!("branch-{}", branch.index)),
    );
    let mut schedule: Vec<FaultSpec> = parent.into_iter().filter(|f| f.at_s <= at).collect();
    schedule.extend(fresh.into_iter().filter(|f| f.at_s > at));
    schedule.sort_by(|x, y| x.at_s.total_cmp(&y.at_s));
    schedule
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

/// The exploration's report: the first pass's rarest points, and how many runs reached
/// each in the first pass, with the branches, and how many branches reached it only
/// after their branch's moment (a new path, not the replayed prefix).
pub fn report(summary: &crate::sweep::Summary) -> String {
    let Some((first, first_runs)) = &summary.first_pass else {
        return String::new();
    };
    let all_runs = summary.passed + summary.failed.len();
    let mut out = format!(
        "explore: {first_runs} runs, then {} branches; {:.1}s in all\n\
         the first pass's rarest points: runs reaching each in the first pass, with the branches, branches reaching it after their moment\n",
        all_runs.saturating_sub(*first_runs),
        summary.seconds
    );
    let line = |point: &str, a: usize, b: usize, c: usize, note: &str| {
        format!("  {a:>8} {b:>8} {c:>8}  {point}{note}\n")
    };
    let get =
        |map: &BTreeMap<&'static str, usize>, point: &str| map.get(point).copied().unwrap_or(0);
    for point in rarest(first, Settings::default().rarest) {
        out.push_str(&line(
            point,
            get(first, point),
            get(&summary.coverage, point),
            get(&summary.branch_new, point),
            "",
        ));
    }
    for (point, runs) in &summary.coverage {
        if get(first, point) == 0 && *runs > 0 {
            out.push_str(&line(
                point,
                0,
                *runs,
                get(&summary.branch_new, point),
                " (reached by branches only)",
            ));
        }
    }
    out
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
