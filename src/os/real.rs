//! The real implementations of the seams: std fs with fsync and directory fsync, tokio
//! TCP, OS processes in their own session, the system clock, the kernel's boot id and OS
//! entropy. The only module of the library allowed to touch the operating system.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{
    BootId, BoxStream, Clock, FileLock, FileSystem, Listener, LocalFuture, LockError, Network,
    Random,
};

/// tokio's clock (simulated under turmoil) and the system wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
    fn sleep(&self, duration: Duration) -> LocalFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// How many append handles [`RealFs`] keeps open at most.
const APPEND_HANDLES_MAX: usize = 512;

/// The most threads [`RealFs::sync_files`] syncs with at once.
pub const SYNC_THREADS_MAX: usize = 16;

/// How [`RealFs`] makes a group of files durable ([`FileSystem::sync_files`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GroupSync {
    /// One `fdatasync` per file, up to [`SYNC_THREADS_MAX`] at a time on a pool of threads
    /// started with the first group, so that ext4 folds the concurrent syncs into a few
    /// journal commits. The default.
    #[default]
    Parallel,
    /// One `fdatasync` per file, one after another (what the agent did before group
    /// commit; for comparison).
    Sequential,
    /// One `syncfs` per filesystem holding the files (for comparison only: see
    /// [`RealFs::sync_files`] for why it is not the default).
    Syncfs,
}

/// std fs with real fsync. Append handles are cached so that a durable append costs a
/// `stat`, a `write` and an `fsync`: the `stat` checks that the path still names the
/// file the handle has open (a `latest` link repointed, a directory removed and made
/// again), so an append never lands in an unlinked file. The store's append to a log
/// takes that one `stat` for its existence check too ([`FileSystem::append_existing`],
/// docs/recovery-latency.md P56), and a group's sync does not look at the path again
/// but fails if the handle's file lost its name (P57).
#[derive(Default)]
pub struct RealFs {
    append_handles: RefCell<BTreeMap<PathBuf, AppendHandle>>,
    group_sync: GroupSync,
    /// The threads that sync a group in parallel, started on the first group.
    pool: std::cell::OnceCell<SyncPool>,
}

/// A cached append handle, with the device and inode it was opened on (shared with the
/// sync threads while a group syncs).
type AppendHandle = (std::sync::Arc<File>, u64, u64);

/// A file to sync: a cached append handle (`fdatasync`: its appends are what matters),
/// one opened for the sync (`fsync`), or a path the worker opens itself and syncs
/// (`fsync`; recovery's directories, docs/recovery-latency.md P47: their thousands of
/// `open`s go to the workers too, not to the calling thread).
enum SyncTarget {
    Cached(std::sync::Arc<File>),
    Opened(std::sync::Arc<File>),
    Path(PathBuf),
}

impl SyncTarget {
    fn sync(&self) -> io::Result<()> {
        match self {
            SyncTarget::Cached(file) => {
                file.sync_data()?;
                still_linked(file)
            }
            SyncTarget::Opened(file) => file.sync_all(),
            SyncTarget::Path(path) => File::open(path)?.sync_all(),
        }
    }
}

/// docs/recovery-latency.md P57: a group syncs the handle its appends wrote through
/// without looking at the path again; a file that has no name left (removed, or renamed
/// over, since) fails the sync with `NotFound`, as a missing file does, so the records in
/// it are never taken for durable checkpoints.
fn still_linked(file: &File) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if file.metadata()?.nlink() == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the file was removed or replaced since it was appended to",
        ));
    }
    Ok(())
}

/// One sync for a [`SyncPool`] worker: the target's index in its group, and where the
/// result goes.
struct SyncJob {
    index: usize,
    target: SyncTarget,
    done: Box<dyn FnOnce(usize, io::Result<()>) + Send>,
}

/// [`SYNC_THREADS_MAX`] threads that live as long as their [`RealFs`] and sync whatever
/// a group hands them: starting threads for every group cost more than the syncs on a
/// fast disk (a `clone3`, a stack `mmap` and a join each).
struct SyncPool {
    jobs: std::sync::mpsc::Sender<SyncJob>,
}

