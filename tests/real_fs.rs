//! The real filesystem seam (`revenant::os::real::RealFs`) against the contract the
//! `FileSystem` trait documents, on a temporary directory.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use revenant::os::real::RealFs;
use revenant::os::{temp_path_for, FileSystem};
use tempfile::TempDir;

fn setup() -> (TempDir, RealFs) {
    (tempfile::tempdir().unwrap(), RealFs::default())
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn read_and_write() {
    let (dir, rfs) = setup();
    let path = dir.path().join("file");
    rfs.write(&path, b"first").unwrap();
    assert_eq!(rfs.read(&path).unwrap(), b"first");
    // write truncates.
    rfs.write(&path, b"2nd").unwrap();
    assert_eq!(rfs.read(&path).unwrap(), b"2nd");
    assert_eq!(fs::read(&path).unwrap(), b"2nd");
    assert_eq!(
        rfs.read(&dir.path().join("missing")).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
}

#[test]
fn list_dir_is_sorted_by_bytes() {
    let (dir, rfs) = setup();
    let created = [
        "b", "a", "Z", "latest", "10", "9", ".hidden", "é", "a-b", "a.b",
    ];
    for name in created {
        fs::write(dir.path().join(name), b"").unwrap();
    }
    fs::create_dir(dir.path().join("sub")).unwrap();
    let listed = rfs.list_dir(dir.path()).unwrap();
    let mut expected: Vec<String> = created.iter().map(|s| s.to_string()).collect();
    expected.push("sub".to_owned());
    expected.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(listed, expected);
    assert_eq!(
        listed[..4],
        [".hidden", "10", "9", "Z"],
        "byte order, not numeric or case-folded"
    );
    assert!(rfs.list_dir(&dir.path().join("sub")).unwrap().is_empty());
    assert_eq!(
        rfs.list_dir(&dir.path().join("missing"))
            .unwrap_err()
            .kind(),
        io::ErrorKind::NotFound
    );
}

#[test]
fn replace_atomically_replaces_and_leaves_no_temp_file() {
    let (dir, rfs) = setup();
    let path = dir.path().join("slave.info");
    rfs.replace_atomically(&path, b"old").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"old");
    rfs.replace_atomically(&path, b"new content").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"new content");
    assert_eq!(names(dir.path()), ["slave.info"]);
    let temp = temp_path_for(&path);
    assert_eq!(temp, dir.path().join(".slave.info.tmp"));
    assert!(!temp.exists());

    // A temp file left by a crash before the rename is simply overwritten.
    fs::write(&temp, b"stale half-written").unwrap();
    rfs.replace_atomically(&path, b"newest").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"newest");
    assert_eq!(names(dir.path()), ["slave.info"]);
}

#[test]
fn replace_atomically_replaces_a_file_that_is_being_appended_to() {
    let (dir, rfs) = setup();
    let path = dir.path().join("resources.info");
    rfs.append(&path, b"old records").unwrap();
    rfs.replace_atomically(&path, b"header").unwrap();
    // The cached append handle of the old file must not be used for the new one.
    rfs.append(&path, b"+more").unwrap();
    rfs.sync_file(&path).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"header+more");
}

#[test]
fn append_creates_and_appends() {
    let (dir, rfs) = setup();
    let path = dir.path().join("task.updates");
    assert!(!path.exists());
    rfs.append(&path, b"one").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"one");
    rfs.append(&path, b"").unwrap();
    rfs.append(&path, b",two").unwrap();
    rfs.sync_file(&path).unwrap();
    assert_eq!(rfs.read(&path).unwrap(), b"one,two");

    // Appending after a truncate continues at the new end.
    rfs.truncate(&path, 3).unwrap();
    rfs.append(&path, b"+three").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"one+three");

    // Appending after the file was rewritten with `write` appends to the new content.
    rfs.write(&path, b"fresh").unwrap();
    rfs.append(&path, b"!").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"fresh!");

    // A missing parent is an error, not a panic.
    assert!(rfs
        .append(&dir.path().join("no/such/dir/file"), b"x")
        .is_err());
}

