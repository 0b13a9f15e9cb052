//! The simulated seams: turmoil's clock and network, seeded randomness per process
//! incarnation, a boot id per machine, executors as simulated processes, and a
//! filesystem handle that can "kill" its process at an exact operation.
//!
//! Invariants: every value handed to the roles derives from the run's seed; no thread,
//! no `std::time::Instant`, no OS randomness.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use rand::{RngCore, SeedableRng};
use revenant::executor::{self, ExecutorSettings, TaskRunner};
use revenant::os::{
    BootId, BoxStream, Clock, Env, FileLock, FileSystem, LaunchSpec, Listener, LocalFuture,
    LockError, Network, ProcessId, Processes, Random, Signal, TaggedProcess,
};
use revenant::proto::CommandInfo;

pub use crate::seed::derive_seed;

use crate::drops::FilteredStream;
use crate::fs::SimFs;

/// The epoch every run's wall clock starts at (fixed, so traces do not depend on the
/// day the run happens).
pub const EPOCH_SECONDS: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// Seeded randomness. In a branch of `sweep --explore` the stream is reseeded once the
/// branch's moment has passed (docs/failing-runs.md F12).
pub struct SeededRandom(
    RefCell<rand::rngs::StdRng>,
    u64,
    Cell<bool>,
    /// Secrets' own stream (docs/security.md SEC14), so that making them moves no other
    /// draw.
    RefCell<rand::rngs::StdRng>,
);

impl SeededRandom {
    /// A stream for `seed`.
    pub fn new(seed: u64) -> SeededRandom {
        SeededRandom(
            RefCell::new(rand::rngs::StdRng::seed_from_u64(seed)),
            seed,
            Cell::new(false),
            RefCell::new(rand::rngs::StdRng::seed_from_u64(derive_seed(
                seed,
                "executor secrets",
            ))),
        )
    }
}

impl Random for SeededRandom {
    fn fill(&self, buffer: &mut [u8]) {
        if !self.2.get() {
            if let Some(seed) = crate::branch::branch_seed(self.1) {
                *self.0.borrow_mut() = rand::rngs::StdRng::seed_from_u64(seed);
                self.2.set(true);
            }
        }
        self.0.borrow_mut().fill_bytes(buffer);
    }
    fn fill_secret(&self, buffer: &mut [u8]) {
        self.3.borrow_mut().fill_bytes(buffer);
    }
}

/// turmoil's per-host tokio time; wall time is the fixed epoch plus simulated time, plus
/// a jump the scenario may apply.
pub struct SimClock {
    /// Added to the wall clock (a wall-clock jump).
    pub wall_offset: Rc<Cell<i64>>,
}

impl Clock for SimClock {
    fn now(&self) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }
    fn wall(&self) -> SystemTime {
        let elapsed = turmoil::sim_elapsed().unwrap_or_default();
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_SECONDS) + elapsed;
        let offset = self.wall_offset.get();
        if offset >= 0 {
            base + Duration::from_millis(offset as u64)
        } else {
            base - Duration::from_millis(offset.unsigned_abs())
        }
    }
    fn sleep(&self, duration: Duration) -> LocalFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// turmoil TCP. Listeners bind every address of the host; a connection to the host's
/// own name goes over loopback. Every connection reads through the drop filter
/// ([`crate::drops`]), which knows the hosts at both ends.
pub struct SimNet {
    /// The host this seam belongs to.
    pub host: String,
    /// The process using it, when the host runs several (an agent process: `agent1/2`),
    /// for the timeline's message log (docs/failing-runs.md F6).
    pub process: Option<String>,
    /// The executor process using it (its pid), so that its agent's end of its
    /// connection knows who it writes to (`crate::shutdown_asks`).
    pub executor_pid: Option<u32>,
}

impl SimNet {
    /// The network seen from `host`.
    pub fn on(host: &str) -> SimNet {
        SimNet {
            host: host.to_owned(),
            process: None,
            executor_pid: None,
        }
    }

    /// The network seen from `host` by executor process `pid`.
    pub fn for_executor(host: &str, pid: u32) -> SimNet {
        SimNet {
            host: host.to_owned(),
            process: None,
            executor_pid: Some(pid),
        }
    }

    /// The network seen from `host` by process `process` (its lane in a timeline).
    pub fn for_process(host: &str, process: &str) -> SimNet {
        SimNet {
            host: host.to_owned(),
            process: Some(process.to_owned()),
            executor_pid: None,
        }
    }
}