impl SyncPool {
    fn start() -> SyncPool {
        let (jobs, receiver) = std::sync::mpsc::channel::<SyncJob>();
        let receiver = std::sync::Arc::new(std::sync::Mutex::new(receiver));
        for index in 0..SYNC_THREADS_MAX {
            let receiver = receiver.clone();
            // A worker ends when the pool's sender is dropped (its RealFs is).
            let _ = std::thread::Builder::new()
                .name(format!("revenant-sync-{index}"))
                .spawn(move || loop {
                    let job = {
                        let receiver = receiver
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner());
                        receiver.recv()
                    };
                    let Ok(job) = job else {
                        return;
                    };
                    (job.done)(job.index, job.target.sync());
                });
        }
        SyncPool { jobs }
    }

    /// Hands every target of a group to the workers; `done` runs once, with the
    /// failures, when the last target's sync returned (on the worker that synced it,
    /// or here), so that the group's owner is woken once, not once per file. A target
    /// no worker could take is synced here. When a worker ends without answering,
    /// `done` is dropped uncalled.
    fn hand_out(
        &self,
        targets: Vec<SyncTarget>,
        done: impl FnOnce(Vec<(usize, io::Error)>) + Send + 'static,
    ) {
        struct Group {
            remaining: usize,
            failures: Vec<(usize, io::Error)>,
            done: Option<GroupDone>,
        }
        fn report(group: &std::sync::Mutex<Group>, index: usize, result: io::Result<()>) {
            let mut group = group
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Err(error) = result {
                group.failures.push((index, error));
            }
            group.remaining -= 1;
            if group.remaining == 0 {
                let failures = std::mem::take(&mut group.failures);
                if let Some(done) = group.done.take() {
                    drop(group);
                    done(failures);
                }
            }
        }
        if targets.is_empty() {
            done(Vec::new());
            return;
        }
        let group = std::sync::Arc::new(std::sync::Mutex::new(Group {
            remaining: targets.len(),
            failures: Vec::new(),
            done: Some(Box::new(done)),
        }));
        for (index, target) in targets.into_iter().enumerate() {
            let mine = group.clone();
            let job = SyncJob {
                index,
                target,
                done: Box::new(move |index, result| report(&mine, index, result)),
            };
            // No worker could be started: sync it here.
            if let Err(std::sync::mpsc::SendError(job)) = self.jobs.send(job) {
                let result = job.target.sync();
                (job.done)(job.index, result);
            }
        }
    }

    /// Syncs every target, in parallel; the first failure by index, if any.
    fn sync_all(&self, targets: Vec<SyncTarget>) -> Result<(), (usize, io::Error)> {
        let (done, result) = std::sync::mpsc::sync_channel(1);
        self.hand_out(targets, move |failures| {
            let _ = done.send(failures);
        });
        group_result(result.recv().ok())
    }

    /// As [`SyncPool::sync_all`], without waiting: the future resolves once every
    /// target's sync returned (group commit pipelined, docs/recovery-latency.md P11).
    fn start_all(
        &self,
        targets: Vec<SyncTarget>,
    ) -> super::LocalFuture<'static, Result<(), (usize, io::Error)>> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.hand_out(targets, move |failures| {
            let _ = done.send(failures);
        });
        Box::pin(async move { group_result(result.await.ok()) })
    }
}

/// A group's outcome from its failures; `None` when a worker ended without answering
/// (durability unknown).
fn group_result(failures: Option<Vec<(usize, io::Error)>>) -> Result<(), (usize, io::Error)> {
    match failures {
        Some(failures) => first_failure(failures),
        None => Err((0, io::Error::other("a sync worker ended"))),
    }
}

/// What runs once a group's last sync returned, with the group's failures.
type GroupDone = Box<dyn FnOnce(Vec<(usize, io::Error)>) + Send>;

/// The failure of the lowest index, if any.
fn first_failure(failures: Vec<(usize, io::Error)>) -> Result<(), (usize, io::Error)> {
    match failures.into_iter().min_by_key(|(index, _)| *index) {
        Some(failure) => Err(failure),
        None => Ok(()),
    }
}

impl RealFs {
    /// A real filesystem that syncs groups of files the given way.
    pub fn with_group_sync(group_sync: GroupSync) -> RealFs {
        RealFs {
            append_handles: RefCell::default(),
            group_sync,
            pool: std::cell::OnceCell::new(),
        }
    }

    /// What to sync for each of `paths`: the cached append handle, which the last
    /// append to the path checked (docs/recovery-latency.md P56, P57: not looked at
    /// again here; its sync fails if the file lost its name since), else the file
    /// opened for the sync.
    fn sync_targets(&self, paths: &[PathBuf]) -> Result<Vec<SyncTarget>, (usize, io::Error)> {
        let handles = self.append_handles.borrow();
        let mut targets = Vec::with_capacity(paths.len());
        for (index, path) in paths.iter().enumerate() {
            targets.push(match handles.get(path) {
                Some((file, _, _)) => SyncTarget::Cached(file.clone()),
                None => SyncTarget::Opened(std::sync::Arc::new(
                    File::open(path).map_err(|error| (index, error))?,
                )),
            });
        }
        Ok(targets)
    }