#[test]
fn append_after_remove_recreates_the_file() {
    let (dir, rfs) = setup();
    let path = dir.path().join("log");
    rfs.append(&path, b"old").unwrap();
    rfs.remove_file(&path).unwrap();
    assert!(!rfs.exists(&path));
    rfs.append(&path, b"new").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"new");

    // Likewise when the directory holding it was removed and created again.
    let sub = dir.path().join("sub");
    let inner = sub.join("log");
    fs::create_dir(&sub).unwrap();
    rfs.append(&inner, b"old").unwrap();
    rfs.remove_dir_all(&sub).unwrap();
    fs::create_dir(&sub).unwrap();
    rfs.append(&inner, b"new").unwrap();
    assert_eq!(fs::read(&inner).unwrap(), b"new");
}

#[test]
fn sync_file_and_sync_dir() {
    let (dir, rfs) = setup();
    let path = dir.path().join("file");
    rfs.write(&path, b"data").unwrap();
    rfs.sync_file(&path).unwrap();
    rfs.sync_dir(dir.path()).unwrap();
    assert_eq!(
        rfs.sync_file(&dir.path().join("missing"))
            .unwrap_err()
            .kind(),
        io::ErrorKind::NotFound
    );
}

#[test]
fn create_dir_requires_a_parent_and_refuses_an_existing_one() {
    let (dir, rfs) = setup();
    let sub = dir.path().join("sub");
    rfs.create_dir(&sub).unwrap();
    assert!(sub.is_dir());
    assert_eq!(
        rfs.create_dir(&sub).unwrap_err().kind(),
        io::ErrorKind::AlreadyExists
    );
    assert_eq!(
        rfs.create_dir(&dir.path().join("a/b")).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
}

#[test]
fn create_dir_all_durably_creates_every_ancestor() {
    let (dir, rfs) = setup();
    let deep = dir.path().join("meta/slaves/agent-1/frameworks");
    rfs.create_dir_all_durably(&deep).unwrap();
    assert!(deep.is_dir());
    // Idempotent.
    rfs.create_dir_all_durably(&deep).unwrap();
    rfs.create_dir_all_durably(dir.path()).unwrap();
    assert_eq!(names(dir.path()), ["meta"]);
    // A regular file in the way is an error.
    let file = dir.path().join("file");
    fs::write(&file, b"").unwrap();
    assert!(rfs.create_dir_all_durably(&file.join("below")).is_err());
}

#[test]
fn symlink_and_read_link() {
    let (dir, rfs) = setup();
    fs::create_dir(dir.path().join("agent-1")).unwrap();
    let link = dir.path().join("latest");
    rfs.symlink(Path::new("agent-1"), &link).unwrap();
    assert_eq!(rfs.read_link(&link).unwrap(), PathBuf::from("agent-1"));
    assert!(rfs.is_dir(&link), "is_dir follows the link");
    // Relative to the link's directory, not to the process's.
    assert_eq!(
        fs::canonicalize(&link).unwrap(),
        fs::canonicalize(dir.path().join("agent-1")).unwrap()
    );
    assert_eq!(
        rfs.symlink(Path::new("other"), &link).unwrap_err().kind(),
        io::ErrorKind::AlreadyExists
    );
    assert_eq!(
        rfs.read_link(&dir.path().join("missing"))
            .unwrap_err()
            .kind(),
        io::ErrorKind::NotFound
    );
    // A regular file is not a link.
    fs::write(dir.path().join("file"), b"").unwrap();
    assert!(rfs.read_link(&dir.path().join("file")).is_err());
}

#[test]
fn rename_replaces_atomically() {
    let (dir, rfs) = setup();
    let from = dir.path().join("from");
    let to = dir.path().join("to");
    fs::write(&from, b"new").unwrap();
    fs::write(&to, b"old").unwrap();
    rfs.rename(&from, &to).unwrap();
    assert_eq!(fs::read(&to).unwrap(), b"new");
    assert!(!from.exists());

    // Renaming a symlink over a symlink replaces the link, not its target.
    fs::create_dir(dir.path().join("run-1")).unwrap();
    fs::create_dir(dir.path().join("run-2")).unwrap();
    let latest = dir.path().join("latest");
    let temp = dir.path().join(".latest.tmp");
    rfs.symlink(Path::new("run-1"), &latest).unwrap();
    rfs.symlink(Path::new("run-2"), &temp).unwrap();
    rfs.rename(&temp, &latest).unwrap();
    assert_eq!(rfs.read_link(&latest).unwrap(), PathBuf::from("run-2"));
    assert!(dir.path().join("run-1").is_dir());
    assert!(!temp.exists() && fs::symlink_metadata(&temp).is_err());

    assert_eq!(
        rfs.rename(&dir.path().join("missing"), &to)
            .unwrap_err()
            .kind(),
        io::ErrorKind::NotFound
    );
}

#[test]
fn truncate_cuts_a_file() {
    let (dir, rfs) = setup();
    let path = dir.path().join("log");
    fs::write(&path, b"0123456789").unwrap();
    rfs.truncate(&path, 4).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"0123");
    rfs.truncate(&path, 0).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"");
    assert_eq!(
        rfs.truncate(&dir.path().join("missing"), 0)
            .unwrap_err()
            .kind(),
        io::ErrorKind::NotFound,
        "truncate never creates a file"
    );
    assert!(!dir.path().join("missing").exists());
}

