//! Systematic crash points (`revenant-sim crash-points SCENARIO`): one run of a fixed
//! scenario counts the filesystem operations agent 1 performs, then one run per
//! operation kills the agent exactly there, and runs per operation after a change to the
//! disk cut the machine's power there, once for each of up to N distinct crash states
//! the simulated filesystem allows. Every oracle but the scenario's own `[expect]` is
//! checked after each run. The rules are `docs/crash-points.md`.
//!
//! The mechanism lives here, beside the cluster driver rather than in it: a thread-local
//! plan, installed by [`install`] at the start of a run from [`RunOptions`], and a
//! [`FileSystem`] wrapper ([`wrap`]) put around every agent-1 incarnation's filesystem
//! handle. The wrapper numbers operations over the whole run (rule CP-1), and at the
//! armed one makes the incarnation die through its [`crate::seams::ProcessFs`] (the same
//! death as an `agent_crash_at_write` fault) or cuts the power on the machine's disk at
//! once, leaving the rest of the reboot to the driver ([`take_power_loss`]).

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use rand::SeedableRng;
use revenant::os::{FileLock, FileSystem, LockError};

use crate::cluster::{self, RunOptions};
use crate::fs::SimFs;
use crate::oracles::Violation;
use crate::scenario::Scenario;
use crate::seams::derive_seed;

/// Simulated time every crash-points run gets beyond the scenario's `duration_s`, so
/// that a crash near the end still has time to be recovered from (rule CP-4).
pub const SETTLE_S: f64 = 60.0;

/// How long the machine stays off after a power loss at a crash point.
pub const POWER_LOSS_BOOT_AFTER: Duration = Duration::from_secs(5);

/// The default bound of crash states tried per power-loss point.
pub const DEFAULT_POWER_LOSS_STATES: usize = 64;

/// One filesystem operation of agent 1, as the counting run saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentOp {
    /// Its index over the whole run (0-based).
    pub index: u64,
    /// The call (`write`, `append`, `sync_dir`, ...).
    pub kind: &'static str,
    /// The path it named (the first, for a rename).
    pub path: PathBuf,
    /// The agent incarnation that made it (1, 2, ...).
    pub incarnation: u64,
    /// When (simulated time).
    pub time: Duration,
    /// Whether it may change what a power loss leaves (a write, a sync, a name change).
    pub changes_disk: bool,
}

const CHANGES_DISK: &[&str] = &[
    "write",
    "append",
    "sync_file",
    "sync_dir",
    "create_dir",
    "rename",
    "symlink",
    "remove_file",
    "remove_dir_all",
    "truncate",
    "touch",
];

/// What the armed point did in a run.
#[derive(Clone, Debug, Default)]
pub struct PointReport {
    /// Every operation of agent 1 (only when recording).
    pub ops: Vec<AgentOp>,
    /// Whether the armed operation was reached (and the crash happened).
    pub fired: bool,
    /// At a power-loss point: how many distinct crash states were found (up to the bound).
    pub states_found: usize,
    /// What the power loss left, in words.
    pub power_loss: Option<String>,
}

struct Armed {
    next: Cell<u64>,
    crash_at: Option<u64>,
    power_loss_at: Option<u64>,
    state: usize,
    states_bound: usize,
    record: bool,
    report: RefCell<PointReport>,
    power_loss_due: Cell<bool>,
}

thread_local! {
    static ARMED: RefCell<Option<Rc<Armed>>> = const { RefCell::new(None) };
}

/// Installs this run's plan (or none) on the current thread; called by the cluster
/// driver at the start of every run.
pub fn install(options: &RunOptions) {
    let wanted = options.record_agent_ops
        || options.crash_at_agent_op.is_some()
        || options.power_loss_at_agent_op.is_some();
    let armed = wanted.then(|| {
        Rc::new(Armed {
            next: Cell::new(0),
            crash_at: options.crash_at_agent_op,
            power_loss_at: options.power_loss_at_agent_op,
            state: options.power_loss_state,
            states_bound: options.power_loss_states.max(1),
            record: options.record_agent_ops,
            report: RefCell::new(PointReport::default()),
            power_loss_due: Cell::new(false),
        })
    });
    ARMED.with(|slot| *slot.borrow_mut() = armed);
}

/// Takes the report of the run that just ended on this thread and uninstalls its plan.
pub fn take_report() -> PointReport {
    ARMED.with(|slot| {
        slot.borrow_mut()
            .take()
            .map(|armed| armed.report.take())
            .unwrap_or_default()
    })
}

/// Whether a power loss struck at the armed point since the last call (the disk is
/// already cut; the driver reboots the machine); says what it left.
pub fn take_power_loss() -> Option<String> {
    let armed = ARMED.with(|slot| slot.borrow().clone())?;
    if !armed.power_loss_due.replace(false) {
        return None;
    }
    let description = armed.report.borrow().power_loss.clone();
    description
}

/// Wraps the filesystem handle of an agent incarnation (agent 1 of the machine) when a
/// plan is installed; otherwise hands it back as it is.
pub fn wrap(
    fs: Rc<dyn FileSystem>,
    disk: SimFs,
    crash_after: Rc<Cell<Option<u64>>>,
    incarnation: u64,
) -> Rc<dyn FileSystem> {
    match ARMED.with(|slot| slot.borrow().clone()) {
        Some(armed) => Rc::new(PointFs {
            inner: fs,
            disk,
            crash_after,
            incarnation,
            armed,
        }),
        None => fs,
    }
}