struct SimListener(turmoil::net::TcpListener, String, String, Option<String>);

impl Listener for SimListener {
    fn accept(&mut self) -> LocalFuture<'_, io::Result<(BoxStream, String)>> {
        Box::pin(async move {
            let (stream, peer) = self.0.accept().await?;
            let peer_port = peer.port();
            let peer_host = if peer.ip().is_loopback() {
                self.2.clone()
            } else {
                turmoil::reverse_lookup(peer.ip()).unwrap_or_else(|| peer.ip().to_string())
            };
            // docs/security.md SEC40: the principal the peer proved, as `principal@address`.
            let peer = match crate::hosts::principal_of_host(&peer_host) {
                Some(principal) => format!("{principal}@{peer}"),
                None => peer.to_string(),
            };
            // docs/task-lifecycle.md L36: an agent's end of a connection from its own
            // machine (an executor's, if one connected from that port).
            let asks = match self.3.as_deref() {
                Some(process) if peer_host == self.2 => {
                    crate::hosts::agent_of_host(process).map(|agent| (agent, peer_port))
                }
                _ => None,
            };
            let stream = FilteredStream::new(Box::new(stream), self.2.clone(), peer_host)
                .tapped(false, self.3.as_deref())
                .watching_asks(asks);
            Ok((Box::new(stream) as BoxStream, peer))
        })
    }
    fn local_addr(&self) -> io::Result<String> {
        Ok(self.1.clone())
    }
}

fn split_address(address: &str) -> io::Result<(String, u16)> {
    let (host, port) = address.rsplit_once(':').ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("address '{address}' has no port"),
        )
    })?;
    let port = port.parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("address '{address}' has a bad port"),
        )
    })?;
    Ok((host.to_owned(), port))
}

impl Network for SimNet {
    fn listen(&self, addr: &str) -> LocalFuture<'static, io::Result<Box<dyn Listener>>> {
        let addr = addr.to_owned();
        let host = self.host.clone();
        let process = self.process.clone();
        let executor_pid = self.executor_pid;
        Box::pin(async move {
            let (name, port) = split_address(&addr)?;
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?;
            // docs/recovery-rules.md R55: a master process listening is a new incarnation.
            if host.starts_with("master") {
                crate::master_wire::master_listening(&host);
            }
            // docs/task-lifecycle.md L36: an executor's wake endpoint (a restarted agent
            // connects to it and keeps the connection as the executor's).
            if host == crate::hosts::AGENT_HOST {
                crate::shutdown_asks::connected(listener.local_addr()?.port(), executor_pid);
            }
            // Port 0 takes any free port (an executor's wake endpoint): its address is
            // the one the network gave.
            let addr = if port == 0 {
                format!("{name}:{}", listener.local_addr()?.port())
            } else {
                addr
            };
            Ok(Box::new(SimListener(listener, addr, host, process)) as Box<dyn Listener>)
        })
    }
    fn connect(&self, addr: &str) -> LocalFuture<'static, io::Result<BoxStream>> {
        let addr = addr.to_owned();
        let local = self.host.clone();
        let process = self.process.clone();
        let executor_pid = self.executor_pid;
        Box::pin(async move {
            let (host, port) = split_address(&addr)?;
            let stream = turmoil::net::TcpStream::connect((host.clone(), port)).await?;
            // docs/task-lifecycle.md L36: which process opened the connection (a port
            // reused by another process no longer names the earlier one).
            let mut asks = None;
            if local == crate::hosts::AGENT_HOST {
                crate::shutdown_asks::connected(stream.local_addr()?.port(), executor_pid);
                // An agent's connection to an executor's wake endpoint.
                if host == crate::hosts::AGENT_HOST {
                    asks = process
                        .as_deref()
                        .and_then(crate::hosts::agent_of_host)
                        .map(|agent| (agent, port));
                }
            }
            Ok(Box::new(
                FilteredStream::new(Box::new(stream), local, host)
                    .tapped(true, process.as_deref())
                    .watching_asks(asks),
            ) as BoxStream)
        })
    }
}

/// The boot id of a simulated machine.
pub struct SimBootId(pub Rc<Cell<u64>>, pub String);

impl BootId for SimBootId {
    fn boot_id(&self) -> io::Result<String> {
        Ok(format!("{}-boot-{}", self.1, self.0.get()))
    }
}

