//! `revenant-sim`: run one seeded scenario, sweep many, replay a recorded failure, or
//! crash a fixed scenario at every filesystem operation of the agent (`crash-points`).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::scenario::Scenario;
use revenant_sim::sweep;

#[derive(Parser)]
#[command(
    name = "revenant-sim",
    version,
    about = "Deterministic crash-recovery simulation of the Revenant agent"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario with one seed.
    Run {
        /// The scenario file.
        scenario: PathBuf,
        /// The seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Write the trace to this file.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Print the recovery trace (decisions only, ids made stable).
        #[arg(long)]
        recovery_trace: bool,
        /// Run the seed twice and compare the traces byte for byte.
        #[arg(long)]
        check_determinism: bool,
        /// Write the run's timeline to this file: one self-contained HTML page (lanes
        /// per process, messages, faults, decisions, violations; zoomable).
        #[arg(long)]
        timeline: Option<PathBuf>,
        /// Run a branch of `sweep --explore` (`AT:K`: the moment in seconds, the
        /// branch's index), as a failure's reproduce line gives it.
        #[arg(long)]
        branch: Option<String>,
    },
    /// Run scenarios over many seeds.
    Sweep {
        /// Scenario files or directories (default: every scenario in `scenarios/`: swarm
        /// scenarios over every seed, regression ones over their pinned seeds, fixed
        /// ones over the first `--fixed-seeds` seeds).
        scenarios: Vec<PathBuf>,
        /// `N` (seeds 0..N) or `A..B`.
        #[arg(long, default_value = "100")]
        seeds: String,
        /// Worker threads (default: the number of cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Run only shard K of N (`K/N`), for a CI matrix.
        #[arg(long)]
        shard: Option<String>,
        /// Write a reproduction file and the trace of each failure here.
        #[arg(long, default_value = "sweep-out")]
        out: PathBuf,
        /// Run every N-th seed twice and compare traces (0: never).
        #[arg(long, default_value_t = 50)]
        determinism_every: u64,
        /// Sweep only the swarm and regression scenarios found, not the fixed ones.
        #[arg(long, conflicts_with = "all")]
        swarm_only: bool,
        /// Kept for old command lines: every scenario found is swept unless
        /// `--swarm-only`.
        #[arg(long)]
        all: bool,
        /// Fixed scenarios run only the first N seeds of the range (default: 5 when no
        /// scenario is named, every seed when some are).
        #[arg(long)]
        fixed_seeds: Option<u64>,
        /// Also write a JUnit XML report here: one test case per scenario, each failed
        /// run with its seed, oracle, messages and reproduce command.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Shrink each failure (as `shrink` does) into a regression scenario written
        /// beside its reproduction file in `--out`, and print its path.
        #[arg(long)]
        shrink: bool,
        /// After the seeds, branch the runs that reached the sweep's rarest coverage
        /// points: each re-run to the moment it first reached one, then on with fresh
        /// randomness (`--explore-branches` branches each).
        #[arg(long)]
        explore: bool,
        /// Branches per run with `--explore`.
        #[arg(long, default_value_t = 4)]
        explore_branches: u64,
    },
    /// Merge the JUnit reports of a sweep's shards (`sweep --shard K/N --junit FILE`)
    /// into one. Exit 0 when every run in them held, 1 when one failed, 2 on a file that
    /// is not such a report.
    Merge {
        /// The shards' reports.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        /// Where to write the merged report.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Run a fixed scenario once per filesystem operation of the agent: the agent dies
    /// there (and restarts), and, after each operation that changed the disk, the machine
    /// loses power there in each of up to N distinct crash states. Exit 0 when every
    /// point held, 1 when one failed, 2 on a bad scenario.
    CrashPoints {
        /// The scenario file (a fixed scenario).
        scenario: PathBuf,
        /// Crash states tried per power-loss point, at most (0: no power losses).
        #[arg(long, default_value_t = revenant_sim::crash_points::DEFAULT_POWER_LOSS_STATES)]
        power_loss_states: usize,
        /// Worker threads (default: the number of cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// The seed of every run.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Shrink a recorded failure (a `.repro.toml` written by `sweep`) to the smallest
    /// fixed schedule that still breaks the same oracle at the same seed, and write it as
    /// a regression scenario. Exit 0 when written, 1 when the run cannot be shrunk (it
    /// holds, or its schedule written out no longer fails), 2 on a bad file.
    Shrink {
        /// The reproduction file.
        file: PathBuf,
        /// Where to write the scenario (default:
        /// `scenarios/regression_shrunk_<scenario>_seed<N>.toml`).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Re-run a recorded failure (a `.repro.toml` written by `sweep`).
    Replay {
        /// The reproduction file.
        file: PathBuf,
        /// Write the trace to this file.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Write the run's timeline (HTML) to this file.
        #[arg(long)]
        timeline: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Sweep {
            scenarios,
            seeds,
            jobs,
            shard,
            out,
            determinism_every,
            swarm_only,
            all,
            fixed_seeds,
            junit,
            shrink,
            explore,
            explore_branches,
        } => {
            let run = || -> Result<ExitCode, String> {
                let seeds = sweep::parse_seeds(&seeds)?;
                let seed_count = seeds.end.saturating_sub(seeds.start);
                let shard = shard.as_deref().map(sweep::parse_shard).transpose()?;
                let _ = all;
                let fixed_seeds =
                    fixed_seeds.or(scenarios.is_empty().then_some(sweep::FIXED_SEEDS_DEFAULT));
                let files = sweep::scenario_files(&scenarios, swarm_only)?;
                if files.is_empty() {
                    return Err("no scenarios to sweep".into());
                }
                let jobs = jobs.unwrap_or_else(|| {
                    std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(1)
                });
                eprintln!(
                    "sweeping {} scenario(s) over seeds {}..{} with {jobs} job(s)",
                    files.len(),
                    seeds.start,
                    seeds.end
                );
                let settings = revenant_sim::explore::Settings {
                    branches: explore_branches,
                    ..Default::default()
                };
                let summary = sweep::sweep(
                    &files,
                    &sweep::SweepOptions {
                        fixed_seeds,
                        shard,
                        jobs,
                        out: Some(out.clone()),
                        determinism_every,
                        progress: true,
                        explore: explore.then_some(settings),
                        ..sweep::SweepOptions::new(seeds)
                    },
                )?;
                let runs = summary.passed + summary.failed.len();
                for failure in &summary.failed {
                    match failure.branch {
                        Some(branch) => println!(
                            "FAILED {} seed {} branch {branch}",
                            failure.scenario.display(),
                            failure.seed
                        ),
                        None => println!(
                            "FAILED {} seed {}",
                            failure.scenario.display(),
                            failure.seed
                        ),
                    }
                    for violation in &failure.violations {
                        println!("  {violation}");
                    }
                    println!("  reproduce: {}", sweep::reproduce_command(failure));
                }
                for (path, seed) in &summary.nondeterministic {
                    println!("NONDETERMINISTIC {} seed {seed}: run it with --check-determinism to see where", path.display());
                }
                println!(
                    "{runs} runs in {:.1}s: {:.1} runs/s, {:.1} seeds/s; determinism checked on {} runs, {} differed",
                    summary.seconds,
                    runs as f64 / summary.seconds.max(1e-9),
                    seed_count as f64 / summary.seconds.max(1e-9),
                    summary.determinism_checked,
                    summary.nondeterministic.len()
                );
                print!("{}", sweep::coverage_table(&summary.coverage));
                print!("{}", revenant_sim::sweep::explore_report(&summary));
                if let Some(junit) = &junit {
                    revenant_sim::junit::write(junit, &revenant_sim::junit::results(&summary))?;
                    println!("JUnit report written to {}", junit.display());
                }
                if !summary.failed.is_empty() {
                    println!("failures written to {}", out.display());
                }
                if shrink {
                    for failure in &summary.failed {
                        match revenant_sim::shrink::shrink_failure(
                            &out,
                            failure,
                            &RunOptions::default(),
                        ) {
                            Ok((path, shrunk)) => println!(
                                "shrunk {} seed {}: {} of {} fault(s) left, still breaks the {} oracle, {} runs: {}",
                                failure.scenario.display(),
                                failure.seed,
                                shrunk.faults_after,
                                shrunk.faults_before,
                                shrunk.oracle,
                                shrunk.runs + 1,
                                path.display()
                            ),
                            Err(error) => println!(
                                "not shrunk {} seed {}: {error}",
                                failure.scenario.display(),
                                failure.seed
                            ),
                        }
                    }
                }
                println!(
                    "{} passed, {} failed",
                    summary.passed,
                    summary.failed.len() + summary.nondeterministic.len()
                );
                Ok(
                    if summary.failed.is_empty() && summary.nondeterministic.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    },
                )
            };
            match run() {
                Ok(code) => code,
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Merge { reports, output } => {
            let merged = revenant_sim::junit::merge(&reports)
                .and_then(|merged| revenant_sim::junit::write(&output, &merged).map(|()| merged));
            match merged {
                Ok(merged) => {
                    let runs: u64 = merged.values().map(|r| r.runs).sum();
                    let failed: usize = merged.values().map(|r| r.failures.len()).sum();
                    println!(
                        "{} report(s), {} scenario(s), {runs} runs, {failed} failed: written to {}",
                        reports.len(),
                        merged.len(),
                        output.display()
                    );
                    if revenant_sim::junit::green(&merged) {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::from(2)
                }
            }
        }
        Command::CrashPoints {
            scenario,
            power_loss_states,
            jobs,
            seed,
        } => {
            let loaded = Scenario::load(&scenario).and_then(|loaded| {
                revenant_sim::crash_points::check_scenario(&loaded).map(|()| loaded)
            });
            let loaded = match loaded {
                Ok(loaded) => loaded,
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(2);
                }
            };
            let jobs = jobs.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            });
            let settings = revenant_sim::crash_points::Settings {
                seed,
                power_loss_states,
                deaths: true,
                jobs,
                breakage: Default::default(),
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            };
            match revenant_sim::crash_points::search(&loaded, &settings) {
                Ok(report) => {
                    print!("{}", report.render());
                    if report.green() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Shrink { file, output } => {
            let repro = match read_repro(&file) {
                Ok(repro) if repro.branch.is_some() => {
                    eprintln!(
                        "error: {}: a branch of --explore cannot be shrunk into a scenario (its fresh randomness is not a scenario field); replay it instead",
                        file.display()
                    );
                    return ExitCode::from(2);
                }
                Ok(repro) => repro,
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(2);
                }
            };
            let output = output.unwrap_or_else(|| {
                let stem = repro
                    .scenario
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                PathBuf::from("scenarios")
                    .join(format!("regression_shrunk_{stem}_seed{}.toml", repro.seed))
            });
            if output.exists() {
                eprintln!("error: {} exists; give another --output", output.display());
                return ExitCode::from(2);
            }
            let mut progress = |line: &str| eprintln!("shrink: {line}");
            let shrunk = match revenant_sim::shrink::shrink(
                &repro.scenario,
                repro.seed,
                &RunOptions::default(),
                &mut progress,
            ) {
                Ok(shrunk) => shrunk,
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::FAILURE;
                }
            };
            if let Err(error) = std::fs::write(&output, &shrunk.toml) {
                eprintln!("error: {}: {error}", output.display());
                return ExitCode::from(2);
            }
            // What is on disk must be what failed: read it back and run it once more.
            let check = Scenario::load(&output).map(|scenario| {
                cluster::run(&scenario, repro.seed, &RunOptions::default())
                    .violations
                    .iter()
                    .any(|v| v.oracle == shrunk.oracle)
            });
            match check {
                Ok(true) => {
                    println!(
                        "wrote {}: {} of {} fault(s) left, still breaks the {} oracle ({}); {} runs",
                        output.display(),
                        shrunk.faults_after,
                        shrunk.faults_before,
                        shrunk.oracle,
                        shrunk.message.lines().next().unwrap_or_default(),
                        shrunk.runs + 1
                    );
                    println!(
                        "reproduce: cargo run --release -p revenant-sim -- run {} --seed {}",
                        output.display(),
                        repro.seed
                    );
                    ExitCode::SUCCESS
                }
                Ok(false) => {
                    eprintln!(
                        "error: {} as written no longer breaks the {} oracle (a field did not survive the round trip); left in place for a look",
                        output.display(),
                        shrunk.oracle
                    );
                    ExitCode::FAILURE
                }
                Err(error) => {
                    eprintln!("error: the written scenario does not load: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Replay {
            file,
            trace,
            timeline,
        } => {
            let repro = match read_repro(&file) {
                Ok(repro) => repro,
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(2);
                }
            };
            let branch = match repro
                .branch
                .as_deref()
                .map(revenant_sim::explore::Branch::parse)
                .transpose()
            {
                Ok(branch) => branch,
                Err(error) => {
                    eprintln!("error: {}: {error}", file.display());
                    return ExitCode::from(2);
                }
            };
            revenant_sim::explore::with_branch(branch, || {
                run_one(repro.scenario, repro.seed, trace, timeline, false, false)
            })
        }
        Command::Run {
            scenario: path,
            seed,
            trace,
            recovery_trace,
            check_determinism,
            timeline,
            branch,
        } => {
            let branch = match branch
                .as_deref()
                .map(revenant_sim::explore::Branch::parse)
                .transpose()
            {
                Ok(branch) => branch,
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(2);
                }
            };
            revenant_sim::explore::with_branch(branch, || {
                run_one(
                    path,
                    seed,
                    trace,
                    timeline,
                    check_determinism,
                    recovery_trace,
                )
            })
        }
    }
}

/// A reproduction file written by `sweep`: the scenario and the seed.
#[derive(serde::Deserialize)]
struct Repro {
    scenario: PathBuf,
    seed: u64,
    /// A branch of `sweep --explore` (`AT:K`).
    #[serde(default)]
    branch: Option<String>,
}

fn read_repro(file: &std::path::Path) -> Result<Repro, String> {
    let text =
        std::fs::read_to_string(file).map_err(|error| format!("{}: {error}", file.display()))?;
    toml::from_str(&text).map_err(|error| format!("{}: {error}", file.display()))
}

fn run_one(
    path: PathBuf,
    seed: u64,
    trace: Option<PathBuf>,
    timeline: Option<PathBuf>,
    check_determinism: bool,
    recovery_trace: bool,
) -> ExitCode {
    {
        {
            let scenario = match Scenario::load(&path) {
                Ok(scenario) => scenario,
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(2);
                }
            };
            let result = match &timeline {
                Some(file) => {
                    match revenant_sim::timeline::write(
                        file,
                        &scenario,
                        seed,
                        &RunOptions::default(),
                    ) {
                        Ok(result) => {
                            println!("timeline written to {}", file.display());
                            result
                        }
                        Err(error) => {
                            eprintln!("error: {error}");
                            return ExitCode::from(2);
                        }
                    }
                }
                None => cluster::run(&scenario, seed, &RunOptions::default()),
            };
            if let Some(trace_path) = &trace {
                let text: String = result.trace.iter().map(|e| e.line() + "\n").collect();
                if let Err(error) = std::fs::write(trace_path, text) {
                    eprintln!(
                        "error: cannot write trace '{}': {error}",
                        trace_path.display()
                    );
                    return ExitCode::from(2);
                }
            }
            if recovery_trace {
                print!(
                    "{}",
                    revenant_sim::trace::snapshot_trace(&scenario, &result.trace)
                );
            }
            println!(
                "scenario {} seed {}: {} trace events, trace hash {:016x}",
                scenario.name,
                seed,
                result.trace.len(),
                result.trace_hash
            );
            for (task, (state, reason)) in &result.final_states {
                println!("  task {task}: {} ({reason})", state.as_str_name());
            }
            if check_determinism {
                let again = cluster::run(&scenario, seed, &RunOptions::default());
                if again.trace_hash != result.trace_hash {
                    let first = result
                        .trace
                        .iter()
                        .zip(&again.trace)
                        .position(|(a, b)| a != b)
                        .unwrap_or(result.trace.len().min(again.trace.len()));
                    eprintln!("NOT DETERMINISTIC: traces differ at event {first}:");
                    eprintln!(
                        "  first run:  {}",
                        result
                            .trace
                            .get(first)
                            .map(|e| e.line())
                            .unwrap_or_else(|| "(end)".into())
                    );
                    eprintln!(
                        "  second run: {}",
                        again
                            .trace
                            .get(first)
                            .map(|e| e.line())
                            .unwrap_or_else(|| "(end)".into())
                    );
                    return ExitCode::FAILURE;
                }
                println!(
                    "deterministic: two runs gave trace hash {:016x}",
                    again.trace_hash
                );
            }
            if result.violations.is_empty() {
                println!("ok: every oracle held");
                ExitCode::SUCCESS
            } else {
                for violation in &result.violations {
                    println!(
                        "VIOLATION [{}] at {:.3}s: {}",
                        violation.oracle,
                        violation.time.as_secs_f64(),
                        violation.message
                    );
                }
                println!(
                    "reproduce: cargo run --release -p revenant-sim -- run {} --seed {seed}",
                    path.display()
                );
                ExitCode::FAILURE
            }
        }
    }
}