    /// Appends `data` to the file now under `path`, whose metadata (`None`: no file
    /// there) the caller just read: through the cached handle when it was opened on
    /// that very file, else through a handle opened now (the file created if missing
    /// when `create`), which replaces the cached one.
    fn append_to(
        &self,
        path: &Path,
        current: Option<&fs::Metadata>,
        create: bool,
        data: &[u8],
    ) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let mut handles = self.append_handles.borrow_mut();
        let current = current.map(|metadata| (metadata.dev(), metadata.ino()));
        let fresh = matches!((handles.get(path), current), (Some((_, dev, ino)), Some(now)) if (*dev, *ino) == now);
        if !fresh {
            handles.remove(path);
            if handles.len() >= APPEND_HANDLES_MAX {
                handles.pop_first();
            }
            let file = OpenOptions::new().append(true).create(create).open(path)?;
            let metadata = file.metadata()?;
            handles.insert(
                path.to_path_buf(),
                (std::sync::Arc::new(file), metadata.dev(), metadata.ino()),
            );
        }
        let (file, _, _) = handles.get(path).expect("handle inserted above");
        (&**file).write_all(data)
    }

    fn forget_handles_under(&self, path: &Path) {
        self.append_handles
            .borrow_mut()
            .retain(|open, _| !open.starts_with(path));
    }
}

