//! The IO seams: every effect the agent, master and executor have on the world goes
//! through one of these traits. The binaries use the real implementations in [`real`];
//! the simulator (`sim/`) supplies simulated ones with crash semantics.
//!
//! Invariant: no code outside `os::real` and the simulator touches `std::fs`,
//! `tokio::net`, `SystemTime::now`, `Instant::now` or OS randomness (clippy's
//! `disallowed-methods` in `clippy.toml` enforces this for the library).
//!
//! Futures returned by the async seams are not `Send`: every role runs on a
//! current-thread runtime (turmoil runs hosts that way too), which keeps scheduling
//! deterministic under simulation.

pub mod conformance;
pub mod real;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncRead, AsyncWrite};

/// A boxed, non-`Send` future, as the async seams return.
pub type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Time, monotonic and wall.
///
/// Contract: `now` never goes backwards; `wall` may jump (NTP, an operator, the
/// simulator); `sleep` completes no earlier than `now() + duration`.
pub trait Clock {
    /// Monotonic time. Under turmoil, tokio's clock is the simulated one.
    fn now(&self) -> tokio::time::Instant;
    /// Wall-clock time, for timestamps in status updates and file ages.
    fn wall(&self) -> SystemTime;
    /// Completes after `duration` of monotonic time.
    fn sleep(&self, duration: Duration) -> LocalFuture<'static, ()>;
}