/// The unwind payload that ends a simulated process at the filesystem operation it dies
/// at (see [`ProcessFs`]).
#[derive(Debug)]
pub struct SimulatedDeath;

/// A filesystem handle for one process incarnation (docs/simulator-reach.md rules 1
/// and 2). When armed, the process dies at an exact filesystem operation, at once: that operation never returns (the calling task
/// unwinds with [`SimulatedDeath`], which no panic hook sees) and the incarnation's task
/// is aborted, so no code of the process runs after it, even when the caller would only
/// have logged the error. The effects of the operations before it stay (the kernel
/// accepted them). Any later operation (from a task not yet dropped) fails. The
/// simulator then restarts the process. A recursive removal is one operation per unlink
/// (see [`SimFs::remove_dir_all_stepwise`]), so the death can land part-way through it.
pub struct ProcessFs {
    inner: SimFs,
    /// Operations left before the process dies; `None` when not armed.
    pub crash_after: Rc<Cell<Option<u64>>>,
    /// Set once the process died at an operation.
    pub crashed: Rc<Cell<bool>>,
    /// The incarnation's task, aborted when the process dies at an operation.
    pub task: Rc<RefCell<Option<tokio::task::AbortHandle>>>,
    /// The agent process using it and its boot id file, when it is an agent's: its disk
    /// checks and its boot id put in place are recorded (docs/design.md D88).
    owner: Option<(u32, PathBuf)>,
}

impl ProcessFs {
    /// A handle on `inner`; `task` is the incarnation's task (set once it is spawned).
    pub fn new(
        inner: SimFs,
        crash_after: Rc<Cell<Option<u64>>>,
        crashed: Rc<Cell<bool>>,
        task: Rc<RefCell<Option<tokio::task::AbortHandle>>>,
    ) -> ProcessFs {
        ProcessFs {
            inner,
            crash_after,
            crashed,
            task,
            owner: None,
        }
    }

    /// The handle of agent process `agent` working in `work_dir`: its disk checks and
    /// the boot id that completes its recovery are recorded (docs/design.md D88).
    pub fn of_agent(mut self, agent: u32, work_dir: &Path) -> ProcessFs {
        let boot_id = revenant::checkpoint::paths::MetaPaths::for_work_dir(work_dir).boot_id();
        self.owner = Some((agent, boot_id));
        self
    }

    fn step(&self) -> io::Result<()> {
        if self.crashed.get() {
            return Err(io::Error::other("process crashed (simulated)"));
        }
        if let Some(left) = self.crash_after.get() {
            if left == 0 {
                self.crashed.set(true);
                self.crash_after.set(None);
                if let Some(task) = self.task.borrow().as_ref() {
                    task.abort();
                }
                // The operation never returns: the caller's task ends here.
                std::panic::resume_unwind(Box::new(SimulatedDeath));
            }
            self.crash_after.set(Some(left - 1));
        }
        Ok(())
    }
}

