//! Systematic crash points (`revenant-sim crash-points SCENARIO`): one run of a fixed
//! scenario counts the filesystem operations agent 1 performs, then one run per
//! operation kills the agent exactly there, and runs per operation after a change to the
//! disk cut the machine's power there, once for each of up to N distinct crash states
//! the simulated filesystem allows. Every oracle but the scenario's own `[expect]` is
//! checked after each run. The rules are `docs/crash-points.md`.
//!
//! The mechanism (the thread-local plan and the filesystem wrapper) is `crate::crash_hooks`,
//! below the cluster driver; this module runs the search over whole clusters.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::cluster::{self, RunOptions};
pub use crate::crash_hooks::{
    install, take_power_loss, take_report, wrap, AgentOp, PointReport, POWER_LOSS_BOOT_AFTER,
    ZERO_FILLED_STATES,
};
use crate::oracles::Violation;
use crate::scenario::Scenario;

/// Simulated time every crash-points run gets beyond the scenario's `duration_s`, so
/// that a crash near the end still has time to be recovered from (rule CP-4).
pub const SETTLE_S: f64 = 60.0;

/// The default bound of crash states tried per power-loss point.
pub const DEFAULT_POWER_LOSS_STATES: usize = 64;

/// Settings of a crash-points search.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The seed every run uses.
    pub seed: u64,
    /// Crash states tried per power-loss point, at most (0: no power losses).
    pub power_loss_states: usize,
    /// Whether to run the agent deaths (the command always does; a test may look at
    /// power losses only).
    pub deaths: bool,
    /// Worker threads.
    pub jobs: usize,
    /// Test-only breakage, for showing that the search finds a broken rule.
    pub breakage: revenant::breakage::Breakage,
    /// Print progress to stderr.
    pub progress: bool,
}

/// How a point crashed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The agent process died at the operation and was restarted ~1 s later.
    Process,
    /// The machine lost power at the operation, leaving crash state N.
    PowerLoss(usize),
}

/// A failed crash point.
#[derive(Clone, Debug)]
pub struct PointFailure {
    /// The operation.
    pub op: AgentOp,
    /// How it crashed.
    pub mode: Mode,
    /// What the power loss left, if one.
    pub power_loss: Option<String>,
    /// Every rule broken.
    pub violations: Vec<Violation>,
}

/// The result of a crash-points search.
#[derive(Debug, Default)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// Operations agent 1 performed within the scenario's duration (the points).
    pub ops: Vec<AgentOp>,
    /// Runs with a process death.
    pub process_runs: usize,
    /// Points where a power loss was tried.
    pub power_loss_points: usize,
    /// Runs with a power loss.
    pub power_loss_runs: usize,
    /// Of those, runs whose power loss left zeroed bytes (rule CP-7).
    pub zero_filled_runs: usize,
    /// Failed runs.
    pub failures: Vec<PointFailure>,
    /// Violations of the counting run itself (the scenario does not hold without a crash).
    pub baseline_violations: Vec<Violation>,
    /// Wall time, seconds.
    pub seconds: f64,
}

fn options(settings: &Settings) -> RunOptions {
    RunOptions {
        breakage: settings.breakage,
        power_loss_states: settings.power_loss_states,
        ..RunOptions::default()
    }
}

/// Rule CP-5: every rule oracle is checked; the scenario's own `[expect]` describes the
/// run without the extra crash, so it is not.
fn rule_violations(violations: Vec<Violation>) -> Vec<Violation> {
    violations
        .into_iter()
        .filter(|v| v.oracle != "expectations")
        .collect()
}

/// The scenario as crash-points runs it: `SETTLE_S` longer (rule CP-4).
pub fn settled(scenario: &Scenario) -> Scenario {
    let mut scenario = scenario.clone();
    scenario.duration_s += SETTLE_S;
    scenario
}

/// Checks that a scenario can be searched: a fixed scenario (no `[swarm]`). With several
/// agent processes on the machine, the points are agent 1's operations.
pub fn check_scenario(scenario: &Scenario) -> Result<(), String> {
    if scenario.swarm.is_some() {
        return Err(format!(
            "scenario {} has a [swarm] section: crash-points needs a fixed scenario (its faults drawn from the seed would move with every crash)",
            scenario.name
        ));
    }
    Ok(())
}

