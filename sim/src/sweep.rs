//! Sweeps: every scenario over a range of seeds, split over worker threads (each
//! simulation is single-threaded and shares nothing with the others), optionally sharded
//! across machines, with a reproduction file and trace for each failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::cluster::RunOptions;
use crate::explore::Branch;
use crate::scenario::Scenario;

/// A seed range, from `N` (0..N) or `A..B`.
pub fn parse_seeds(text: &str) -> Result<std::ops::Range<u64>, String> {
    match text.split_once("..") {
        Some((a, b)) => {
            let start = a
                .parse()
                .map_err(|_| format!("bad seed range start '{a}'"))?;
            let end = b.parse().map_err(|_| format!("bad seed range end '{b}'"))?;
            if end <= start {
                return Err(format!("empty seed range {text}"));
            }
            Ok(start..end)
        }
        None => {
            let count: u64 = text
                .parse()
                .map_err(|_| format!("--seeds takes N or A..B, not '{text}'"))?;
            Ok(0..count)
        }
    }
}

/// A shard `K/N` (1-based).
pub fn parse_shard(text: &str) -> Result<(u64, u64), String> {
    let (k, n) = text
        .split_once('/')
        .ok_or_else(|| format!("--shard takes K/N, not '{text}'"))?;
    let k: u64 = k.parse().map_err(|_| format!("bad shard index '{k}'"))?;
    let n: u64 = n.parse().map_err(|_| format!("bad shard count '{n}'"))?;
    if n == 0 || k == 0 || k > n {
        return Err(format!("shard {text} is out of range (K must be 1..=N)"));
    }
    Ok((k, n))
}

/// One failed run.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The scenario file.
    pub scenario: PathBuf,
    /// The seed.
    pub seed: u64,
    /// The branch of `--explore` that failed, if it was one.
    pub branch: Option<Branch>,
    /// The violations, one per line.
    pub violations: Vec<String>,
}

/// The result of a sweep.
#[derive(Debug)]
pub struct Summary {
    /// Runs that held every rule.
    pub passed: usize,
    /// Runs that broke one.
    pub failed: Vec<Failure>,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Determinism checks done (seed run twice) and how many differed.
    pub determinism_checked: usize,
    /// Runs whose two traces differed.
    pub nondeterministic: Vec<(PathBuf, u64)>,
    /// How many runs reached each coverage point (see [`coverage_table`]).
    pub coverage: BTreeMap<&'static str, usize>,
    /// How many runs each scenario file had (for the JUnit report, `crate::junit`).
    pub runs_per_scenario: BTreeMap<PathBuf, usize>,
    /// With `--explore`: the first pass's coverage and run count (the branches' are the
    /// rest of `coverage`).
    pub first_pass: Option<(BTreeMap<&'static str, usize>, usize)>,
    /// With `--explore`: how many branches reached each point for the first time after
    /// their branch's moment (new paths, not the replayed prefix).
    pub branch_new: BTreeMap<&'static str, usize>,
}

/// Lists the scenario files to sweep: the arguments, or every scenario under
/// `scenarios/`; with `swarm_only`, only swarm scenarios (a `[swarm]` section) and
/// regression ones (pinned seeds).
pub fn scenario_files(arguments: &[PathBuf], swarm_only: bool) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    let inputs: Vec<PathBuf> = if arguments.is_empty() {
        vec![PathBuf::from("scenarios")]
    } else {
        arguments.to_vec()
    };
    for input in inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&input)
                .map_err(|error| format!("{}: {error}", input.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            found.sort();
            for path in found {
                if swarm_only {
                    let scenario = Scenario::load(&path)?;
                    if scenario.swarm.is_none() && scenario.pinned_seeds.is_empty() {
                        continue;
                    }
                }
                files.push(path);
            }
        } else {
            files.push(input);
        }
    }
    Ok(files)
}

/// The name a failure's files share: `<scenario>-seed<N>`, and `-branch<K>` for a
/// branch of `--explore`.
pub fn failure_stem(failure: &Failure) -> String {
    let stem = failure
        .scenario
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match failure.branch {
        Some(branch) => format!("{stem}-seed{}-branch{}", failure.seed, branch.index),
        None => format!("{stem}-seed{}", failure.seed),
    }
}

