//! Group commit of status-update checkpoints, on the real agent in an in-process cluster
//! (`tests/inproc`): with `--status-update-batch` above 1 the agent syncs the
//! `task.updates` logs of concurrent updates together, and still never tells anyone
//! about a record before it is durable:
//!
//! - an executor receives the acknowledgement of an update only after the UPDATE record
//!   was synced;
//! - the framework receives an update only after its UPDATE record was synced, and the
//!   next update of a task only after the ACK record of the previous one was synced.
//!
//! The agent's filesystem is the real one wrapped in a recorder that keeps, per file, the
//! content it had at its last successful sync, and that makes every sync slow (a few
//! milliseconds), so that a message sent before its sync would be seen early.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod inproc;

use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use revenant::os::real::RealFs;
use revenant::os::{FileLock, FileSystem, LockError};

use inproc::{Observation, Options};

/// What the recorder saw.
#[derive(Default)]
struct Record {
    /// Per file, its content at its last successful sync.
    synced: std::collections::BTreeMap<PathBuf, Vec<u8>>,
    /// Sync calls on `task.updates` logs: `sync_file` calls and `sync_files` calls.
    log_sync_calls: usize,
    /// Files synced in those calls.
    log_files_synced: usize,
    /// The most files one call synced.
    largest_group: usize,
}

struct RecordingFs {
    inner: RealFs,
    record: Arc<Mutex<Record>>,
}

const SYNC_DELAY: Duration = Duration::from_millis(3);

fn is_log(path: &Path) -> bool {
    path.file_name().is_some_and(|name| name == "task.updates")
}

impl RecordingFs {
    fn synced(&self, paths: &[PathBuf]) {
        let mut record = self.record.lock().unwrap();
        let logs = paths.iter().filter(|path| is_log(path)).count();
        if logs > 0 {
            record.log_sync_calls += 1;
            record.log_files_synced += logs;
            record.largest_group = record.largest_group.max(logs);
        }
        for path in paths {
            if let Ok(content) = std::fs::read(path) {
                record.synced.insert(path.clone(), content);
            }
        }
    }
}

impl FileSystem for RecordingFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.inner.read(path)
    }
    fn write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.inner.write(path, data)
    }
    fn append(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.inner.append(path, data)
    }
    fn sync_file(&self, path: &Path) -> io::Result<()> {
        std::thread::sleep(SYNC_DELAY);
        self.inner.sync_file(path)?;
        self.synced(&[path.to_path_buf()]);
        Ok(())
    }
    fn sync_files(&self, paths: &[PathBuf]) -> Result<(), (usize, io::Error)> {
        std::thread::sleep(SYNC_DELAY);
        self.inner.sync_files(paths)?;
        self.synced(paths);
        Ok(())
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.sync_dir(path)
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        self.inner.symlink(target, link)
    }
    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        self.inner.read_link(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir_all(path)
    }
    fn truncate(&self, path: &Path, length: u64) -> io::Result<()> {
        self.inner.truncate(path, length)
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.inner.is_dir(path)
    }
    fn modified(&self, path: &Path) -> io::Result<SystemTime> {
        self.inner.modified(path)
    }
    fn touch(&self, path: &Path) -> io::Result<()> {
        self.inner.touch(path)
    }
    fn disk_usage(&self, path: &Path) -> io::Result<f64> {
        self.inner.disk_usage(path)
    }
    fn lock_exclusive(&self, path: &Path, holder: &str) -> Result<Box<dyn FileLock>, LockError> {
        self.inner.lock_exclusive(path, holder)
    }
}

/// How often `needle` occurs in `haystack`.
fn occurrences(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|window| *window == needle)
        .count()
}

/// The synced content of `task`'s log (empty if never synced).
fn synced_log(record: &Record, task: &str) -> Vec<u8> {
    let suffix = Path::new("tasks").join(task).join("task.updates");
    record
        .synced
        .iter()
        .find(|(path, _)| path.ends_with(&suffix))
        .map(|(_, content)| content.clone())
        .unwrap_or_default()
}

struct Outcome {
    log_sync_calls: usize,
    log_files_synced: usize,
    largest_group: usize,
    checked: usize,
}