impl FileSystem for RealFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        // Sized from the file's metadata, read to the end: no `lseek`, unlike
        // `File::read_to_end`.
        fs::read(path)
    }

    fn write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.forget_handles_under(path);
        let mut file = File::create(path)?;
        file.write_all(data)
    }

    fn append(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let current = match fs::metadata(path) {
            Ok(metadata) => Some(metadata),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(error) => return Err(error),
        };
        self.append_to(path, current.as_ref(), true, data)
    }

    /// One `statx` of the path answers both whether a log is there and whether the
    /// cached handle still names it (docs/recovery-latency.md P56).
    fn append_existing(&self, path: &Path, data: &[u8]) -> io::Result<bool> {
        // No file there, as `exists` says it: any error of the look (not found, a
        // component that is no directory, a symlink loop) is "none".
        let Ok(current) = fs::metadata(path) else {
            return Ok(false);
        };
        match self.append_to(path, Some(&current), false, data) {
            Ok(()) => Ok(true),
            // Gone between the look and the open: nothing was written.
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(error),
        }
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        if let Some((file, dev, ino)) = self.append_handles.borrow().get(path) {
            if let Ok(metadata) = fs::metadata(path) {
                if (metadata.dev(), metadata.ino()) == (*dev, *ino) {
                    return file.sync_data();
                }
            }
        }
        File::open(path)?.sync_all()
    }

    /// Group commit. With [`GroupSync::Parallel`] (the default) every file gets an
    /// `fdatasync` of its own (on the cached append handle when it still names the
    /// path), up to [`SYNC_THREADS_MAX`] concurrently on the [`SyncPool`]'s threads: ext4 folds
    /// syncs that wait at the same time into one journal commit, so 100 files cost a few
    /// commits rather than 100.
    ///
    /// Measured on this project's 2-core ext4 VM, 100 files with a 200-byte append each
    /// (median of 60 rounds): when the disk is idle and answers fsync in ~0.07 ms, one
    /// after another 6.1 ms, 16 threads 2.1 ms, one `syncfs` 0.8 ms; when it is busy
    /// (dirty data of a build being written back; ~3 ms per fsync), one after another
    /// 310 ms, 16 threads 2.6-2.9 ms, `syncfs` 1.3-1.5 ms. End to end
    /// (`benches/update_throughput.rs`, 100 tasks, group commit on): idle disk, 16
    /// threads 8,300-8,500 updates/s, `syncfs` 12,400-13,300, one after another
    /// 5,400-6,300; busy disk, 16 threads 4,460, `syncfs` 4,140, one after another 175.
    /// `syncfs` is faster on an idle disk but is not the default: it writes back every
    /// dirty page of the whole filesystem (task sandboxes, other programs), so its cost
    /// has no bound the agent controls (it lost its lead on the busy disk), and it
    /// reports a writeback error only if it happened after the descriptor it is called
    /// on was opened, so an error in the background writeback of an appended record
    /// could go unseen; `fdatasync` on the append handle reports it.
    fn sync_files(&self, paths: &[PathBuf]) -> Result<(), (usize, io::Error)> {
        use std::os::unix::fs::MetadataExt;
        if paths.len() <= 1 || self.group_sync == GroupSync::Sequential {
            for (index, path) in paths.iter().enumerate() {
                self.sync_file(path).map_err(|error| (index, error))?;
            }
            return Ok(());
        }
        let targets = self.sync_targets(paths)?;
        if self.group_sync == GroupSync::Syncfs {
            let mut files = Vec::with_capacity(targets.len());
            let mut cached = Vec::new();
            for (index, target) in targets.into_iter().enumerate() {
                files.push(match target {
                    SyncTarget::Cached(file) => {
                        cached.push(index);
                        file
                    }
                    SyncTarget::Opened(file) => file,
                    SyncTarget::Path(path) => {
                        std::sync::Arc::new(File::open(path).map_err(|error| (index, error))?)
                    }
                });
            }
            let mut devices = BTreeMap::new();
            for (index, file) in files.iter().enumerate() {
                let dev = file.metadata().map_err(|error| (index, error))?.dev();
                devices.entry(dev).or_insert(index);
            }
            for index in devices.into_values() {
                // SAFETY: syncfs on a descriptor we own.
                if unsafe { libc::syncfs(files[index].as_raw_fd()) } != 0 {
                    return Err((index, io::Error::last_os_error()));
                }
            }
            // P57: a cached handle whose file lost its name fails, as in the workers.
            for index in cached {
                still_linked(&files[index]).map_err(|error| (index, error))?;
            }
            return Ok(());
        }
        self.pool.get_or_init(SyncPool::start).sync_all(targets)
    }

    /// Group commit pipelined (docs/recovery-latency.md P11): with
    /// [`GroupSync::Parallel`], the group's `fdatasync`s go to the [`SyncPool`] and the
    /// agent's loop goes on; the future resolves when the last returned. The other
    /// ways sync at once, as [`RealFs::sync_files`].
    fn start_sync_files(
        &self,
        paths: Vec<PathBuf>,
    ) -> super::LocalFuture<'static, Result<(), (usize, io::Error)>> {
        if paths.is_empty() || self.group_sync != GroupSync::Parallel {
            let result = self.sync_files(&paths);
            return Box::pin(std::future::ready(result));
        }
        match self.sync_targets(&paths) {
            Ok(targets) => self.pool.get_or_init(SyncPool::start).start_all(targets),
            Err(failure) => Box::pin(std::future::ready(Err(failure))),
        }
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    /// With [`GroupSync::Parallel`], every directory's `fsync` on the [`SyncPool`] at
    /// once, so that ext4 folds them into a few journal commits: recovery syncs every
    /// directory it read (docs/recovery-rules.md R14), hundreds with 50 executors,
    /// which one after another cost most of a restart (docs/recovery-latency.md P18).
    fn sync_dirs(&self, paths: &[PathBuf]) -> Result<(), (usize, io::Error)> {
        if paths.len() <= 1 || self.group_sync != GroupSync::Parallel {
            for (index, path) in paths.iter().enumerate() {
                self.sync_dir(path).map_err(|error| (index, error))?;
            }
            return Ok(());
        }
        let mut targets = Vec::with_capacity(paths.len());
        for (index, path) in paths.iter().enumerate() {
            targets.push(SyncTarget::Opened(std::sync::Arc::new(
                File::open(path).map_err(|error| (index, error))?,
            )));
        }
        self.pool.get_or_init(SyncPool::start).sync_all(targets)
    }

    /// With [`GroupSync::Parallel`], the files and the directories go to the
    /// [`SyncPool`] as one group (each directory opened by the worker that syncs it),
    /// and `meanwhile` runs here while they sync (docs/recovery-latency.md P47).
    fn sync_all_meanwhile(
        &self,
        files: &[PathBuf],
        dirs: &[PathBuf],
        meanwhile: &mut dyn FnMut(),
    ) -> Result<(), (usize, io::Error)> {
        if self.group_sync != GroupSync::Parallel || files.len() + dirs.len() <= 1 {
            let result = self.sync_files(files).and_then(|()| {
                self.sync_dirs(dirs)
                    .map_err(|(index, error)| (files.len() + index, error))
            });
            meanwhile();
            return result;
        }
        let mut targets = match self.sync_targets(files) {
            Ok(targets) => targets,
            Err(failure) => {
                meanwhile();
                return Err(failure);
            }
        };
        targets.extend(dirs.iter().cloned().map(SyncTarget::Path));
        let (done, result) = std::sync::mpsc::sync_channel(1);
        self.pool
            .get_or_init(SyncPool::start)
            .hand_out(targets, move |failures| {
                let _ = done.send(failures);
            });
        meanwhile();
        group_result(result.recv().ok())
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.forget_handles_under(from);
        self.forget_handles_under(to);
        fs::rename(from, to)
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        fs::read_link(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.forget_handles_under(path);
        fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.forget_handles_under(path);
        fs::remove_dir_all(path)
    }

    fn truncate(&self, path: &Path, length: u64) -> io::Result<()> {
        self.forget_handles_under(path);
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(length)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn modified(&self, path: &Path) -> io::Result<SystemTime> {
        fs::metadata(path)?.modified()
    }

    fn touch(&self, path: &Path) -> io::Result<()> {
        let file = File::open(path)?;
        file.set_modified(SystemTime::now())
    }

    fn disk_usage(&self, path: &Path) -> io::Result<f64> {
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path has a NUL byte"))?;
        // SAFETY: statvfs writes into the zeroed struct we own; the path is NUL-terminated.
        let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
        let result = unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        if stats.f_blocks == 0 {
            return Ok(0.0);
        }
        let free = stats.f_bavail as f64;
        let total = stats.f_blocks as f64;
        Ok((1.0 - free / total).clamp(0.0, 1.0))
    }

    fn lock_exclusive(&self, path: &Path, holder: &str) -> Result<Box<dyn FileLock>, LockError> {
        let io_error = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
            .map_err(io_error)?;
        // SAFETY: flock on a descriptor we own.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if locked != 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut current = String::new();
                let _ = file.read_to_string(&mut current);
                return Err(LockError::Held {
                    path: path.to_path_buf(),
                    holder: current.trim().to_owned(),
                });
            }
            return Err(io_error(error));
        }
        file.set_len(0).map_err(io_error)?;
        file.seek(SeekFrom::Start(0)).map_err(io_error)?;
        file.write_all(holder.as_bytes()).map_err(io_error)?;
        Ok(Box::new(RealLock { _file: file }))
    }
}