/// Writes the reproduction file and trace of a failure under `out`.
pub fn write_failure(out: &Path, failure: &Failure, trace: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(out)?;
    let stem = failure_stem(failure);
    let repro = out.join(format!("{stem}.repro.toml"));
    let mut text = format!(
        "scenario = {:?}\nseed = {}\n",
        failure.scenario.display().to_string(),
        failure.seed
    );
    if let Some(branch) = failure.branch {
        text.push_str(&format!("branch = \"{branch}\"\n"));
    }
    text.push_str("violations = [\n");
    for violation in &failure.violations {
        text.push_str(&format!("  {violation:?},\n"));
    }
    text.push_str("]\n");
    std::fs::write(&repro, text)?;
    std::fs::write(out.join(format!("{stem}.trace")), trace)?;
    Ok(repro)
}

/// Where a sweep writes the timeline of a failure: beside its reproduction file.
pub fn timeline_path(out: &Path, failure: &Failure) -> PathBuf {
    out.join(format!("{}.timeline.html", failure_stem(failure)))
}

/// The command that reproduces a failure.
pub fn reproduce_command(failure: &Failure) -> String {
    let mut command = format!(
        "cargo run --release -p revenant-sim -- run {} --seed {}",
        failure.scenario.display(),
        failure.seed
    );
    if let Some(branch) = failure.branch {
        command.push_str(&format!(" --branch {branch}"));
    }
    command
}

/// How many seeds of a sweep's range a fixed scenario runs by default (the first ones):
/// the catalogue is in every default sweep, but its scenarios vary less with the seed
/// than swarms do (see [`sweep`]).
pub const FIXED_SEEDS_DEFAULT: u64 = 5;

/// What a sweep runs and how: every setting besides the scenario files. Build it with
/// [`SweepOptions::new`] and change the fields that differ from the defaults.
#[derive(Clone, Debug)]
pub struct SweepOptions {
    /// The seed range swarm scenarios run over.
    pub seeds: std::ops::Range<u64>,
    /// Fixed scenarios run over the first this many seeds of the range (every seed when
    /// `None`).
    pub fixed_seeds: Option<u64>,
    /// Shard `k` of `n` (1-based): only seeds with `seed % n == k - 1`; pinned seeds
    /// run on the first shard.
    pub shard: Option<(u64, u64)>,
    /// Worker threads.
    pub jobs: usize,
    /// Where to write a reproduction file, trace and timeline per failure.
    pub out: Option<PathBuf>,
    /// Run every seed divisible by this twice and compare the traces (0: never).
    pub determinism_every: u64,
    /// Draw a progress bar (only when stderr is a terminal).
    pub progress: bool,
    /// Every run's options (tests add a breakage to make failures on purpose).
    pub run: RunOptions,
    /// A second pass of branches from the runs that reached the first pass's rarest
    /// coverage points (`crate::explore`).
    pub explore: Option<crate::explore::Settings>,
}

impl SweepOptions {
    /// `seeds` on one thread, no shard, every seed of fixed scenarios, no output
    /// directory, no determinism checks, no progress bar, default run options, no
    /// exploration.
    pub fn new(seeds: std::ops::Range<u64>) -> SweepOptions {
        SweepOptions {
            seeds,
            fixed_seeds: None,
            shard: None,
            jobs: 1,
            out: None,
            determinism_every: 0,
            progress: false,
            run: RunOptions::default(),
            explore: None,
        }
    }
}

/// One run of a sweep: a scenario (by position), a seed, and the branch of
/// `--explore` it is, if any.
#[derive(Clone, Copy)]
struct Job {
    scenario: usize,
    seed: u64,
    branch: Option<Branch>,
}

/// What one run left for the summary.
#[derive(Default)]
struct Outcome {
    reached: Vec<&'static str>,
    first: BTreeMap<&'static str, std::time::Duration>,
    failure: Option<Failure>,
    checked: bool,
    nondeterministic: bool,
}