#[test]
fn exists_and_is_dir_follow_symlinks() {
    let (dir, rfs) = setup();
    let file = dir.path().join("file");
    let sub = dir.path().join("sub");
    fs::write(&file, b"").unwrap();
    fs::create_dir(&sub).unwrap();
    assert!(rfs.exists(&file) && !rfs.is_dir(&file));
    assert!(rfs.exists(&sub) && rfs.is_dir(&sub));
    assert!(!rfs.exists(&dir.path().join("missing")));

    let to_file = dir.path().join("to-file");
    let dangling = dir.path().join("dangling");
    rfs.symlink(Path::new("file"), &to_file).unwrap();
    rfs.symlink(Path::new("gone"), &dangling).unwrap();
    assert!(rfs.exists(&to_file));
    assert!(!rfs.is_dir(&to_file));
    assert!(!rfs.exists(&dangling), "a dangling link does not exist");
    assert!(!rfs.is_dir(&dangling));
    // ... though the link itself is there.
    assert!(fs::symlink_metadata(&dangling).is_ok());
}

#[test]
fn remove_file_and_remove_dir_all() {
    let (dir, rfs) = setup();
    let tree = dir.path().join("runs/container-1/tasks/task-1");
    fs::create_dir_all(&tree).unwrap();
    fs::write(tree.join("task.updates"), b"x").unwrap();
    std::os::unix::fs::symlink("container-1", dir.path().join("runs/latest")).unwrap();

    // remove_file removes a link, not what it points at.
    rfs.remove_file(&dir.path().join("runs/latest")).unwrap();
    assert!(dir.path().join("runs/container-1").is_dir());

    rfs.remove_dir_all(&dir.path().join("runs")).unwrap();
    assert!(names(dir.path()).is_empty());
    assert_eq!(
        rfs.remove_dir_all(&dir.path().join("runs"))
            .unwrap_err()
            .kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(
        rfs.remove_file(&dir.path().join("missing"))
            .unwrap_err()
            .kind(),
        io::ErrorKind::NotFound
    );
}

#[test]
fn remove_dir_all_does_not_follow_symlinks_out_of_the_tree() {
    let (dir, rfs) = setup();
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("keep"), b"keep").unwrap();
    let tree = dir.path().join("tree");
    fs::create_dir(&tree).unwrap();
    std::os::unix::fs::symlink(&outside, tree.join("link")).unwrap();
    rfs.remove_dir_all(&tree).unwrap();
    assert!(!tree.exists());
    assert_eq!(fs::read(outside.join("keep")).unwrap(), b"keep");
}