/// Runs the search.
pub fn search(scenario: &Scenario, settings: &Settings) -> Result<Report, String> {
    check_scenario(scenario)?;
    let started = std::time::Instant::now();
    let end = Duration::from_secs_f64(scenario.duration_s.max(0.0));
    let long = settled(scenario);
    // The counting run.
    let mut counting = options(settings);
    counting.record_agent_ops = true;
    let baseline = cluster::run(&long, settings.seed, &counting);
    let recorded = take_report();
    let ops: Vec<AgentOp> = recorded
        .ops
        .into_iter()
        .filter(|op| op.time < end)
        .collect();
    let mut report = Report {
        scenario: scenario.name.clone(),
        baseline_violations: rule_violations(baseline.violations),
        ..Report::default()
    };
    // Jobs: every point with a process death, and every point right after an operation
    // that changed the disk with a power loss (rule CP-2); crash state 0 first, the
    // others once state 0 told how many there are.
    let mut jobs: Vec<(usize, Mode)> = Vec::new();
    if settings.deaths {
        jobs.extend((0..ops.len()).map(|i| (i, Mode::Process)));
    }
    if settings.power_loss_states > 0 {
        for i in 1..ops.len() {
            if ops[i - 1].changes_disk {
                jobs.push((i, Mode::PowerLoss(0)));
                report.power_loss_points += 1;
            }
        }
    }
    let failures: Mutex<Vec<PointFailure>> = Mutex::new(Vec::new());
    let more: Mutex<Vec<(usize, Mode)>> = Mutex::new(Vec::new());
    let process_runs = AtomicUsize::new(0);
    let power_runs = AtomicUsize::new(0);
    let zero_filled_runs = AtomicUsize::new(0);
    let run_jobs = |jobs: &[(usize, Mode)]| {
        let next = AtomicUsize::new(0);
        let total = jobs.len();
        std::thread::scope(|scope| {
            for _ in 0..settings.jobs.max(1) {
                scope.spawn(|| loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some((op_index, mode)) = jobs.get(index) else {
                        return;
                    };
                    let op = &ops[*op_index];
                    let mut run_options = options(settings);
                    match mode {
                        Mode::Process => run_options.crash_at_agent_op = Some(op.index),
                        Mode::PowerLoss(state) => {
                            run_options.power_loss_at_agent_op = Some(op.index);
                            run_options.power_loss_state = *state;
                        }
                    }
                    let result = cluster::run(&long, settings.seed, &run_options);
                    let point = take_report();
                    match mode {
                        Mode::Process => {
                            process_runs.fetch_add(1, Ordering::Relaxed);
                        }
                        Mode::PowerLoss(state) => {
                            power_runs.fetch_add(1, Ordering::Relaxed);
                            if point.zero_filled {
                                zero_filled_runs.fetch_add(1, Ordering::Relaxed);
                            }
                            if *state == 0 {
                                let mut more = more.lock().expect("lock");
                                for other in 1..point.states_found {
                                    more.push((*op_index, Mode::PowerLoss(other)));
                                }
                            }
                        }
                    }
                    let mut violations = rule_violations(result.violations);
                    if !point.fired {
                        violations.push(Violation {
                            time: op.time,
                            oracle: "crash_points",
                            message: format!(
                                "the run never reached operation {} ({} {}): the scenario is not deterministic",
                                op.index,
                                op.kind,
                                op.path.display()
                            ),
                        });
                    }
                    if !violations.is_empty() {
                        failures.lock().expect("lock").push(PointFailure {
                            op: op.clone(),
                            mode: mode.clone(),
                            power_loss: point.power_loss,
                            violations,
                        });
                    }
                    if settings.progress && (index + 1).is_multiple_of(20) {
                        eprint!("\r{}/{total} runs ", index + 1);
                    }
                });
            }
        });
        if settings.progress {
            eprintln!();
        }
    };
    run_jobs(&jobs);
    let mut second: Vec<(usize, Mode)> = more.lock().expect("lock").drain(..).collect();
    second.sort_by_key(|(i, mode)| {
        (
            *i,
            match mode {
                Mode::PowerLoss(s) => *s,
                Mode::Process => 0,
            },
        )
    });
    run_jobs(&second);
    let mut failures = failures.into_inner().expect("lock");
    failures.sort_by_key(|f| {
        (
            f.op.index,
            match f.mode {
                Mode::Process => 0,
                Mode::PowerLoss(s) => s + 1,
            },
        )
    });
    report.ops = ops;
    report.failures = failures;
    report.process_runs = process_runs.into_inner();
    report.power_loss_runs = power_runs.into_inner();
    report.zero_filled_runs = zero_filled_runs.into_inner();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

impl Report {
    /// Whether every point held (and the counting run too).
    pub fn green(&self) -> bool {
        self.failures.is_empty() && self.baseline_violations.is_empty()
    }

    /// The report in words: one line per failed run.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for violation in &self.baseline_violations {
            out.push_str(&format!(
                "FAILED without any crash: [{}] at {:.3}s: {}\n",
                violation.oracle,
                violation.time.as_secs_f64(),
                violation.message
            ));
        }
        for failure in &self.failures {
            let how = match failure.mode {
                Mode::Process => "agent dies".to_owned(),
                Mode::PowerLoss(state) => format!("power loss, crash state {state}"),
            };
            out.push_str(&format!(
                "FAILED op {} ({} {}, incarnation {}, at {:.3}s), {how}\n",
                failure.op.index,
                failure.op.kind,
                failure.op.path.display(),
                failure.op.incarnation,
                failure.op.time.as_secs_f64()
            ));
            if let Some(loss) = &failure.power_loss {
                out.push_str(&format!("  {loss}\n"));
            }
            for violation in &failure.violations {
                out.push_str(&format!(
                    "  [{}] at {:.3}s: {}\n",
                    violation.oracle,
                    violation.time.as_secs_f64(),
                    violation.message
                ));
            }
        }
        out.push_str(&format!(
            "scenario {}: {} filesystem operations of the agent; {} runs with the agent dying at one, {} runs with a power loss at {} points ({} left zeroed bytes, CP-7); {} failed; {:.1}s\n",
            self.scenario,
            self.ops.len(),
            self.process_runs,
            self.power_loss_runs,
            self.power_loss_points,
            self.zero_filled_runs,
            self.failures.len(),
            self.seconds
        ));
        out
    }
}