/// The sweep's progress bar on stderr (`indicatif`): drawn only when `progress` (the
/// caller asks for it only when stderr is a terminal), hidden otherwise.
fn progress_bar(progress: bool, total: usize, what: &str) -> indicatif::ProgressBar {
    if !progress {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    let style = indicatif::ProgressStyle::with_template(
        "[{bar:30}] {pos}/{len} {msg}, {per_sec} ({eta} left)",
    )
    .expect("a valid template")
    .progress_chars("#>-");
    bar.set_style(style);
    bar.set_message(format!("{what}, 0 failed"));
    bar
}

/// Runs `work` on `sweep.jobs` worker threads; the outcomes in job order.
fn execute(
    work: &[Job],
    scenarios: &[(PathBuf, Scenario)],
    sweep: &SweepOptions,
    progress: bool,
    what: &str,
) -> Vec<Outcome> {
    let threads = sweep.jobs;
    let out = sweep.out.as_deref();
    let determinism_every = sweep.determinism_every;
    let options = &sweep.run;
    let total = work.len();
    let next = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<(usize, Outcome)>> = Mutex::new(Vec::new());
    let bar = progress_bar(progress, total, what);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = work.get(index) else {
                    return;
                };
                let (path, scenario) = &scenarios[job.scenario];
                let seed = job.seed;
                let (result, first) = crate::explore::run(scenario, seed, job.branch, options);
                let mut outcome = Outcome {
                    reached: result.coverage.keys().copied().collect(),
                    first,
                    ..Outcome::default()
                };
                if determinism_every > 0 && seed % determinism_every == 0 {
                    outcome.checked = true;
                    let (again, _) = crate::explore::run(scenario, seed, job.branch, options);
                    outcome.nondeterministic = again.trace_hash != result.trace_hash;
                }
                if !result.violations.is_empty() {
                    let failure = Failure {
                        scenario: path.clone(),
                        seed,
                        branch: job.branch,
                        violations: result
                            .violations
                            .iter()
                            .map(|v| {
                                format!(
                                    "[{}] at {:.3}s: {}",
                                    v.oracle,
                                    v.time.as_secs_f64(),
                                    v.message
                                )
                            })
                            .collect(),
                    };
                    if let Some(out) = out {
                        let trace: String = result.trace.iter().map(|e| e.line() + "\n").collect();
                        let _ = write_failure(out, &failure, &trace);
                        // And its timeline (docs/failing-runs.md F4), from a second run of
                        // the seed with the message log on.
                        let _ = crate::explore::with_branch(job.branch, || {
                            crate::timeline::write(
                                &timeline_path(out, &failure),
                                scenario,
                                seed,
                                options,
                            )
                        });
                    }
                    failures.fetch_add(1, Ordering::Relaxed);
                    outcome.failure = Some(failure);
                }
                outcomes.lock().expect("lock").push((index, outcome));
                let failures = failures.load(Ordering::Relaxed);
                bar.set_message(format!("{what}, {failures} failed"));
                bar.inc(1);
            });
        }
    });
    bar.finish();
    let mut outcomes = outcomes.into_inner().expect("lock");
    outcomes.sort_by_key(|(index, _)| *index);
    outcomes.into_iter().map(|(_, outcome)| outcome).collect()
}