#[test]
fn disk_usage_is_a_fraction() {
    let (dir, rfs) = setup();
    let usage = rfs.disk_usage(dir.path()).unwrap();
    assert!((0.0..=1.0).contains(&usage), "{usage}");
    assert!(usage.is_finite());
    assert!(rfs.disk_usage(&dir.path().join("missing")).is_err());
}

#[test]
fn modified_and_touch() {
    let (dir, rfs) = setup();
    let path = dir.path().join("run");
    fs::create_dir(&path).unwrap();
    // Age the directory by an hour, then touch it.
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    fs::File::open(&path)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    let aged = rfs.modified(&path).unwrap();
    let drift = aged
        .duration_since(hour_ago)
        .unwrap_or_else(|e| e.duration());
    assert!(drift < Duration::from_secs(1), "{drift:?}");

    let before = SystemTime::now() - Duration::from_secs(1);
    rfs.touch(&path).unwrap();
    let touched = rfs.modified(&path).unwrap();
    assert!(touched >= before, "touch sets the time to now");
    assert!(touched > aged + Duration::from_secs(3000));

    // Files too.
    let file = dir.path().join("file");
    fs::write(&file, b"").unwrap();
    fs::File::open(&file)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    rfs.touch(&file).unwrap();
    assert!(rfs.modified(&file).unwrap() >= before);

    assert_eq!(
        rfs.modified(&dir.path().join("missing"))
            .unwrap_err()
            .kind(),
        io::ErrorKind::NotFound
    );
    assert!(rfs.touch(&dir.path().join("missing")).is_err());
    assert!(!dir.path().join("missing").exists(), "touch never creates");
}

#[test]
fn lock_exclusive_records_the_holder() {
    let (dir, rfs) = setup();
    let path = dir.path().join("revenant.lock");
    let guard = rfs.lock_exclusive(&path, "holder one").unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "holder one");
    match rfs.lock_exclusive(&path, "holder two") {
        Err(revenant::os::LockError::Held { holder, path: held }) => {
            assert_eq!(holder, "holder one");
            assert_eq!(held, path);
        }
        Err(other) => panic!("expected Held, got {other:?}"),
        Ok(_) => panic!("lock taken twice"),
    }
    drop(guard);
    // A shorter holder text replaces the longer one entirely.
    let _guard = rfs.lock_exclusive(&path, "two").unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "two");
}

/// docs/recovery-latency.md P47: the logs and directories of R14 as one group, with the
/// caller's work run once while they sync; a failure names its path by index (files
/// first, then directories), and the work still runs exactly once.
#[test]
fn sync_all_meanwhile_runs_the_work_once_and_reports_failures_by_index() {
    let (dir, fs) = setup();
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for index in 0..20 {
        let sub = dir.path().join(format!("d{index}"));
        fs.create_dir(&sub).unwrap();
        let file = sub.join("task.updates");
        fs.append(&file, b"record").unwrap();
        files.push(file);
        dirs.push(sub);
    }
    let mut runs = 0;
    fs.sync_all_meanwhile(&files, &dirs, &mut || runs += 1)
        .expect("every sync succeeds");
    assert_eq!(runs, 1);

    // A directory that does not exist: its index counts the files first.
    let mut broken = dirs.clone();
    broken.insert(3, dir.path().join("missing"));
    let mut runs = 0;
    let (index, error) = fs
        .sync_all_meanwhile(&files, &broken, &mut || runs += 1)
        .expect_err("a missing directory cannot be synced");
    assert_eq!(runs, 1);
    assert_eq!(index, files.len() + 3);
    assert_eq!(error.kind(), io::ErrorKind::NotFound);

    // A file that does not exist: its own index.
    let mut broken = files.clone();
    broken.push(dir.path().join("missing.updates"));
    let mut runs = 0;
    let (index, _) = fs
        .sync_all_meanwhile(&broken, &dirs, &mut || runs += 1)
        .expect_err("a missing file cannot be synced");
    assert_eq!(runs, 1);
    assert_eq!(index, files.len());
}