/// The filesystem, with an explicit durability contract.
///
/// # Durability contract
///
/// - A `write` or `append` is not durable until the file is synced with `sync_file`.
/// - A new name (`create_dir`, `write` of a new file, `rename`, `symlink`, `remove_*`)
///   is not durable until its parent directory is synced with `sync_dir`.
/// - A crash of the calling process loses nothing the call accepted (the kernel has
///   it). A reboot (power loss) loses everything not yet durable, and may leave the last
///   un-synced append torn at any byte.
/// - `rename` over an existing name is atomic: after any crash the name refers to the
///   old file or the new one, never to a mix. The new file's content is only whole if it
///   was synced before the rename. A rename across two directories needs both synced;
///   until then a crash may leave the file under either name, both, or neither (the
///   agent renames only within one directory).
/// - `write` over an existing file is a truncate and an append: un-synced, a crash may
///   leave it empty or torn, not only without the new content.
/// - A failed `sync_file` leaves the data's durability unknown (Linux may drop the dirty
///   pages): callers treat it as fatal rather than retrying.
/// - [`FileSystem::sync_files`] (group commit) makes several files durable as a
///   `sync_file` of each would, in no particular order and possibly concurrently: a
///   crash before it returns may leave any subset of them durable. Only when it returns
///   `Ok` are all of them durable. A failure names the first path (in the order given)
///   that failed; the durability of every path is then unknown, and callers treat it as
///   fatal, as for `sync_file`.
/// - `remove_dir_all` removes symlinks, never following them; a crash part-way leaves a
///   partly removed tree, which recovery tolerates.
/// - [`FileSystem::replace_atomically`] (temp file, sync, rename, sync directory) is the
///   one way to replace a checkpoint file.
/// - `list_dir` returns names in byte order, so iteration is deterministic.
///
/// Errors are `io::Error`s; callers add the path and the operation to them.
pub trait FileSystem {
    /// Reads a whole file, following symlinks.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Creates or truncates `path` and writes `data` to it. Not durable until synced.
    fn write(&self, path: &Path, data: &[u8]) -> io::Result<()>;
    /// Appends `data` to `path`, creating it if missing. Not durable until synced.
    fn append(&self, path: &Path, data: &[u8]) -> io::Result<()>;
    /// Appends `data` to the file now under `path` if there is one (`Ok(true)`); when
    /// there is none, writes nothing and returns `Ok(false)`. What `exists` then `append`
    /// do, and the default is exactly that (the simulated disk keeps it, so its
    /// operations are unchanged); the real filesystem looks at the path once for both
    /// (docs/recovery-latency.md P56).
    fn append_existing(&self, path: &Path, data: &[u8]) -> io::Result<bool> {
        if !self.exists(path) {
            return Ok(false);
        }
        self.append(path, data).map(|()| true)
    }
    /// Makes the data of `path` durable (fsync).
    fn sync_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the data of every file in `paths` durable, as `sync_file` on each would (see
    /// the durability contract: any order, possibly concurrently). On failure returns the
    /// index in `paths` of the first path that failed, with its error. The default syncs
    /// the files one after another, stopping at the first failure.
    fn sync_files(&self, paths: &[PathBuf]) -> Result<(), (usize, io::Error)> {
        for (index, path) in paths.iter().enumerate() {
            self.sync_file(path).map_err(|error| (index, error))?;
        }
        Ok(())
    }
    /// Starts [`FileSystem::sync_files`] on `paths` and returns at once; the future
    /// resolves with what `sync_files` would have returned, once every file is durable
    /// (group commit pipelined, docs/recovery-latency.md P11). Until it resolved `Ok`,
    /// none of the files may be taken for durable; dropping it leaves them as a crash
    /// during `sync_files` would. The default syncs at once and returns a ready future.
    fn start_sync_files(
        &self,
        paths: Vec<PathBuf>,
    ) -> LocalFuture<'static, Result<(), (usize, io::Error)>> {
        let result = self.sync_files(&paths);
        Box::pin(std::future::ready(result))
    }
    /// Makes the names in directory `path` durable (fsync of the directory).
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Makes the names in every directory of `paths` durable, as `sync_dir` on each would
    /// (any order, possibly concurrently; a failure as for
    /// [`FileSystem::sync_files`]). The default syncs them one after another.
    fn sync_dirs(&self, paths: &[PathBuf]) -> Result<(), (usize, io::Error)> {
        for (index, path) in paths.iter().enumerate() {
            self.sync_dir(path).map_err(|error| (index, error))?;
        }
        Ok(())
    }
    /// Makes durable every file of `files` (as [`FileSystem::sync_files`]) and every
    /// directory of `dirs` (as [`FileSystem::sync_dirs`]), in any order among them, and
    /// runs `meanwhile` on the calling thread while they sync (recovery's syncs and its
    /// scan of the process table at once, docs/recovery-latency.md P47). `meanwhile`
    /// runs exactly once, whether the syncs succeed or not. A failure's index counts
    /// `files` first, then `dirs` (`files.len() + i` for `dirs[i]`). The default syncs
    /// the files, then the directories, then runs `meanwhile`.
    fn sync_all_meanwhile(
        &self,
        files: &[PathBuf],
        dirs: &[PathBuf],
        meanwhile: &mut dyn FnMut(),
    ) -> Result<(), (usize, io::Error)> {
        let result = self.sync_files(files).and_then(|()| {
            self.sync_dirs(dirs)
                .map_err(|(index, error)| (files.len() + index, error))
        });
        meanwhile();
        result
    }
    /// Creates one directory; its parent must exist. `AlreadyExists` if it does.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// Renames `from` to `to`, atomically replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Creates a symlink at `link` pointing at `target`.
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    /// Reads the target of the symlink `path`.
    fn read_link(&self, path: &Path) -> io::Result<PathBuf>;
    /// Names in directory `path`, sorted by bytes.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Removes a file or a symlink.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything below it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Cuts `path` to `length` bytes. Not durable until synced.
    fn truncate(&self, path: &Path, length: u64) -> io::Result<()>;
    /// Whether `path` exists, following symlinks (a dangling link does not exist).
    fn exists(&self, path: &Path) -> bool;
    /// Whether `path` is a directory, following symlinks.
    fn is_dir(&self, path: &Path) -> bool;
    /// The last modification time of `path`.
    fn modified(&self, path: &Path) -> io::Result<SystemTime>;
    /// Sets the modification time of `path` to now (the GC measures age from it).
    fn touch(&self, path: &Path) -> io::Result<()>;
    /// The fraction (0.0 to 1.0) of the filesystem holding `path` that is in use.
    fn disk_usage(&self, path: &Path) -> io::Result<f64>;
    /// Takes an exclusive lock on `path` (created if missing) for as long as the returned
    /// guard lives, recording `holder` in it. Fails with [`LockError::Held`] naming the
    /// current holder when another process has it.
    fn lock_exclusive(&self, path: &Path, holder: &str) -> Result<Box<dyn FileLock>, LockError>;