impl FileSystem for ProcessFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.step()?;
        self.inner.read(path)
    }
    fn write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.step()?;
        self.inner.write(path, data)
    }
    fn append(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.step()?;
        self.inner.append(path, data)
    }
    fn sync_file(&self, path: &Path) -> io::Result<()> {
        self.step()?;
        self.inner.sync_file(path)
    }
    /// With the disk's group sync latency set ([`SimFs::set_group_sync_latency`]), the
    /// group's files are synced that much simulated time later, each as one counted
    /// operation (a death armed at one lands there); until then a power loss loses
    /// them, and a death of the process drops the sync with its task. Zero: at once.
    fn start_sync_files(
        &self,
        paths: Vec<PathBuf>,
    ) -> LocalFuture<'static, Result<(), (usize, io::Error)>> {
        let latency = self.inner.group_sync_latency();
        if latency.is_zero() {
            let result = self.sync_files(&paths);
            return Box::pin(std::future::ready(result));
        }
        // docs/recovery-latency.md P67: the group's syncs are asked for now.
        let requests: Vec<_> = paths
            .iter()
            .map(|path| self.inner.sync_requested(path))
            .collect();
        let later = ProcessFs {
            inner: self.inner.clone(),
            crash_after: self.crash_after.clone(),
            crashed: self.crashed.clone(),
            task: self.task.clone(),
            owner: self.owner.clone(),
        };
        Box::pin(async move {
            tokio::time::sleep(latency).await;
            // As `sync_files`: each file's `sync_file`, in order, up to the first failure.
            for (index, (path, request)) in paths.iter().zip(&requests).enumerate() {
                later
                    .step()
                    .and_then(|()| later.inner.sync_file_requested(path, request))
                    .map_err(|error| (index, error))?;
            }
            Ok(())
        })
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.step()?;
        self.inner.sync_dir(path)
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.step()?;
        self.inner.create_dir(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.step()?;
        self.inner.rename(from, to)?;
        // docs/design.md D88: the boot id is put in place once, as recovery completes.
        if let Some((agent, boot_id)) = &self.owner {
            if to == boot_id {
                crate::history::paced(*agent, crate::history::Pace::RecoveryComplete);
            }
        }
        Ok(())
    }
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        self.step()?;
        self.inner.symlink(target, link)
    }
    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        self.step()?;
        self.inner.read_link(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.step()?;
        self.inner.list_dir(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.step()?;
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.step()?;
        crate::gc_watch::removing(&self.inner, path);
        self.inner
            .remove_dir_all_stepwise(path, &mut || self.step())
    }
    fn truncate(&self, path: &Path, length: u64) -> io::Result<()> {
        self.step()?;
        self.inner.truncate(path, length)
    }
    fn exists(&self, path: &Path) -> bool {
        self.step().is_ok() && self.inner.exists(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.step().is_ok() && self.inner.is_dir(path)
    }
    fn modified(&self, path: &Path) -> io::Result<SystemTime> {
        self.step()?;
        self.inner.modified(path)
    }
    fn touch(&self, path: &Path) -> io::Result<()> {
        self.step()?;
        self.inner.touch(path)
    }
    fn disk_usage(&self, path: &Path) -> io::Result<f64> {
        self.step()?;
        // docs/design.md D88: the disk check, asked of the disk whatever it answers.
        if let Some((agent, _)) = &self.owner {
            crate::history::paced(*agent, crate::history::Pace::DiskCheck);
        }
        self.inner.disk_usage(path)
    }
    fn lock_exclusive(&self, path: &Path, holder: &str) -> Result<Box<dyn FileLock>, LockError> {
        self.step().map_err(|source| LockError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.inner.lock_exclusive(path, holder)
    }
}

/// Runs task commands in simulated time: `sleep N` sleeps N seconds, `exit C` exits with
/// C, and `sleep N; exit C` does both. Anything else exits 0 at once.
pub struct SimTaskRunner;

impl TaskRunner for SimTaskRunner {
    fn run(&self, command: &CommandInfo) -> LocalFuture<'static, i32> {
        let mut sleep = Duration::ZERO;
        let mut code = 0;
        for part in command.value.split(';') {
            // Only a part that starts with `sleep` or `exit` can match below: the others
            // (a large task's padding of megabytes, docs/simulator-reach.md) are not
            // split into words (docs/recovery-latency.md P35).
            let start = part.trim_start();
            if !(start.starts_with("sleep") || start.starts_with("exit")) {
                continue;
            }
            let words: Vec<&str> = part.split_whitespace().collect();
            match words.as_slice() {
                ["sleep", seconds] => {
                    sleep += Duration::from_secs_f64(seconds.parse().unwrap_or(0.0))
                }
                ["exit", value] => code = value.parse().unwrap_or(1),
                _ => {}
            }
        }
        Box::pin(async move {
            tokio::time::sleep(sleep).await;
            code
        })
    }
}

/// One simulated process on a machine.
pub struct SimProcess {
    /// Its identity.
    pub id: ProcessId,
    /// The running future.
    pub handle: tokio::task::JoinHandle<()>,
    /// What it was launched as.
    pub executor_id: String,
    /// The agent process (1, 2, ...) of the machine that launched it.
    pub owner: u32,
    /// Its `REVENANT_AGENT_TAG`, framework id and container id, as its environment
    /// holds them (what `Processes::tagged` reads).
    pub tag: Option<String>,
    /// Its framework id.
    pub framework: String,
    /// The run it was launched for.
    pub container: String,
    /// Whether it hangs before registering (docs/lifecycle-rules.md rule 19).
    pub hung: bool,
    /// Whether it has finished (exited, killed or crashed).
    pub exited: Rc<Cell<bool>>,
}

/// The process table of one machine; cleared on reboot.
#[derive(Default)]
pub struct ProcessTable {
    /// Live and dead processes by pid.
    pub processes: BTreeMap<u32, SimProcess>,
    /// The next pid.
    pub next_pid: u32,
    /// Start-time counter (monotonic over the machine's life).
    pub next_start: u64,
}

/// Death at a process operation (docs/simulator-reach.md rule 5): the agent process dies at its N-th process operation
/// (launch, signal) from when it is armed, after the operation took effect and before
/// it returns, in the way [`ProcessFs`] dies at a filesystem operation.
#[derive(Clone, Default)]
pub struct ProcessDeath {
    /// Operations left before the process dies; `None` when not armed.
    pub crash_after: Rc<Cell<Option<u64>>>,
    /// Set once the process died (shared with its [`ProcessFs`]).
    pub crashed: Rc<Cell<bool>>,
    /// The incarnation's task, aborted when it dies.
    pub task: Rc<RefCell<Option<tokio::task::AbortHandle>>>,
}

impl ProcessDeath {
    /// Counts one operation, and ends the calling process there if it is the one.
    fn step(&self) {
        let Some(left) = self.crash_after.get() else {
            return;
        };
        if left > 0 {
            self.crash_after.set(Some(left - 1));
            return;
        }
        self.crash_after.set(None);
        self.crashed.set(true);
        if let Some(task) = self.task.borrow().as_ref() {
            task.abort();
        }
        std::panic::resume_unwind(Box::new(SimulatedDeath));
    }
}

thread_local! {
    /// The run's seed, the share of executor launches that hang before registering
    /// (swarm knob `hanging_executor_fraction`), and the launches drawn so far.
    static HANG: Cell<(u64, f64, u64)> = const { Cell::new((0, 0.0, 0)) };
}

/// Starts a run in which each executor launch hangs before registering with probability
/// `fraction` (0: none), drawn from a stream of its own for each launch
/// (`derive_seed(seed, "swarm-hang-<n>")`, n counting launches over the run), so that no
/// other draw moves.
pub fn hang_executors(seed: u64, fraction: f64) {
    HANG.with(|hang| hang.set((seed, fraction, 0)));
}

thread_local! {
    /// The run's test-only breakages that concern executors.
    static EXECUTOR_BREAKAGE: Cell<revenant::breakage::Breakage> =
        Cell::new(revenant::breakage::Breakage::default());
}

/// Starts a run whose executors break the rules `breakage` names (those that concern
/// executors: `executor_ignores_recovery_timeout`, `executor_gives_up_early`,
/// `executor_panics`). The simulated process table applies them as it launches an
/// executor, so no channel from the agent to its executors carries a test switch
/// (docs/design.md D12).
pub fn break_executors(breakage: revenant::breakage::Breakage) {
    EXECUTOR_BREAKAGE.with(|cell| cell.set(breakage));
}

/// Whether the next executor launch hangs (see [`hang_executors`]).
fn next_launch_hangs() -> bool {
    HANG.with(|hang| {
        let (seed, fraction, launches) = hang.get();
        if fraction <= 0.0 {
            return false;
        }
        hang.set((seed, fraction, launches + 1));
        let mut rng =
            rand::rngs::StdRng::seed_from_u64(derive_seed(seed, &format!("swarm-hang-{launches}")));
        rand::Rng::gen_bool(&mut rng, fraction.min(1.0))
    })
}

/// Executors as simulated processes on the agent's machine: `launch` spawns the real
/// executor code as a task on the machine's runtime, detached from the agent, so it
/// survives an agent crash and dies with the machine.
pub struct SimProcesses {
    /// The machine's process table.
    pub table: Rc<RefCell<ProcessTable>>,
    /// Builds the environment of a new executor process.
    pub env_for: Rc<dyn Fn(u32) -> Env>,
    /// The agent process (1, 2, ...) that launches through this handle (0: none).
    pub owner: u32,
    /// Death at a process operation of the process using this handle, if it can die so.
    pub death: Option<ProcessDeath>,
}

impl Processes for SimProcesses {
    fn launch(&self, spec: &LaunchSpec) -> io::Result<ProcessId> {
        let mut settings = ExecutorSettings::from_environment(&spec.environment)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        // The run's test-only executor breakages (see [`break_executors`]).
        let breakage = EXECUTOR_BREAKAGE.with(Cell::get);
        settings.ignore_recovery_timeout = breakage.executor_ignores_recovery_timeout;
        if breakage.executor_gives_up_early {
            settings.recovery_timeout /= 10;
        }
        let panics = breakage.executor_panics;
        let (pid, start_time) = {
            let mut table = self.table.borrow_mut();
            table.next_pid += 1;
            table.next_start += 1;
            (table.next_pid + 1000, table.next_start)
        };
        let env = (self.env_for)(pid);
        let exited = Rc::new(Cell::new(false));
        let done = exited.clone();
        let executor_id = settings.executor_id.clone();
        let container = settings.container_id.clone();
        let span = tracing::Span::current();
        let hangs = next_launch_hangs();
        let handle = tokio::task::spawn_local(tracing::Instrument::instrument(
            async move {
                if hangs {
                    // Swarm knob: the process hangs before it registers, until killed.
                    tracing::info!("executor process hangs before registering");
                    std::future::pending::<()>().await;
                }
                let exit = executor::run(env, settings, Rc::new(SimTaskRunner)).await;
                tracing::info!(?exit, "executor process exited");
                done.set(true);
                let how = if exit == executor::ExecutorExit::RecoveryTimeout {
                    crate::history::ProcessEnd::GaveUp
                } else {
                    crate::history::ProcessEnd::Exited
                };
                crate::history::process_ended(pid, how);
                assert!(!panics, "breakage: the executor panics as it ends");
            },
            span,
        ));
        let id = ProcessId { pid, start_time };
        crate::history::process_started(pid, &executor_id, &container, self.owner, hangs);
        let variable = |name: &str| spec.environment.get(name).cloned();
        self.table.borrow_mut().processes.insert(
            pid,
            SimProcess {
                id: id.clone(),
                handle,
                executor_id,
                owner: self.owner,
                tag: variable(revenant::os::AGENT_TAG_VARIABLE),
                framework: variable(revenant::os::FRAMEWORK_VARIABLE).unwrap_or_default(),
                container,
                hung: hangs,
                exited,
            },
        );
        if let Some(death) = &self.death {
            death.step();
        }
        Ok(id)
    }

    /// The live processes of the machine's table whose environment held the tag.
    fn tagged(&self, tag: &str) -> io::Result<Vec<TaggedProcess>> {
        Ok(self
            .table
            .borrow()
            .processes
            .values()
            .filter(|p| p.tag.as_deref() == Some(tag))
            .filter(|p| !p.exited.get() && !p.handle.is_finished())
            .map(|p| TaggedProcess {
                process: p.id.clone(),
                framework: p.framework.clone(),
                executor: p.executor_id.clone(),
                container: p.container.clone(),
            })
            .collect())
    }

    fn is_alive(&self, process: &ProcessId) -> bool {
        self.table
            .borrow()
            .processes
            .get(&process.pid)
            .is_some_and(|p| {
                p.id.start_time == process.start_time && !p.exited.get() && !p.handle.is_finished()
            })
    }

    fn signal(&self, process: &ProcessId, _signal: Signal) -> io::Result<()> {
        {
            let table = self.table.borrow();
            if let Some(entry) = table.processes.get(&process.pid) {
                if entry.id.start_time == process.start_time {
                    if !entry.exited.get() && !entry.handle.is_finished() {
                        // docs/task-lifecycle.md L36: the process table saw the agent kill it.
                        crate::history::agent_killed(self.owner, process.pid);
                    }
                    entry.handle.abort();
                    entry.exited.set(true);
                    crate::history::process_ended(process.pid, crate::history::ProcessEnd::Killed);
                }
            }
        }
        if let Some(death) = &self.death {
            death.step();
        }
        Ok(())
    }
}

/// Keeps the memory a run frees for the next allocations of the process instead of
/// handing it back to the kernel (docs/recovery-latency.md P34): a swarm run copies
/// frames of up to 4 MiB (tasks near the frame maximum) through the network filter,
/// the codec and the simulated disk, and glibc's defaults map each such buffer afresh
/// and unmap it when freed, so that every copy paid its page faults again. Process-wide
/// and idempotent; allocation addresses never reach a trace (D8: ordered maps only).
pub fn keep_freed_memory() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only sets allocator parameters; these are within glibc's
        // documented bounds (the mmap threshold at most 32 MiB on 64-bit targets).
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
        }
    });
}
