//! The mechanism of systematic crash points (`crate::crash_points`, which re-exports it
//! and runs the search): a thread-local plan, installed by [`install`] at the start of a
//! run from [`RunOptions`], and a [`FileSystem`] wrapper ([`wrap`]) put around every
//! agent-1 incarnation's filesystem handle. The wrapper numbers operations over the
//! whole run (rule CP-1), and at the armed one makes the incarnation die through its
//! [`crate::seams::ProcessFs`] (the same death as an `agent_crash_at_write` fault) or
//! cuts the power on the machine's disk at once, leaving the rest of the reboot to the
//! driver ([`take_power_loss`]). Below the cluster driver, which calls it; the search
//! above it runs whole clusters (docs/design.md D62).

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use rand::SeedableRng;
use revenant::os::{FileLock, FileSystem, LockError};

use crate::fs::SimFs;
use crate::machine::RunOptions;
use crate::seams::derive_seed;

/// How long the machine stays off after a power loss at a crash point.
pub const POWER_LOSS_BOOT_AFTER: Duration = Duration::from_secs(5);

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
    /// Whether the power loss left zeroed bytes (rule CP-7).
    pub zero_filled: bool,
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
    /// Rule CP-7: every pending operation kept, and every byte no sync covers zeroed.
    KeepAllZeroed,
    /// Rule CP-7: a state drawn from the seed, with zeroes drawn from a stream of their
    /// own.
    SeededZeroed(u64),
}

impl Choice {
    fn apply(self, disk: &SimFs) -> crate::fs::PowerLoss {
        match self {
            Choice::DurableOnly => disk.power_loss_durable_only(),
            Choice::KeepAll => disk.power_loss_keep_all(),
            Choice::Seeded(seed) => disk.power_loss(&mut rand::rngs::StdRng::seed_from_u64(seed)),
            Choice::KeepAllZeroed => disk.power_loss_zero_filled_with(&mut |n| n, &mut |n| n),
            Choice::SeededZeroed(seed) => disk.power_loss_zero_filled(
                &mut rand::rngs::StdRng::seed_from_u64(seed),
                &mut rand::rngs::StdRng::seed_from_u64(derive_seed(seed, "zero-fill")),
            ),
        }
    }
}

/// How many zero-filled states (rule CP-7) a point tries at most, beyond the bound.
pub const ZERO_FILLED_STATES: usize = 2;

/// The distinct crash states a power loss may leave on `disk` now, in a fixed order
/// (rule CP-3): up to `bound` of the harshest (only what is durable), the mildest
/// (every pending operation kept), then states drawn from seeds derived from the point;
/// then (rule CP-7) up to [`ZERO_FILLED_STATES`] more with zeroed bytes, the mildest
/// with every un-synced byte zeroed, then one drawn. Each is kept only when the tree it
/// leaves differs from every one before, so the states of the first part keep their
/// indices.
fn crash_states(disk: &SimFs, point: u64, bound: usize) -> Vec<Choice> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut distinct = |choice: Choice, out: &mut Vec<Choice>| {
        let copy = disk.fork();
        choice.apply(&copy);
        if seen.insert(format!("{:?}", copy.tree())) {
            out.push(choice);
        }
    };
    let attempts = (bound * 4).max(8) as u64;
    let candidates = [Choice::DurableOnly, Choice::KeepAll].into_iter().chain(
        (0..attempts).map(|a| Choice::Seeded(derive_seed(point, &format!("power-loss-{a}")))),
    );
    for choice in candidates {
        if out.len() >= bound {
            break;
        }
        distinct(choice, &mut out);
    }
    let plain = out.len();
    let zeroed = [Choice::KeepAllZeroed]
        .into_iter()
        .chain((0..8).map(|a| Choice::SeededZeroed(derive_seed(point, &format!("zero-fill-{a}")))));
    for choice in zeroed {
        if out.len() >= plain + ZERO_FILLED_STATES {
            break;
        }
        distinct(choice, &mut out);
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
                if loss.files_zeroed > 0 {
                    revenant::coverage::hit("sim_power_loss_zero_filled");
                    report.zero_filled = true;
                }
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