struct RealLock {
    _file: File,
}

impl FileLock for RealLock {}

/// tokio TCP.
pub struct TcpNetwork;

struct TcpListenerSeam(tokio::net::TcpListener);

impl Listener for TcpListenerSeam {
    fn accept(&mut self) -> LocalFuture<'_, io::Result<(BoxStream, String)>> {
        Box::pin(async move {
            let (stream, peer) = self.0.accept().await?;
            stream.set_nodelay(true)?;
            Ok((Box::new(stream) as BoxStream, peer.to_string()))
        })
    }
    fn local_addr(&self) -> io::Result<String> {
        Ok(self.0.local_addr()?.to_string())
    }
}

/// The listen backlog of every real listener (docs/recovery-latency.md P21); the kernel
/// caps it at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: u32 = 1024;

impl Network for TcpNetwork {
    fn listen(&self, addr: &str) -> LocalFuture<'static, io::Result<Box<dyn Listener>>> {
        let addr = addr.to_owned();
        Box::pin(async move {
            // docs/recovery-latency.md P21: a backlog of LISTEN_BACKLOG, not the
            // standard library's 128, so that a crowd of executors coming back at once
            // waits in the queue instead of having its connections dropped.
            let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to listen on");
            for address in tokio::net::lookup_host(addr).await? {
                let socket = if address.is_ipv4() {
                    tokio::net::TcpSocket::new_v4()?
                } else {
                    tokio::net::TcpSocket::new_v6()?
                };
                socket.set_reuseaddr(true)?;
                if let Err(error) = socket.bind(address) {
                    last = error;
                    continue;
                }
                let listener = socket.listen(LISTEN_BACKLOG)?;
                return Ok(Box::new(TcpListenerSeam(listener)) as Box<dyn Listener>);
            }
            Err(last)
        })
    }
    fn connect(&self, addr: &str) -> LocalFuture<'static, io::Result<BoxStream>> {
        let addr = addr.to_owned();
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as BoxStream)
        })
    }
}

mod processes;
pub use processes::{process_start_time, OsProcesses};

/// Where the kernel publishes the boot id.
pub const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// `/proc/sys/kernel/random/boot_id`. An unreadable or empty file is an error naming the
/// file (docs/design.md D13).
pub struct ProcBootId;

impl BootId for ProcBootId {
    fn boot_id(&self) -> io::Result<String> {
        let text = fs::read_to_string(BOOT_ID_PATH)
            .map_err(|error| io::Error::new(error.kind(), format!("{BOOT_ID_PATH}: {error}")))?;
        let id = text.trim();
        if id.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{BOOT_ID_PATH} is empty"),
            ));
        }
        Ok(id.to_owned())
    }
}

/// OS entropy.
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buffer: &mut [u8]) {
        use rand::RngCore;
        rand::rngs::OsRng.fill_bytes(buffer);
    }
}