    /// Creates `path` and every missing ancestor, syncing each parent so that the new
    /// names are durable.
    fn create_dir_all_durably(&self, path: &Path) -> io::Result<()> {
        if self.is_dir(path) {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                self.create_dir_all_durably(parent)?;
            }
        }
        match self.create_dir(path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
            Err(error) => return Err(error),
        }
        match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => self.sync_dir(parent),
            _ => Ok(()),
        }
    }

    /// Replaces `path` with `data` atomically and durably: write a temp file beside it,
    /// sync it, rename it over `path`, sync the directory. After a crash at any point,
    /// `path` holds the old content or the new, never a mix.
    fn replace_atomically(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let temp = temp_path_for(path);
        self.write(&temp, data)?;
        self.sync_file(&temp)?;
        self.rename(&temp, path)?;
        match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => self.sync_dir(parent),
            _ => Ok(()),
        }
    }
}

/// The temp file that [`FileSystem::replace_atomically`] writes for `path`: a hidden name
/// in the same directory, so the rename never crosses filesystems.
pub fn temp_path_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// A held lock; dropping it releases the lock.
pub trait FileLock {}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("'{path}' is locked by another process ({holder})")]
    Held {
        /// The lock file.
        path: PathBuf,
        /// What the holder recorded about itself.
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("failed to lock '{path}': {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// A bidirectional byte stream (a TCP connection).
pub trait Stream: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Stream for T {}

/// A boxed stream, as the network seam hands out.
pub type BoxStream = Box<dyn Stream>;

/// Accepts connections.
pub trait Listener {
    /// Waits for the next connection; returns it and the peer's address.
    fn accept(&mut self) -> LocalFuture<'_, io::Result<(BoxStream, String)>>;
    /// The address this listener is bound to.
    fn local_addr(&self) -> io::Result<String>;
}

/// The network.
///
/// Contract: addresses are `host:port` strings; a dropped connection shows as EOF or an
/// error on the stream; nothing here has a deadline of its own, so every caller wraps
/// calls in one (the simulated network does not retransmit).
pub trait Network {
    /// Binds a listener.
    fn listen(&self, addr: &str) -> LocalFuture<'static, io::Result<Box<dyn Listener>>>;
    /// Opens a connection.
    fn connect(&self, addr: &str) -> LocalFuture<'static, io::Result<BoxStream>>;
}

/// How a process is identified: a pid alone can be reused after the process exits, so a
/// process is its pid together with its start time (and, in checkpoints, the boot id).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProcessId {
    /// The OS process id.
    pub pid: u32,
    /// When the process started, in clock ticks since boot (`/proc/<pid>/stat` field 22),
    /// or a simulator-assigned number.
    pub start_time: u64,
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} (start {})", self.pid, self.start_time)
    }
}

/// What to launch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LaunchSpec {
    /// The program to run.
    pub program: String,
    /// Its arguments.
    pub arguments: Vec<String>,
    /// Extra environment variables.
    pub environment: BTreeMap<String, String>,
    /// The working directory (created if missing).
    pub working_dir: PathBuf,
}

/// Signals the agent sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Ask to stop (SIGTERM).
    Terminate,
    /// Stop now (SIGKILL).
    Kill,
}

/// The environment variable that tags every executor process with the agent that
/// launched it (its work directory), so that a restarted agent finds the executors no
/// checkpoint names (docs/lifecycle-rules.md rule 20). Inherited by the executor's tasks.
pub const AGENT_TAG_VARIABLE: &str = "REVENANT_AGENT_TAG";
/// The environment variable naming the run (container id) an executor was launched for.
pub const CONTAINER_VARIABLE: &str = "REVENANT_CONTAINER_ID";
/// The environment variable naming the framework of an executor.
pub const FRAMEWORK_VARIABLE: &str = "REVENANT_FRAMEWORK_ID";
/// The environment variable naming the executor.
pub const EXECUTOR_VARIABLE: &str = "REVENANT_EXECUTOR_ID";

