//! A benchmark-only [`FileSystem`]: [`RealFs`] with its syncs taken out, or with a
//! device flush of a given cost added to each.
// Each benchmark that includes this module uses part of it.
#![allow(dead_code)]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use revenant::os::real::RealFs;
use revenant::os::{FileLock, FileSystem, LocalFuture, LockError};

/// What [`SyncCostFs`] does to a sync.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Syncs {
    /// Every sync is a no-op: never durable. For writing a large fixture quickly
    /// (`agent_memory`), and for the ceiling of what any group commit could reach when
    /// syncs cost nothing (`update_throughput`).
    Skipped,
    /// The real sync, then the calling thread blocks this long more: a disk whose cache
    /// flush costs what network block storage's does. A group ([`FileSystem::sync_files`])
    /// pays it once, as concurrent `fdatasync`s on ext4 share one journal commit (measured
    /// in `RealFs::sync_files`'s notes: 100 files cost 2.6-2.9 ms on a disk where one
    /// costs ~3 ms).
    Delayed(Duration),
}

/// The real filesystem with its syncs changed as [`Syncs`] says. Benchmarks only.
pub struct SyncCostFs(pub RealFs, pub Syncs);

impl SyncCostFs {
    /// Real syncs plus `delay` per sync call, or per group.
    fn after_sync<T>(&self, result: T) -> T {
        if let Syncs::Delayed(delay) = self.1 {
            std::thread::sleep(delay);
        }
        result
    }
}

impl FileSystem for SyncCostFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.0.read(path)
    }
    fn write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.0.write(path, data)
    }
    fn append(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.0.append(path, data)
    }
    fn append_existing(&self, path: &Path, data: &[u8]) -> io::Result<bool> {
        self.0.append_existing(path, data)
    }
    fn sync_file(&self, path: &Path) -> io::Result<()> {
        match self.1 {
            Syncs::Skipped => Ok(()),
            Syncs::Delayed(_) => self.after_sync(self.0.sync_file(path)),
        }
    }
    fn sync_files(&self, paths: &[PathBuf]) -> Result<(), (usize, io::Error)> {
        match self.1 {
            Syncs::Skipped => Ok(()),
            Syncs::Delayed(_) => self.after_sync(self.0.sync_files(paths)),
        }
    }
    /// Pipelined group commit: the group's real syncs run on `RealFs`'s sync threads;
    /// with [`Syncs::Delayed`] the group then waits its flush without blocking the
    /// caller's loop (a device flush keeps the disk busy, not the CPU).
    fn start_sync_files(
        &self,
        paths: Vec<PathBuf>,
    ) -> LocalFuture<'static, Result<(), (usize, io::Error)>> {
        match self.1 {
            Syncs::Skipped => Box::pin(std::future::ready(Ok(()))),
            Syncs::Delayed(delay) => {
                let started = self.0.start_sync_files(paths);
                Box::pin(async move {
                    let result = started.await;
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    result
                })
            }
        }
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        match self.1 {
            Syncs::Skipped => Ok(()),
            Syncs::Delayed(_) => self.after_sync(self.0.sync_dir(path)),
        }
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.0.create_dir(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.0.rename(from, to)
    }
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        self.0.symlink(target, link)
    }
    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        self.0.read_link(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.0.list_dir(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.0.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.0.remove_dir_all(path)
    }
    fn truncate(&self, path: &Path, length: u64) -> io::Result<()> {
        self.0.truncate(path, length)
    }
    fn exists(&self, path: &Path) -> bool {
        self.0.exists(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.0.is_dir(path)
    }
    fn modified(&self, path: &Path) -> io::Result<SystemTime> {
        self.0.modified(path)
    }
    fn touch(&self, path: &Path) -> io::Result<()> {
        self.0.touch(path)
    }
    fn disk_usage(&self, path: &Path) -> io::Result<f64> {
        self.0.disk_usage(path)
    }
    fn lock_exclusive(&self, path: &Path, holder: &str) -> Result<Box<dyn FileLock>, LockError> {
        self.0.lock_exclusive(path, holder)
    }
}