/// Runs the sweep (docs/simulator-reach.md rule 10): swarm scenarios over every seed of
/// `options.seeds`, regression scenarios over their pinned seeds (once, on the first
/// shard), fixed scenarios over the first `options.fixed_seeds` seeds of the range
/// (every seed when `None`); with `options.explore`, a second pass of branches from the
/// runs that reached the first pass's rarest coverage points (`crate::explore`).
pub fn sweep(files: &[PathBuf], options: &SweepOptions) -> Result<Summary, String> {
    let sweep_options = options;
    let seeds = options.seeds.clone();
    let (fixed_seeds, shard) = (options.fixed_seeds, options.shard);
    let explore = options.explore.as_ref();
    use std::io::IsTerminal;
    // A progress bar redrawn in place is for a person at a terminal, not for a log.
    let progress = options.progress && std::io::stderr().is_terminal();
    let scenarios: Vec<(PathBuf, Scenario)> = files
        .iter()
        .map(|f| Scenario::load(f).map(|s| (f.clone(), s)))
        .collect::<Result<_, _>>()?;
    let mut work: Vec<Job> = Vec::new();
    let first = seeds.start;
    for seed in seeds {
        if let Some((k, n)) = shard {
            if seed % n != k - 1 {
                continue;
            }
        }
        for (index, (_, scenario)) in scenarios.iter().enumerate() {
            let fixed = scenario.swarm.is_none();
            if fixed && fixed_seeds.is_some_and(|count| seed >= first.saturating_add(count)) {
                continue;
            }
            if scenario.pinned_seeds.is_empty() {
                work.push(Job {
                    scenario: index,
                    seed,
                    branch: None,
                });
            }
        }
    }
    // Pinned regression seeds run once per sweep (on the first shard).
    if shard.is_none_or(|(k, _)| k == 1) {
        for (index, (_, scenario)) in scenarios.iter().enumerate() {
            for seed in &scenario.pinned_seeds {
                work.push(Job {
                    scenario: index,
                    seed: *seed,
                    branch: None,
                });
            }
        }
    }
    let started = Instant::now();
    let outcomes = execute(&work, &scenarios, sweep_options, progress, "runs");
    let mut coverage: BTreeMap<&'static str, usize> = BTreeMap::new();
    for outcome in &outcomes {
        for point in &outcome.reached {
            *coverage.entry(*point).or_default() += 1;
        }
    }
    let mut outcomes: Vec<(Job, Outcome)> = work.iter().copied().zip(outcomes).collect();
    let mut first_pass = None;
    let mut branch_new: BTreeMap<&'static str, usize> = BTreeMap::new();
    if let Some(settings) = explore {
        let reached: Vec<(usize, BTreeMap<&'static str, std::time::Duration>)> = outcomes
            .iter()
            .enumerate()
            .filter(|(_, (job, _))| scenarios[job.scenario].1.pinned_seeds.is_empty())
            .map(|(index, (_, outcome))| (index, outcome.first.clone()))
            .collect();
        let plan = crate::explore::plan(&reached, &coverage, settings);
        let branches: Vec<Job> = plan
            .iter()
            .map(|(index, branch)| Job {
                branch: Some(*branch),
                ..outcomes[*index].0
            })
            .collect();
        first_pass = Some((coverage.clone(), outcomes.len()));
        let more = execute(&branches, &scenarios, sweep_options, progress, "branches");
        for (job, outcome) in branches.iter().zip(&more) {
            for point in &outcome.reached {
                *coverage.entry(*point).or_default() += 1;
            }
            let at = job.branch.map(|b| b.at).unwrap_or_default();
            for (point, first) in &outcome.first {
                if *first > at {
                    *branch_new.entry(*point).or_default() += 1;
                }
            }
        }
        outcomes.extend(branches.into_iter().zip(more));
    }
    let mut runs_per_scenario: BTreeMap<PathBuf, usize> = BTreeMap::new();
    let mut failed = Vec::new();
    let mut nondeterministic = Vec::new();
    let mut checked = 0;
    for (job, outcome) in outcomes.iter_mut() {
        *runs_per_scenario
            .entry(scenarios[job.scenario].0.clone())
            .or_default() += 1;
        checked += usize::from(outcome.checked);
        if outcome.nondeterministic {
            nondeterministic.push((scenarios[job.scenario].0.clone(), job.seed));
        }
        if let Some(failure) = outcome.failure.take() {
            failed.push(failure);
        }
    }
    failed.sort_by_key(|f| (f.scenario.clone(), f.seed, f.branch));
    Ok(Summary {
        passed: outcomes.len() - failed.len(),
        failed,
        seconds: started.elapsed().as_secs_f64(),
        determinism_checked: checked,
        nondeterministic,
        coverage,
        runs_per_scenario,
        first_pass,
        branch_new,
    })
}

/// Coverage points the default sweep does not reach yet, each with the reason (rule CV-4
/// of `docs/crash-points.md`): they are reported apart, and do not fail the CI sweep.
pub const EXPECTED_UNREACHED: &[(&str, &str)] = &[
    // Empty: `agent_task_lost_never_reached_executor` is reached by the fixed scenario
    // `task_never_reached_executor_lost` (docs/simulator-reach.md rule 15a).
];

/// The coverage report: for every listed point, how many runs reached it; then the
/// points never reached (those expected apart, with their reason) and any point reached
/// that the list lacks.
pub fn coverage_table(coverage: &BTreeMap<&'static str, usize>) -> String {
    let mut out = String::from("coverage points (runs that reached each):\n");
    for point in revenant::coverage::POINTS {
        let runs = coverage.get(point).copied().unwrap_or(0);
        out.push_str(&format!("  {runs:>8}  {point}\n"));
    }
    let never = unreached(coverage);
    if !never.is_empty() {
        out.push_str(&format!("never reached: {}\n", never.join(", ")));
    }
    for (point, reason) in EXPECTED_UNREACHED {
        if coverage.get(point).copied().unwrap_or(0) == 0 {
            out.push_str(&format!("not reached, as expected: {point} ({reason})\n"));
        }
    }
    for point in coverage.keys() {
        if !revenant::coverage::POINTS.contains(point) {
            out.push_str(&format!(
                "reached but not listed in revenant::coverage::POINTS: {point}\n"
            ));
        }
    }
    out
}

/// Listed points no run reached, leaving out those expected unreached.
pub fn unreached(coverage: &BTreeMap<&'static str, usize>) -> Vec<&'static str> {
    revenant::coverage::POINTS
        .iter()
        .copied()
        .filter(|point| coverage.get(point).copied().unwrap_or(0) == 0)
        .filter(|point| !EXPECTED_UNREACHED.iter().any(|(p, _)| p == point))
        .collect()
}

/// The exploration's report: the first pass's rarest points, and how many runs reached
/// each in the first pass, with the branches, and how many branches reached it only
/// after their branch's moment (a new path, not the replayed prefix).
pub fn explore_report(summary: &Summary) -> String {
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
    for point in crate::explore::rarest(first, crate::explore::Settings::default().rarest) {
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