/// A live process found by [`Processes::tagged`]: its identity and the run its
/// environment names (empty strings where a variable is missing).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TaggedProcess {
    /// The process.
    pub process: ProcessId,
    /// `REVENANT_FRAMEWORK_ID`.
    pub framework: String,
    /// `REVENANT_EXECUTOR_ID`.
    pub executor: String,
    /// `REVENANT_CONTAINER_ID`.
    pub container: String,
}

/// Processes on this machine.
///
/// Contract: a launched process runs in its own session and survives the death of the
/// launcher; `is_alive` is true only for a live process whose pid *and* start time match
/// (a reused pid is not alive); a reboot kills every process. A process launched with
/// `REVENANT_AGENT_TAG=<tag>` in its environment is listed by `tagged(tag)` for as long
/// as it lives (and so are the processes it starts that inherit the variable), whether
/// or not the launcher that started it still exists.
pub trait Processes {
    /// Starts a process.
    fn launch(&self, spec: &LaunchSpec) -> io::Result<ProcessId>;
    /// Every live process whose environment holds `REVENANT_AGENT_TAG=<tag>`, in pid
    /// order. An error means the listing itself failed (not that none was found).
    fn tagged(&self, tag: &str) -> io::Result<Vec<TaggedProcess>>;
    /// Whether this very process is still running.
    fn is_alive(&self, process: &ProcessId) -> bool;
    /// Sends a signal to the process and its process group; a process that is gone is
    /// not an error.
    fn signal(&self, process: &ProcessId, signal: Signal) -> io::Result<()>;
    /// Hands the calling process's freed heap memory back to the operating system (the
    /// agent calls it once recovery has dropped the recovered tree, which the allocator
    /// would otherwise keep resident). The default does nothing.
    fn release_free_memory(&self) {}
}

/// The identity of the current boot of the machine; changes on every reboot.
pub trait BootId {
    /// The boot id, trimmed.
    fn boot_id(&self) -> io::Result<String>;
}

/// Randomness: ids, uuids and back-off jitter.
///
/// Contract: in simulation every value derives from the run's seed.
pub trait Random {
    /// Fills `buffer` with random bytes.
    fn fill(&self, buffer: &mut [u8]);

    /// A random `u64`.
    fn next_u64(&self) -> u64 {
        let mut bytes = [0u8; 8];
        self.fill(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    /// A uniformly random duration in `[0, max]`.
    fn duration_up_to(&self, max: Duration) -> Duration {
        let nanos = max.as_nanos().min(u128::from(u64::MAX)) as u64;
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.next_u64() % (nanos + 1))
    }

    /// Fills `buffer` with random bytes for a secret (docs/security.md SEC14). The real
    /// seam draws them from the OS like any others; the simulator draws them from a
    /// stream of their own, so that making secrets moves no other random draw.
    fn fill_secret(&self, buffer: &mut [u8]) {
        self.fill(buffer)
    }

    /// A random update uuid.
    fn uuid(&self) -> crate::ids::Uuid {
        let mut bytes = [0u8; 16];
        self.fill(&mut bytes);
        crate::ids::Uuid(bytes)
    }
}

/// Everything a role needs from the world, bundled. Cloning is cheap.
#[derive(Clone)]
pub struct Env {
    /// Time.
    pub clock: Rc<dyn Clock>,
    /// The filesystem.
    pub fs: Rc<dyn FileSystem>,
    /// The network.
    pub net: Rc<dyn Network>,
    /// Processes.
    pub processes: Rc<dyn Processes>,
    /// The boot id.
    pub boot: Rc<dyn BootId>,
    /// Randomness.
    pub random: Rc<dyn Random>,
}

impl Env {
    /// Wall-clock seconds since the UNIX epoch, for timestamps in status updates.
    pub fn wall_seconds(&self) -> f64 {
        self.clock
            .wall()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
    }

    /// The real world: std fs with fsync, tokio TCP, OS processes, the system clock,
    /// `/proc/sys/kernel/random/boot_id` and OS entropy.
    pub fn real() -> Env {
        Env {
            clock: Rc::new(real::SystemClock),
            fs: Rc::new(real::RealFs::default()),
            net: Rc::new(real::TcpNetwork),
            processes: Rc::new(real::OsProcesses::default()),
            boot: Rc::new(real::ProcBootId),
            random: Rc::new(real::OsRandom),
        }
    }
}