/// A way of choosing a crash state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Choice {
    DurableOnly,
    KeepAll,
    Seeded(u64),
}

impl Choice {
    fn apply(self, disk: &SimFs) -> crate::fs::PowerLoss {
        match self {
            Choice::DurableOnly => disk.power_loss_durable_only(),
            Choice::KeepAll => disk.power_loss_keep_all(),
            Choice::Seeded(seed) => disk.power_loss(&mut rand::rngs::StdRng::seed_from_u64(seed)),
        }
    }
}

/// The distinct crash states a power loss may leave on `disk` now, up to `bound`, in a
/// fixed order (rule CP-3): the harshest (only what is durable), the mildest (every
/// pending operation kept), then states drawn from seeds derived from the point, each
/// kept only when the tree it leaves differs from every one before.
fn crash_states(disk: &SimFs, point: u64, bound: usize) -> Vec<Choice> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let attempts = (bound * 4).max(8) as u64;
    let candidates = [Choice::DurableOnly, Choice::KeepAll].into_iter().chain(
        (0..attempts).map(|a| Choice::Seeded(derive_seed(point, &format!("power-loss-{a}")))),
    );
    for choice in candidates {
        if out.len() >= bound {
            break;
        }
        let copy = disk.fork();
        choice.apply(&copy);
        if seen.insert(format!("{:?}", copy.tree())) {
            out.push(choice);
        }
    }
    out
}

struct PointFs {
    inner: Rc<dyn FileSystem>,
    disk: SimFs,
    crash_after: Rc<Cell<Option<u64>>>,
    incarnation: u64,
    armed: Rc<Armed>,
}

impl PointFs {
    fn at(&self, kind: &'static str, path: &Path) {
        let armed = &self.armed;
        let index = armed.next.get();
        armed.next.set(index + 1);
        if armed.record {
            armed.report.borrow_mut().ops.push(AgentOp {
                index,
                kind,
                path: path.to_path_buf(),
                incarnation: self.incarnation,
                time: turmoil::sim_elapsed().unwrap_or_default(),
                changes_disk: CHANGES_DISK.contains(&kind),
            });
        }
        if armed.crash_at == Some(index) {
            // The incarnation dies at this very operation: it fails, as does every
            // later one (the process handle's death).
            self.crash_after.set(Some(0));
            armed.report.borrow_mut().fired = true;
        }
        if armed.power_loss_at == Some(index) {
            let states = crash_states(&self.disk, index, armed.states_bound);
            let mut report = armed.report.borrow_mut();
            report.states_found = states.len();
            if let Some(choice) = states.get(armed.state) {
                self.crash_after.set(Some(0));
                let before = self.disk.tree();
                let loss = choice.apply(&self.disk);
                crate::durability::power_loss(&before, &self.disk);
                report.fired = true;
                report.power_loss = Some(format!(
                    "power loss at agent filesystem operation {index} ({kind} {}), crash state {} of {} ({choice:?}: {loss:?})",
                    path.display(),
                    armed.state,
                    states.len()
                ));
                armed.power_loss_due.set(true);
            }
        }
    }
}

impl FileSystem for PointFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.at("read", path);
        self.inner.read(path)
    }
    fn write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.at("write", path);
        self.inner.write(path, data)
    }
    fn append(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.at("append", path);
        self.inner.append(path, data)
    }
    fn sync_file(&self, path: &Path) -> io::Result<()> {
        self.at("sync_file", path);
        self.inner.sync_file(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.at("sync_dir", path);
        self.inner.sync_dir(path)
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.at("create_dir", path);
        self.inner.create_dir(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.at("rename", from);
        self.inner.rename(from, to)
    }
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        self.at("symlink", link);
        self.inner.symlink(target, link)
    }
    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        self.at("read_link", path);
        self.inner.read_link(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.at("list_dir", path);
        self.inner.list_dir(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.at("remove_file", path);
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.at("remove_dir_all", path);
        self.inner.remove_dir_all(path)
    }
    fn truncate(&self, path: &Path, length: u64) -> io::Result<()> {
        self.at("truncate", path);
        self.inner.truncate(path, length)
    }
    fn exists(&self, path: &Path) -> bool {
        self.at("exists", path);
        self.inner.exists(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.at("is_dir", path);
        self.inner.is_dir(path)
    }
    fn modified(&self, path: &Path) -> io::Result<SystemTime> {
        self.at("modified", path);
        self.inner.modified(path)
    }
    fn touch(&self, path: &Path) -> io::Result<()> {
        self.at("touch", path);
        self.inner.touch(path)
    }
    fn disk_usage(&self, path: &Path) -> io::Result<f64> {
        self.at("disk_usage", path);
        self.inner.disk_usage(path)
    }
    fn lock_exclusive(&self, path: &Path, holder: &str) -> Result<Box<dyn FileLock>, LockError> {
        self.at("lock_exclusive", path);
        self.inner.lock_exclusive(path, holder)
    }
}

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
            "scenario {}: {} filesystem operations of the agent; {} runs with the agent dying at one, {} runs with a power loss at {} points; {} failed; {:.1}s\n",
            self.scenario,
            self.ops.len(),
            self.process_runs,
            self.power_loss_runs,
            self.power_loss_points,
            self.failures.len(),
            self.seconds
        ));
        out
    }
}