/// Runs `tasks` concurrent tasks of `updates` updates each with the given batch size,
/// checking every acknowledgement and every forwarded update against what was synced.
fn run(batch: usize, tasks: usize, updates: usize) -> Outcome {
    let dir = tempfile::TempDir::new().expect("a temporary directory");
    let record = Arc::new(Mutex::new(Record::default()));
    let violations = Arc::new(Mutex::new(Vec::<String>::new()));
    let checked = Arc::new(Mutex::new(0usize));
    let observer = {
        let record = record.clone();
        let violations = violations.clone();
        let checked = checked.clone();
        Arc::new(move |observation: Observation| {
            let record = record.lock().unwrap();
            *checked.lock().unwrap() += 1;
            match observation {
                Observation::ExecutorAck { task, uuid } => {
                    if occurrences(&synced_log(&record, &task), &uuid) < 1 {
                        violations.lock().unwrap().push(format!(
                            "{task}: the executor got the acknowledgement of {uuid:x?} before its UPDATE record was synced"
                        ));
                    }
                }
                Observation::FrameworkUpdate {
                    task,
                    uuid,
                    previous,
                } => {
                    let log = synced_log(&record, &task);
                    if occurrences(&log, &uuid) < 1 {
                        violations.lock().unwrap().push(format!(
                            "{task}: the framework got update {uuid:x?} before its UPDATE record was synced"
                        ));
                    }
                    // The previous update's uuid: once in its UPDATE record, once in its ACK.
                    if let Some(previous) = previous {
                        if occurrences(&log, &previous) < 2 {
                            violations.lock().unwrap().push(format!(
                                "{task}: the framework got update {uuid:x?} before the ACK record of {previous:x?} was synced"
                            ));
                        }
                    }
                }
            }
        })
    };
    let make_fs = {
        let record = record.clone();
        Box::new(move || {
            Rc::new(RecordingFs {
                inner: RealFs::default(),
                record,
            }) as Rc<dyn FileSystem>
        })
    };
    let results = inproc::run(Options {
        tasks,
        updates_per_task: updates,
        status_update_batch: batch,
        work_dir: dir.path().join("work"),
        make_fs,
        observer: Some(observer),
        timeout: Duration::from_secs(120),
        tls: None,
    })
    .unwrap_or_else(|error| panic!("batch {batch}: {error}"));
    assert_eq!(results.updates, tasks * updates);
    let violations = violations.lock().unwrap();
    assert!(
        violations.is_empty(),
        "batch {batch}: {} violations, the first: {:#?}",
        violations.len(),
        &violations[..violations.len().min(5)]
    );
    let record = record.lock().unwrap();
    let checked = *checked.lock().unwrap();
    Outcome {
        log_sync_calls: record.log_sync_calls,
        log_files_synced: record.log_files_synced,
        largest_group: record.largest_group,
        checked,
    }
}

#[test]
fn records_are_durable_before_anyone_hears_of_them_and_batching_saves_syncs() {
    const TASKS: usize = 16;
    const UPDATES: usize = 5;
    let single = run(1, TASKS, UPDATES);
    let grouped = run(256, TASKS, UPDATES);
    eprintln!(
        "batch 1: {} log sync calls ({} files); batch 256: {} calls ({} files, up to {} per call); {} + {} observations checked",
        single.log_sync_calls,
        single.log_files_synced,
        grouped.log_sync_calls,
        grouped.log_files_synced,
        grouped.largest_group,
        single.checked,
        grouped.checked
    );
    // Every executor update is acknowledged (ACK) and each is one record: without
    // batching, one sync call per record.
    let records = TASKS * UPDATES * 2;
    assert_eq!(single.largest_group, 1);
    assert!(
        single.log_sync_calls >= records,
        "{}",
        single.log_sync_calls
    );
    assert!(
        single.checked >= TASKS * UPDATES * 2,
        "every ack and update observed"
    );
    // With batching, concurrent records share sync calls.
    assert!(grouped.largest_group > 1, "no sync call covered two logs");
    assert!(
        grouped.log_sync_calls * 2 <= single.log_sync_calls,
        "batching saved too few sync calls: {} against {}",
        grouped.log_sync_calls,
        single.log_sync_calls
    );
}