/// docs/recovery-latency.md P57: a group's sync goes to the handle the appends wrote
/// through and fails with `NotFound` when that file lost its name since (removed, or
/// renamed over, by someone other than the agent), so that records in an unlinked file
/// are never taken for durable; the other files of the group are synced as usual.
#[test]
fn a_group_sync_catches_a_log_removed_or_replaced_under_it() {
    let (dir, rfs) = setup();
    let logs: Vec<PathBuf> = (0..3)
        .map(|n| dir.path().join(format!("log-{n}")))
        .collect();
    for log in &logs {
        rfs.write(log, b"h").unwrap();
        assert!(rfs.append_existing(log, b"+a").unwrap());
    }
    rfs.sync_files(&logs).unwrap();
    let started = rfs.start_sync_files(logs.clone());
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(started)
        .unwrap();

    // Replaced behind the seam's back (a rename over it), between the append and the
    // group's sync: the record is in the unlinked file.
    for log in &logs {
        assert!(rfs.append_existing(log, b"+b").unwrap());
    }
    let other = dir.path().join("other");
    fs::write(&other, b"other").unwrap();
    fs::rename(&other, &logs[1]).unwrap();
    match rfs.sync_files(&logs) {
        Err((index, error)) => assert_eq!((index, error.kind()), (1, io::ErrorKind::NotFound)),
        Ok(()) => panic!("a group with a replaced log was taken for durable"),
    }
    // Pipelined, the same.
    let started = rfs.start_sync_files(logs.clone());
    let result = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(started);
    match result {
        Err((index, error)) => assert_eq!((index, error.kind()), (1, io::ErrorKind::NotFound)),
        Ok(()) => panic!("a pipelined group with a replaced log was taken for durable"),
    }

    // The next append looks at the path (P56) and goes to the file now under it.
    assert!(rfs.append_existing(&logs[1], b"+c").unwrap());
    assert_eq!(fs::read(&logs[1]).unwrap(), b"other+c");
    rfs.sync_files(&logs).unwrap();

    // Removed behind the seam's back.
    assert!(rfs.append_existing(&logs[2], b"+d").unwrap());
    fs::remove_file(&logs[2]).unwrap();
    match rfs.sync_files(&logs) {
        Err((index, error)) => assert_eq!((index, error.kind()), (2, io::ErrorKind::NotFound)),
        Ok(()) => panic!("a group with a removed log was taken for durable"),
    }
    // Gone: nothing to append to, nothing made.
    assert!(!rfs.append_existing(&logs[2], b"+e").unwrap());
    assert!(!logs[2].exists());
}

/// docs/recovery-latency.md P56: the store's append looks at the path once; a missing
/// log is made with its header first, as before.
#[test]
fn append_existing_never_creates() {
    let (dir, rfs) = setup();
    let log = dir.path().join("log");
    assert!(!rfs.append_existing(&log, b"x").unwrap());
    assert!(!log.exists());
    rfs.append(&log, b"a").unwrap();
    assert!(rfs.append_existing(&log, b"b").unwrap());
    assert_eq!(fs::read(&log).unwrap(), b"ab");
    // A directory is an error, not "missing".
    assert_eq!(
        rfs.append_existing(dir.path(), b"x").unwrap_err().kind(),
        io::ErrorKind::IsADirectory
    );
}
