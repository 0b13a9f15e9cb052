//! A conformance suite for [`FileSystem`] implementations: what the real filesystem and
//! the simulator's both promise, checked the same way on each, so that the simulator
//! cannot drift from the real thing the agent runs on.
//!
//! [`run_all`] runs every check in [`CHECKS`] against a filesystem, each in a directory
//! of its own under `root` (which must exist and be empty). A violation panics with a
//! message naming the check, the path and what was expected: the suite is meant to be
//! called from tests (`tests/fs_conformance_real.rs` for [`super::real::RealFs`],
//! `sim/tests/fs_conformance.rs` for the simulator).
//!
//! Error kinds are those std gives on Linux (`NotFound`, `AlreadyExists`,
//! `IsADirectory`, `NotADirectory`, `DirectoryNotEmpty`, `InvalidInput`): callers match
//! on them (`AlreadyExists` in [`FileSystem::create_dir_all_durably`], `NotFound` in the
//! store and recovery), so a simulator that returned others would test other code.
//!
//! Durability itself (what survives a power loss) cannot be observed through the trait;
//! the simulator's crash states have tests of their own.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{temp_path_for, FileSystem, LockError};

/// One check: its name and the function that runs it against a filesystem under a root.
pub type Check = (&'static str, fn(&dyn FileSystem, &Path));

/// Every check, in the order [`run_all`] runs them.
pub const CHECKS: &[Check] = &[
    ("read_write_append", check_read_write_append),
    ("append_after_replace", check_append_after_replace),
    ("append_existing", check_append_existing),
    ("list_dir_sorted", check_list_dir_sorted),
    ("replace_atomically", check_replace_atomically),
    ("rename_replaces", check_rename_replaces),
    ("rename_directory", check_rename_directory),
    ("symlink_read_link", check_symlink_read_link),
    ("exists_follows_symlinks", check_exists_follows_symlinks),
    (
        "symlink_in_middle_component",
        check_symlink_in_middle_component,
    ),
    ("symlink_loop", check_symlink_loop),
    ("remove_file", check_remove_file),
    ("remove_dir_all", check_remove_dir_all),
    ("truncate", check_truncate),
    ("create_dir", check_create_dir),
    ("create_dir_all_durably", check_create_dir_all_durably),
    ("sync", check_sync),
    ("sync_files", check_sync_files),
    ("not_found", check_not_found),
    ("wrong_kind_of_file", check_wrong_kind_of_file),
    ("lock_exclusive", check_lock_exclusive),
    ("disk_usage", check_disk_usage),
    ("touch_modified", check_touch_modified),
];

/// Runs every check in [`CHECKS`] against `fs`, under `root` (an existing, empty
/// directory). Panics on the first violation.
pub fn run_all(fs: &dyn FileSystem, root: &Path) {
    assert!(
        fs.is_dir(root),
        "conformance: the root '{}' must be an existing directory",
        root.display()
    );
    for (_, check) in CHECKS {
        check(fs, root);
    }
}

/// Creates the directory of check `name` under `root`.
fn check_dir(fs: &dyn FileSystem, root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    ok(name, "create_dir", &dir, fs.create_dir(&dir));
    dir
}

#[track_caller]
fn ok<T>(check: &str, operation: &str, path: &Path, result: io::Result<T>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!(
            "conformance {check}: {operation} '{}' failed: {error} ({:?})",
            path.display(),
            error.kind()
        ),
    }
}

#[track_caller]
fn fails_with<T: std::fmt::Debug>(
    check: &str,
    operation: &str,
    path: &Path,
    result: io::Result<T>,
    kind: io::ErrorKind,
) {
    match result {
        Ok(value) => panic!(
            "conformance {check}: {operation} '{}' succeeded with {value:?}; expected {kind:?}",
            path.display()
        ),
        Err(error) => assert_eq!(
            error.kind(),
            kind,
            "conformance {check}: {operation} '{}' failed with {error}; expected {kind:?}",
            path.display()
        ),
    }
}

/// `fails!(CHECK; "operation", &path => call, Kind; ...)`: each call fails with
/// `io::ErrorKind::Kind` ([`fails_with`], one line per expectation).
macro_rules! fails {
    ($check:expr; $($operation:expr, $path:expr => $call:expr, $kind:ident;)+) => {
        $(fails_with($check, $operation, $path, $call, io::ErrorKind::$kind);)+
    };
}

#[track_caller]
fn content(check: &str, fs: &dyn FileSystem, path: &Path, expected: &[u8]) {
    let data = ok(check, "read", path, fs.read(path));
    assert!(
        data == expected,
        "conformance {check}: '{}' holds \"{}\"; expected \"{}\"",
        path.display(),
        data.escape_ascii(),
        expected.escape_ascii()
    );
}

#[track_caller]
fn names(check: &str, fs: &dyn FileSystem, dir: &Path, expected: &[&str]) {
    let listed = ok(check, "list_dir", dir, fs.list_dir(dir));
    assert_eq!(
        listed,
        expected,
        "conformance {check}: list_dir '{}'",
        dir.display()
    );
}

#[track_caller]
fn present(check: &str, fs: &dyn FileSystem, path: &Path, expected: bool) {
    assert_eq!(
        fs.exists(path),
        expected,
        "conformance {check}: exists '{}'",
        path.display()
    );
}

/// `write` creates and replaces, `append` creates and extends, `read` sees both.
pub fn check_read_write_append(fs: &dyn FileSystem, root: &Path) {
    const CHECK: &str = "read_write_append";
    let dir = check_dir(fs, root, CHECK);
    let file = dir.join("file");
    ok(CHECK, "write", &file, fs.write(&file, b"first"));
    content(CHECK, fs, &file, b"first");
    ok(CHECK, "write", &file, fs.write(&file, b"2nd"));
    content(CHECK, fs, &file, b"2nd");
    ok(CHECK, "append", &file, fs.append(&file, b"+more"));
    ok(CHECK, "append", &file, fs.append(&file, b""));
    ok(CHECK, "append", &file, fs.append(&file, b"+end"));
    content(CHECK, fs, &file, b"2nd+more+end");
    ok(CHECK, "write", &file, fs.write(&file, b""));
    content(CHECK, fs, &file, b"");
    ok(CHECK, "append", &file, fs.append(&file, b"again"));
    content(CHECK, fs, &file, b"again");

    let log = dir.join("log");
    ok(CHECK, "append", &log, fs.append(&log, b"created by append"));
    content(CHECK, fs, &log, b"created by append");
    ok(CHECK, "sync_file", &log, fs.sync_file(&log));
    ok(CHECK, "append", &log, fs.append(&log, b"!"));
    content(CHECK, fs, &log, b"created by append!");

    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let big = dir.join("binary");
    ok(CHECK, "write", &big, fs.write(&big, &binary));
    content(CHECK, fs, &big, &binary);
    names(CHECK, fs, &dir, &["binary", "file", "log"]);
}

/// An append after the file was replaced, truncated, renamed away or removed goes to the
/// file now under the name (the real filesystem caches append handles by path).
pub fn check_append_after_replace(fs: &dyn FileSystem, root: &Path) {
    const CHECK: &str = "append_after_replace";
    let dir = check_dir(fs, root, CHECK);
    let log = dir.join("log");
    ok(CHECK, "append", &log, fs.append(&log, b"a"));
    ok(
        CHECK,
        "replace_atomically",
        &log,
        fs.replace_atomically(&log, b"new"),
    );
    ok(CHECK, "append", &log, fs.append(&log, b"+b"));
    content(CHECK, fs, &log, b"new+b");

    ok(CHECK, "truncate", &log, fs.truncate(&log, 1));
    ok(CHECK, "append", &log, fs.append(&log, b"+c"));
    content(CHECK, fs, &log, b"n+c");

    let other = dir.join("other");
    ok(CHECK, "write", &other, fs.write(&other, b"other"));
    ok(CHECK, "rename", &other, fs.rename(&other, &log));
    ok(CHECK, "append", &log, fs.append(&log, b"+d"));
    content(CHECK, fs, &log, b"other+d");

    let moved = dir.join("moved");
    ok(CHECK, "rename", &log, fs.rename(&log, &moved));
    ok(CHECK, "append", &log, fs.append(&log, b"fresh"));
    content(CHECK, fs, &log, b"fresh");
    content(CHECK, fs, &moved, b"other+d");

    ok(CHECK, "remove_file", &log, fs.remove_file(&log));
    ok(CHECK, "append", &log, fs.append(&log, b"after remove"));
    content(CHECK, fs, &log, b"after remove");

    let sub = dir.join("sub");
    let inner = sub.join("log");
    ok(CHECK, "create_dir", &sub, fs.create_dir(&sub));
    ok(CHECK, "append", &inner, fs.append(&inner, b"x"));
    ok(CHECK, "remove_dir_all", &sub, fs.remove_dir_all(&sub));
    ok(CHECK, "create_dir", &sub, fs.create_dir(&sub));
    ok(CHECK, "append", &inner, fs.append(&inner, b"y"));
    content(CHECK, fs, &inner, b"y");
}

/// `append_existing` appends to the file now under the path, as `append` does, and
/// answers `false` without creating anything when `exists` would say there is none
/// (docs/recovery-latency.md P56).
pub fn check_append_existing(fs: &dyn FileSystem, root: &Path) {
    const CHECK: &str = "append_existing";
    let dir = check_dir(fs, root, CHECK);
    let log = dir.join("log");
    let appended = |path: &Path, data: &[u8]| {
        ok(
            CHECK,
            "append_existing",
            path,
            fs.append_existing(path, data),
        )
    };
    assert!(
        !appended(&log, b"x"),
        "conformance {CHECK}: appended to a missing file"
    );
    present(CHECK, fs, &log, false);
    let deeper = dir.join("missing").join("log");
    assert!(
        !appended(&deeper, b"x"),
        "conformance {CHECK}: appended under a missing directory"
    );
    present(CHECK, fs, &dir.join("missing"), false);

    ok(CHECK, "write", &log, fs.write(&log, b"h"));
    assert!(
        appended(&log, b"+a"),
        "conformance {CHECK}: no append to an existing file"
    );
    assert!(
        appended(&log, b"+b"),
        "conformance {CHECK}: no second append"
    );
    content(CHECK, fs, &log, b"h+a+b");

    ok(
        CHECK,
        "replace_atomically",
        &log,
        fs.replace_atomically(&log, b"new"),
    );
    assert!(
        appended(&log, b"+c"),
        "conformance {CHECK}: no append after a replace"
    );
    content(CHECK, fs, &log, b"new+c");

    ok(CHECK, "remove_file", &log, fs.remove_file(&log));
    assert!(
        !appended(&log, b"x"),
        "conformance {CHECK}: appended to a removed file"
    );
    present(CHECK, fs, &log, false);

    let file = dir.join("file");
    ok(CHECK, "write", &file, fs.write(&file, b"f"));
    assert!(
        !appended(&file.join("under"), b"x"),
        "conformance {CHECK}: appended under a file"
    );
    fails_with(
        CHECK,
        "append_existing to a directory",
        &dir,
        fs.append_existing(&dir, b"x"),
        io::ErrorKind::IsADirectory,
    );
}

/// An append or sync through a path whose meaning changed since the last append (the
/// directory it went through was removed and made again, or moved away and replaced)
/// goes to the file now under the path, as the contract's path-based calls say.
///
/// Not in [`CHECKS`]: [`super::real::RealFs`] caches append handles by path and only
/// forgets those under a path it renames or removes, so an append through a symlink
/// (`runs/latest/log`) after `runs/c1` was removed lands in the unlinked file and is
/// lost, and `sync_file` then reports success for it.
pub fn check_append_when_the_path_changes_meaning(fs: &dyn FileSystem, root: &Path) {
    const CHECK: &str = "append_when_the_path_changes_meaning";
    let dir = check_dir(fs, root, CHECK);
    let run = dir.join("c1");
    ok(CHECK, "create_dir", &run, fs.create_dir(&run));
    let latest = dir.join("latest");
    ok(
        CHECK,
        "symlink",
        &latest,
        fs.symlink(Path::new("c1"), &latest),
    );
    let log = latest.join("log");
    ok(CHECK, "append", &log, fs.append(&log, b"a"));

    ok(CHECK, "remove_dir_all", &run, fs.remove_dir_all(&run));
    ok(CHECK, "create_dir", &run, fs.create_dir(&run));
    ok(CHECK, "append", &log, fs.append(&log, b"b"));
    ok(CHECK, "sync_file", &log, fs.sync_file(&log));
    content(CHECK, fs, &run.join("log"), b"b");

    let old = dir.join("c0");
    ok(CHECK, "rename", &run, fs.rename(&run, &old));
    ok(CHECK, "create_dir", &run, fs.create_dir(&run));
    ok(CHECK, "append", &log, fs.append(&log, b"c"));
    content(CHECK, fs, &run.join("log"), b"c");
    content(CHECK, fs, &old.join("log"), b"b");
}

/// `list_dir` lists every name (files, directories, symlinks, dangling ones, hidden
/// ones) in byte order, and nothing else.
pub fn check_list_dir_sorted(fs: &dyn FileSystem, root: &Path) {
    const CHECK: &str = "list_dir_sorted";
    let dir = check_dir(fs, root, CHECK);
    names(CHECK, fs, &dir, &[]);
    for name in ["b", "a", "B", "_x", "a.b", "\u{e4}", "10", "9", ".hidden"] {
        let path = dir.join(name);
        ok(CHECK, "write", &path, fs.write(&path, name.as_bytes()));
    }
    let sub = dir.join("a-dir");
    ok(CHECK, "create_dir", &sub, fs.create_dir(&sub));
    let link = dir.join("z-link");
    ok(
        CHECK,
        "symlink",
        &link,
        fs.symlink(Path::new("nowhere"), &link),
    );
    let expected = [
        ".hidden", "10", "9", "B", "_x", "a", "a-dir", "a.b", "b", "z-link", "\u{e4}",
    ];
    names(CHECK, fs, &dir, &expected);
    names(CHECK, fs, &sub, &[]);
}

/// `replace_atomically` of `file` (alone in `dir`) with `data`: the file then holds
/// `data` and the directory holds only it, no temp file.
#[track_caller]
fn replaced(fs: &dyn FileSystem, dir: &Path, file: &Path, data: &[u8]) {
    const CHECK: &str = "replace_atomically";
    ok(
        CHECK,
        "replace_atomically",
        file,
        fs.replace_atomically(file, data),
    );
    content(CHECK, fs, file, data);
    names(CHECK, fs, dir, &["checkpoint.info"]);
}

/// `replace_atomically` creates or replaces the file, leaves no temp file behind, and
/// copes with a stale temp file left by a crash.
pub fn check_replace_atomically(fs: &dyn FileSystem, root: &Path) {
    const CHECK: &str = "replace_atomically";
    let dir = check_dir(fs, root, CHECK);
    let file = dir.join("checkpoint.info");
    replaced(fs, &dir, &file, b"one");
    replaced(fs, &dir, &file, b"two");

    let temp = temp_path_for(&file);
    assert_eq!(
        temp.parent(),
        file.parent(),
        "conformance {CHECK}: the temp file must be in the same directory"
    );
    ok(
        CHECK,
        "write",
        &temp,
        fs.write(&temp, b"stale temp from a crash"),
    );
    replaced(fs, &dir, &file, b"three");
    replaced(fs, &dir, &file, b"");

    let missing = dir.join("missing").join("file");
    fails!(CHECK;
        "replace_atomically", &missing => fs.replace_atomically(&missing, b"x"), NotFound;
    );
}

/// `rename` moves a file, replacing the destination; renaming a name onto itself does
/// nothing.
pub fn check_rename_replaces(fs: &dyn FileSystem, root: &Path) {
    const CHECK: &str = "rename_replaces";
    let dir = check_dir(fs, root, CHECK);
    let from = dir.join("from");
    let to = dir.join("to");
    ok(CHECK, "write", &from, fs.write(&from, b"new"));
    ok(CHECK, "write", &to, fs.write(&to, b"old"));
    ok(CHECK, "rename", &from, fs.rename(&from, &to));
    content(CHECK, fs, &to, b"new");
    present(CHECK, fs, &from, false);
    names(CHECK, fs, &dir, &["to"]);

    ok(CHECK, "rename", &to, fs.rename(&to, &to));
    content(CHECK, fs, &to, b"new");

    // Into another directory, and a symlink renamed is the link, not its target.
    let sub = dir.join("sub");
    ok(CHECK, "create_dir", &sub, fs.create_dir(&sub));
    let moved = sub.join("moved");
    ok(CHECK, "rename", &to, fs.rename(&to, &moved));
    content(CHECK, fs, &moved, b"new");
    let link = dir.join("link");
    ok(
        CHECK,
        "symlink",
        &link,
        fs.symlink(Path::new("sub/moved"), &link),
    );
    let renamed = dir.join("renamed-link");
    ok(CHECK, "rename", &link, fs.rename(&link, &renamed));
    let target = ok(CHECK, "read_link", &renamed, fs.read_link(&renamed));
    assert_eq!(
        target,
        Path::new("sub/moved"),
        "conformance {CHECK}: read_link"
    );
    content(CHECK, fs, &renamed, b"new");
    names(CHECK, fs, &dir, &["renamed-link", "sub"]);
    names(CHECK, fs, &sub, &["moved"]);
}

/// Renaming a directory moves everything below it; the kernel's refusals (a non-empty
/// destination, a destination inside the source, a file over a directory and back) come
/// with std's error kinds.
pub fn check_rename_directory(fs: &dyn FileSystem, root: &Path) {
    const CHECK: &str = "rename_directory";
    let dir = check_dir(fs, root, CHECK);
    let a = dir.join("a");
    let deep = a.join("sub").join("deep");
    ok(CHECK, "create_dir", &a, fs.create_dir(&a));
    ok(
        CHECK,
        "create_dir",
        &a.join("sub"),
        fs.create_dir(&a.join("sub")),
    );
    ok(CHECK, "create_dir", &deep, fs.create_dir(&deep));
    ok(
        CHECK,
        "write",
        &deep.join("f"),
        fs.write(&deep.join("f"), b"deep"),
    );
    ok(CHECK, "write", &a.join("g"), fs.write(&a.join("g"), b"top"));

    let b = dir.join("b");
    ok(CHECK, "rename", &a, fs.rename(&a, &b));
    present(CHECK, fs, &a, false);
    content(CHECK, fs, &b.join("sub").join("deep").join("f"), b"deep");
    content(CHECK, fs, &b.join("g"), b"top");
    names(CHECK, fs, &b, &["g", "sub"]);

    // Over an empty directory: replaced.
    let empty = dir.join("empty");
    ok(CHECK, "create_dir", &empty, fs.create_dir(&empty));
    ok(CHECK, "rename", &b, fs.rename(&b, &empty));
    content(CHECK, fs, &empty.join("g"), b"top");
    names(CHECK, fs, &dir, &["empty"]);

    let full = dir.join("full");
    ok(CHECK, "create_dir", &full, fs.create_dir(&full));
    ok(
        CHECK,
        "write",
        &full.join("x"),
        fs.write(&full.join("x"), b"x"),
    );
    fails!(CHECK;
        "rename onto a non-empty directory", &full => fs.rename(&empty, &full), DirectoryNotEmpty;
    );
    let inside = empty.join("sub").join("inside");
    fails!(CHECK;
        "rename into itself", &inside => fs.rename(&empty, &inside), InvalidInput;
    );
    let file = dir.join("file");
    ok(CHECK, "write", &file, fs.write(&file, b"file"));
    fails!(CHECK;
        "rename a file over a directory", &full => fs.rename(&file, &full), IsADirectory;
        "rename a directory over a file", &file => fs.rename(&full, &file), NotADirectory;
    );
    content(CHECK, fs, &file, b"file");
    content(CHECK, fs, &full.join("x"), b"x");
    content(
        CHECK,
        fs,
        &empty.join("sub").join("deep").join("f"),
        b"deep",
    );
}

/// `symlink` stores its target verbatim (relative or absolute, existing or not);
/// `read_link` returns it; reads and writes through the link reach the target.
pub fn check_symlink_read_link(fs: &dyn FileSystem, root: &Path) {
    const CHECK: &str = "symlink_read_link";
    let dir = check_dir(fs, root, CHECK);
    let target = dir.join("target");
    ok(
        CHECK,
        "write",
        &target,
        fs.write(&target, b"through the link"),
    );

    let relative = dir.join("relative");
    ok(
        CHECK,
        "symlink",
        &relative,
        fs.symlink(Path::new("target"), &relative),
    );
    let read = ok(CHECK, "read_link", &relative, fs.read_link(&relative));
    assert_eq!(read, Path::new("target"), "conformance {CHECK}: read_link");
    content(CHECK, fs, &relative, b"through the link");

    let absolute = dir.join("absolute");
    ok(CHECK, "symlink", &absolute, fs.symlink(&target, &absolute));
    let read = ok(CHECK, "read_link", &absolute, fs.read_link(&absolute));
    assert_eq!(read, target, "conformance {CHECK}: read_link");
    content(CHECK, fs, &absolute, b"through the link");

    // A link to a link.
    let chain = dir.join("chain");
    ok(
        CHECK,
        "symlink",
        &chain,
        fs.symlink(Path::new("relative"), &chain),
    );
    content(CHECK, fs, &chain, b"through the link");

    // Writing through a link writes the target; writing through a dangling link creates
    // its target.
    ok(CHECK, "write", &chain, fs.write(&chain, b"rewritten"));
    content(CHECK, fs, &target, b"rewritten");
    ok(CHECK, "append", &absolute, fs.append(&absolute, b"+"));
    content(CHECK, fs, &target, b"rewritten+");
    let dangling = dir.join("dangling");
    ok(
        CHECK,
        "symlink",
        &dangling,
        fs.symlink(Path::new("created"), &dangling),
    );
    ok(CHECK, "write", &dangling, fs.write(&dangling, b"made"));
    content(CHECK, fs, &dir.join("created"), b"made");

    fails!(CHECK;
        "symlink over an existing name", &relative =>
            fs.symlink(Path::new("elsewhere"), &relative), AlreadyExists;
        "read_link of a file", &target => fs.read_link(&target), InvalidInput;
        "read_link of a directory", &dir => fs.read_link(&dir), InvalidInput;
    );
    let missing = dir.join("missing");
    fails!(CHECK;
        "read_link", &missing => fs.read_link(&missing), NotFound;
    );
}

/// `exists` and `is_dir` follow symlinks: a dangling link does not exist (yet it can
/// still be read with `read_link` and removed).
pub fn check_exists_follows_symlinks(fs: &dyn FileSystem, root: &Path) {
    const CHECK: &str = "exists_follows_symlinks";
    let dir = check_dir(fs, root, CHECK);
    let sub = dir.join("sub");
    ok(CHECK, "create_dir", &sub, fs.create_dir(&sub));
    let file = dir.join("file");
    ok(CHECK, "write", &file, fs.write(&file, b"f"));

    let to_dir = dir.join("to-dir");
    ok(
        CHECK,
        "symlink",
        &to_dir,
        fs.symlink(Path::new("sub"), &to_dir),
    );
    let to_file = dir.join("to-file");
    ok(
        CHECK,
        "symlink",
        &to_file,
        fs.symlink(Path::new("file"), &to_file),
    );
    let dangling = dir.join("dangling");
    ok(
        CHECK,
        "symlink",
        &dangling,
        fs.symlink(Path::new("nothing"), &dangling),
    );

    present(CHECK, fs, &to_dir, true);
    present(CHECK, fs, &to_file, true);
    present(CHECK, fs, &dangling, false);
    present(CHECK, fs, &dir.join("nothing"), false);
    assert!(
        fs.is_dir(&to_dir),
        "conformance {CHECK}: is_dir of a link to a directory"
    );
    assert!(
        fs.is_dir(&sub),
        "conformance {CHECK}: is_dir of a directory"
    );
    assert!(
        !fs.is_dir(&to_file),
        "conformance {CHECK}: is_dir of a link to a file"
    );
    assert!(!fs.is_dir(&file), "conformance {CHECK}: is_dir of a file");
    assert!(
        !fs.is_dir(&dangling),
        "conformance {CHECK}: is_dir of a dangling link"
    );

    let read = ok(CHECK, "read_link", &dangling, fs.read_link(&dangling));
    assert_eq!(read, Path::new("nothing"), "conformance {CHECK}: read_link");
    fails!(CHECK;
        "read through a dangling link", &dangling => fs.read(&dangling), NotFound;
    );
    ok(CHECK, "remove_file", &dangling, fs.remove_file(&dangling));
    names(CHECK, fs, &dir, &["file", "sub", "to-dir", "to-file"]);
}

/// A symlink in the middle of a path is followed (`runs/latest/file` with `latest`
/// pointing at a run directory), relative to the link's directory; `..` after a link
/// goes to the parent of the directory the link points at.
pub fn check_symlink_in_middle_component(fs: &dyn FileSystem, root: &Path) {
    const CHECK: &str = "symlink_in_middle_component";
    let dir = check_dir(fs, root, CHECK);
    let runs = dir.join("runs");
    let run = runs.join("c1");
    ok(CHECK, "create_dir", &runs, fs.create_dir(&runs));
    ok(CHECK, "create_dir", &run, fs.create_dir(&run));
    ok(
        CHECK,
        "write",
        &run.join("file"),
        fs.write(&run.join("file"), b"in c1"),
    );
    let latest = runs.join("latest");
    ok(
        CHECK,
        "symlink",
        &latest,
        fs.symlink(Path::new("c1"), &latest),
    );

    let through = latest.join("file");
    content(CHECK, fs, &through, b"in c1");
    present(CHECK, fs, &through, true);
    names(CHECK, fs, &latest, &["file"]);
    ok(
        CHECK,
        "write",
        &latest.join("new"),
        fs.write(&latest.join("new"), b"n"),
    );
    content(CHECK, fs, &run.join("new"), b"n");
    let nested = latest.join("pids");
    ok(CHECK, "create_dir", &nested, fs.create_dir(&nested));
    assert!(
        fs.is_dir(&run.join("pids")),
        "conformance {CHECK}: create_dir through a link"
    );
    ok(
        CHECK,
        "replace_atomically",
        &nested.join("forked.pid"),
        fs.replace_atomically(&nested.join("forked.pid"), b"1 2 boot"),
    );
    content(CHECK, fs, &run.join("pids").join("forked.pid"), b"1 2 boot");
    ok(CHECK, "sync_dir", &latest, fs.sync_dir(&latest));

    // A link to a link to a directory, and an absolute link.
    let chain = dir.join("chain");
    ok(
        CHECK,
        "symlink",
        &chain,
        fs.symlink(Path::new("runs/latest"), &chain),
    );
    content(CHECK, fs, &chain.join("file"), b"in c1");
    let absolute = dir.join("absolute");
    ok(CHECK, "symlink", &absolute, fs.symlink(&runs, &absolute));
    content(CHECK, fs, &absolute.join("latest").join("file"), b"in c1");

    // `..` after a link is the parent of its target (`runs`), not of the link.
    let up = latest.join("..").join("c1").join("file");
    content(CHECK, fs, &up, b"in c1");

    // Repointing the link (as the store does: a new link renamed over the old one).
    let run2 = runs.join("c2");
    ok(CHECK, "create_dir", &run2, fs.create_dir(&run2));
    ok(
        CHECK,
        "write",
        &run2.join("file"),
        fs.write(&run2.join("file"), b"in c2"),
    );
    let temp = temp_path_for(&latest);
    ok(CHECK, "symlink", &temp, fs.symlink(Path::new("c2"), &temp));
    ok(CHECK, "rename", &temp, fs.rename(&temp, &latest));
    content(CHECK, fs, &through, b"in c2");
    names(CHECK, fs, &runs, &["c1", "c2", "latest"]);

    // A file in the middle of a path.
    let under_file = run.join("file").join("x");
    fails!(CHECK;
        "read under a file", &under_file => fs.read(&under_file), NotADirectory;
    );
    present(CHECK, fs, &under_file, false);
}

/// A symlink loop is an error, not a hang, and does not exist.
pub fn check_symlink_loop(fs: &dyn FileSystem, root: &Path) {
    const CHECK: &str = "symlink_loop";
    let dir = check_dir(fs, root, CHECK);
    let a = dir.join("a");
    let b = dir.join("b");
    ok(CHECK, "symlink", &a, fs.symlink(Path::new("b"), &a));
    ok(CHECK, "symlink", &b, fs.symlink(Path::new("a"), &b));
    let own = dir.join("self");
    ok(CHECK, "symlink", &own, fs.symlink(Path::new("self"), &own));
    for path in [a.clone(), own.clone(), a.join("file")] {
        present(CHECK, fs, &path, false);
        assert!(
            fs.read(&path).is_err(),
            "conformance {CHECK}: read '{}' through a loop succeeded",
            path.display()
        );
        assert!(!fs.is_dir(&path), "conformance {CHECK}: is_dir of a loop");
    }
    assert!(
        fs.write(&own, b"x").is_err(),
        "conformance {CHECK}: write through a loop succeeded"
    );
    ok(CHECK, "remove_file", &own, fs.remove_file(&own));
    names(CHECK, fs, &dir, &["a", "b"]);
}

/// `remove_file` removes a file or a symlink (never its target) and refuses a directory.
pub fn check_remove_file(fs: &dyn FileSystem, root: &Path) {
    const CHECK: &str = "remove_file";
    let dir = check_dir(fs, root, CHECK);
    let file = dir.join("file");
    ok(CHECK, "write", &file, fs.write(&file, b"f"));
    let link = dir.join("link");
    ok(
        CHECK,
        "symlink",
        &link,
        fs.symlink(Path::new("file"), &link),
    );
    ok(CHECK, "remove_file", &link, fs.remove_file(&link));
    content(CHECK, fs, &file, b"f");
    ok(CHECK, "remove_file", &file, fs.remove_file(&file));
    present(CHECK, fs, &file, false);
    fails!(CHECK;
        "remove_file of a removed file", &file => fs.remove_file(&file), NotFound;
    );
    let sub = dir.join("sub");
    ok(CHECK, "create_dir", &sub, fs.create_dir(&sub));
    fails!(CHECK;
        "remove_file of a directory", &sub => fs.remove_file(&sub), IsADirectory;
    );
    names(CHECK, fs, &dir, &["sub"]);
}

/// `remove_dir_all` removes a tree without following the symlinks in it; on a symlink it
/// removes the link only; on a file it fails.
pub fn check_remove_dir_all(fs: &dyn FileSystem, root: &Path) {
    const CHECK: &str = "remove_dir_all";
    let dir = check_dir(fs, root, CHECK);
    let keep = dir.join("keep");
    ok(CHECK, "create_dir", &keep, fs.create_dir(&keep));
    ok(
        CHECK,
        "write",
        &keep.join("precious"),
        fs.write(&keep.join("precious"), b"p"),
    );

    let tree = dir.join("tree");
    let deep = tree.join("a").join("b");
    ok(
        CHECK,
        "create_dir_all_durably",
        &deep,
        fs.create_dir_all_durably(&deep),
    );
    ok(
        CHECK,
        "write",
        &deep.join("f"),
        fs.write(&deep.join("f"), b"f"),
    );
    ok(
        CHECK,
        "write",
        &tree.join("g"),
        fs.write(&tree.join("g"), b"g"),
    );
    let inner_link = tree.join("a").join("to-keep");
    ok(
        CHECK,
        "symlink",
        &inner_link,
        fs.symlink(&keep, &inner_link),
    );
    ok(CHECK, "remove_dir_all", &tree, fs.remove_dir_all(&tree));
    present(CHECK, fs, &tree, false);
    content(CHECK, fs, &keep.join("precious"), b"p");

    let link = dir.join("link-to-keep");
    ok(
        CHECK,
        "symlink",
        &link,
        fs.symlink(Path::new("keep"), &link),
    );
    ok(CHECK, "remove_dir_all", &link, fs.remove_dir_all(&link));
    content(CHECK, fs, &keep.join("precious"), b"p");
    names(CHECK, fs, &dir, &["keep"]);

    let file = keep.join("precious");
    fails!(CHECK;
        "remove_dir_all of a file", &file => fs.remove_dir_all(&file), NotADirectory;
        "remove_dir_all of a removed tree", &tree => fs.remove_dir_all(&tree), NotFound;
    );
    let empty = dir.join("empty");
    ok(CHECK, "create_dir", &empty, fs.create_dir(&empty));
    ok(CHECK, "remove_dir_all", &empty, fs.remove_dir_all(&empty));
    names(CHECK, fs, &dir, &["keep"]);
}

/// `truncate` cuts a file, or extends it with zeroes.
pub fn check_truncate(fs: &dyn FileSystem, root: &Path) {
    const CHECK: &str = "truncate";
    let dir = check_dir(fs, root, CHECK);
    let file = dir.join("file");
    ok(CHECK, "write", &file, fs.write(&file, b"0123456789"));
    ok(CHECK, "truncate", &file, fs.truncate(&file, 4));
    content(CHECK, fs, &file, b"0123");
    ok(CHECK, "truncate", &file, fs.truncate(&file, 6));
    content(CHECK, fs, &file, b"0123\0\0");
    ok(CHECK, "truncate", &file, fs.truncate(&file, 6));
    content(CHECK, fs, &file, b"0123\0\0");
    ok(CHECK, "truncate", &file, fs.truncate(&file, 0));
    content(CHECK, fs, &file, b"");
    let missing = dir.join("missing");
    fails!(CHECK;
        "truncate", &missing => fs.truncate(&missing, 0), NotFound;
    );
    present(CHECK, fs, &missing, false);
    fails!(CHECK;
        "truncate of a directory", &dir => fs.truncate(&dir, 0), IsADirectory;
    );
}

/// `create_dir` creates one level; an existing name of any kind is `AlreadyExists`.
pub fn check_create_dir(fs: &dyn FileSystem, root: &Path) {
    const CHECK: &str = "create_dir";
    let dir = check_dir(fs, root, CHECK);
    let sub = dir.join("sub");
    ok(CHECK, "create_dir", &sub, fs.create_dir(&sub));
    assert!(
        fs.is_dir(&sub),
        "conformance {CHECK}: is_dir of a new directory"
    );
    names(CHECK, fs, &sub, &[]);
    fails!(CHECK;
        "create_dir of a directory", &sub => fs.create_dir(&sub), AlreadyExists;
    );
    let file = dir.join("file");
    ok(CHECK, "write", &file, fs.write(&file, b"f"));
    fails!(CHECK;
        "create_dir of a file", &file => fs.create_dir(&file), AlreadyExists;
    );
    let dangling = dir.join("dangling");
    ok(
        CHECK,
        "symlink",
        &dangling,
        fs.symlink(Path::new("nowhere"), &dangling),
    );
    fails!(CHECK;
        "create_dir of a dangling link", &dangling => fs.create_dir(&dangling), AlreadyExists;
    );
    present(CHECK, fs, &dir.join("nowhere"), false);
    let orphan = dir.join("missing").join("sub");
    fails!(CHECK;
        "create_dir without a parent", &orphan => fs.create_dir(&orphan), NotFound;
    );
    let under_file = file.join("sub");
    fails!(CHECK;
        "create_dir under a file", &under_file => fs.create_dir(&under_file), NotADirectory;
    );
}

/// `create_dir_all_durably` creates every missing level, is idempotent, and goes through
/// symlinked directories.
pub fn check_create_dir_all_durably(fs: &dyn FileSystem, root: &Path) {
    const CHECK: &str = "create_dir_all_durably";
    let dir = check_dir(fs, root, CHECK);
    let deep = dir.join("a").join("b").join("c").join("d");
    ok(
        CHECK,
        "create_dir_all_durably",
        &deep,
        fs.create_dir_all_durably(&deep),
    );
    assert!(
        fs.is_dir(&deep),
        "conformance {CHECK}: is_dir '{}'",
        deep.display()
    );
    ok(
        CHECK,
        "create_dir_all_durably",
        &deep,
        fs.create_dir_all_durably(&deep),
    );
    let half = dir.join("a").join("b").join("x").join("y");
    ok(
        CHECK,
        "create_dir_all_durably",
        &half,
        fs.create_dir_all_durably(&half),
    );
    names(CHECK, fs, &dir.join("a").join("b"), &["c", "x"]);

    let link = dir.join("link");
    ok(CHECK, "symlink", &link, fs.symlink(Path::new("a"), &link));
    let through = link.join("b").join("z");
    ok(
        CHECK,
        "create_dir_all_durably",
        &through,
        fs.create_dir_all_durably(&through),
    );
    assert!(
        fs.is_dir(&dir.join("a").join("b").join("z")),
        "conformance {CHECK}: created through a link"
    );

    let file = dir.join("file");
    ok(CHECK, "write", &file, fs.write(&file, b"f"));
    let under_file = file.join("sub");
    assert!(
        fs.create_dir_all_durably(&under_file).is_err(),
        "conformance {CHECK}: created a directory under a file"
    );
}

/// `sync_file` and `sync_dir` succeed on what exists (a directory reached through a
/// link too) and fail with `NotFound` on what does not.
pub fn check_sync(fs: &dyn FileSystem, root: &Path) {
    const CHECK: &str = "sync";
    let dir = check_dir(fs, root, CHECK);
    let file = dir.join("file");
    ok(CHECK, "write", &file, fs.write(&file, b"f"));
    ok(CHECK, "sync_file", &file, fs.sync_file(&file));
    ok(CHECK, "append", &file, fs.append(&file, b"g"));
    ok(CHECK, "sync_file", &file, fs.sync_file(&file));
    ok(CHECK, "sync_dir", &dir, fs.sync_dir(&dir));
    ok(CHECK, "sync_dir", root, fs.sync_dir(root));
    let link = dir.join("link");
    ok(CHECK, "symlink", &link, fs.symlink(Path::new("."), &link));
    ok(CHECK, "sync_dir", &link, fs.sync_dir(&link));
    content(CHECK, fs, &file, b"fg");
}

/// `sync_files` (group commit) syncs every file of a group, appended to through cached
/// handles or not, and names the first missing one by its index, with `NotFound`.
pub fn check_sync_files(fs: &dyn FileSystem, root: &Path) {
    const CHECK: &str = "sync_files";
    let dir = check_dir(fs, root, CHECK);
    let files: Vec<PathBuf> = (0..20).map(|n| dir.join(format!("log-{n:02}"))).collect();
    for (n, file) in files.iter().enumerate() {
        ok(CHECK, "write", file, fs.write(file, b"h"));
        ok(CHECK, "sync_file", file, fs.sync_file(file));
        if n.is_multiple_of(2) {
            ok(CHECK, "append", file, fs.append(file, b"a"));
        }
    }
    assert!(
        fs.sync_files(&[]).is_ok(),
        "conformance {CHECK}: an empty group failed"
    );
    if let Err((index, error)) = fs.sync_files(&files) {
        panic!("conformance {CHECK}: syncing the group failed at {index}: {error}");
    }
    for (n, file) in files.iter().enumerate() {
        content(
            CHECK,
            fs,
            file,
            if n.is_multiple_of(2) { b"ha" } else { b"h" },
        );
    }
    let missing = dir.join("missing");
    let group = vec![files[0].clone(), missing.clone(), files[1].clone()];
    match fs.sync_files(&group) {
        Ok(()) => panic!(
            "conformance {CHECK}: a group with '{}' succeeded",
            missing.display()
        ),
        Err((index, error)) => {
            assert_eq!(
                (index, error.kind()),
                (1, io::ErrorKind::NotFound),
                "conformance {CHECK}: a group with a missing file failed with {error}"
            );
        }
    }
}

/// Every operation on a missing path fails with `NotFound`, and so does one whose
/// parent is missing.
pub fn check_not_found(fs: &dyn FileSystem, root: &Path) {
    const CHECK: &str = "not_found";
    let dir = check_dir(fs, root, CHECK);
    let missing = dir.join("missing");
    let kind = io::ErrorKind::NotFound;
    fails_with(CHECK, "read", &missing, fs.read(&missing), kind);
    fails_with(CHECK, "sync_file", &missing, fs.sync_file(&missing), kind);
    fails_with(CHECK, "sync_dir", &missing, fs.sync_dir(&missing), kind);
    fails_with(CHECK, "read_link", &missing, fs.read_link(&missing), kind);
    fails_with(CHECK, "list_dir", &missing, fs.list_dir(&missing), kind);
    fails_with(
        CHECK,
        "remove_file",
        &missing,
        fs.remove_file(&missing),
        kind,
    );
    fails_with(
        CHECK,
        "remove_dir_all",
        &missing,
        fs.remove_dir_all(&missing),
        kind,
    );
    fails_with(CHECK, "truncate", &missing, fs.truncate(&missing, 0), kind);
    fails_with(CHECK, "modified", &missing, fs.modified(&missing), kind);
    fails_with(CHECK, "touch", &missing, fs.touch(&missing), kind);
    let elsewhere = dir.join("elsewhere");
    fails_with(
        CHECK,
        "rename",
        &missing,
        fs.rename(&missing, &elsewhere),
        kind,
    );
    present(CHECK, fs, &missing, false);
    assert!(
        !fs.is_dir(&missing),
        "conformance {CHECK}: is_dir of a missing path"
    );

    let orphan = missing.join("file");
    fails_with(CHECK, "write", &orphan, fs.write(&orphan, b"x"), kind);
    fails_with(CHECK, "append", &orphan, fs.append(&orphan, b"x"), kind);
    fails_with(CHECK, "read", &orphan, fs.read(&orphan), kind);
    fails_with(
        CHECK,
        "symlink",
        &orphan,
        fs.symlink(Path::new("x"), &orphan),
        kind,
    );
    let file = dir.join("file");
    ok(CHECK, "write", &file, fs.write(&file, b"f"));
    fails_with(CHECK, "rename", &orphan, fs.rename(&file, &orphan), kind);
    content(CHECK, fs, &file, b"f");
    fails_with(CHECK, "read", Path::new(""), fs.read(Path::new("")), kind);
    names(CHECK, fs, &dir, &["file"]);
}

/// A file where a directory is needed is `NotADirectory`; a directory where a file is
/// needed is `IsADirectory`.
pub fn check_wrong_kind_of_file(fs: &dyn FileSystem, root: &Path) {
    const CHECK: &str = "wrong_kind_of_file";
    let dir = check_dir(fs, root, CHECK);
    let file = dir.join("file");
    ok(CHECK, "write", &file, fs.write(&file, b"f"));
    fails!(CHECK;
        "list_dir of a file", &file => fs.list_dir(&file), NotADirectory;
    );
    let under = file.join("x");
    fails!(CHECK;
        "write under a file", &under => fs.write(&under, b"x"), NotADirectory;
        "append under a file", &under => fs.append(&under, b"x"), NotADirectory;
        "read of a directory", &dir => fs.read(&dir), IsADirectory;
        "write of a directory", &dir => fs.write(&dir, b"x"), IsADirectory;
        "append to a directory", &dir => fs.append(&dir, b"x"), IsADirectory;
    );
    content(CHECK, fs, &file, b"f");
}

/// `lock_exclusive` creates the lock file, refuses a second holder (even in the same
/// process) with [`LockError::Held`] naming the first, and lets the next one in once the
/// guard is dropped.
pub fn check_lock_exclusive(fs: &dyn FileSystem, root: &Path) {
    const CHECK: &str = "lock_exclusive";
    let dir = check_dir(fs, root, CHECK);
    let lock = dir.join("agent.lock");
    let first = match fs.lock_exclusive(&lock, "holder-one pid 1") {
        Ok(guard) => guard,
        Err(error) => panic!("conformance {CHECK}: first lock failed: {error}"),
    };
    present(CHECK, fs, &lock, true);
    match fs.lock_exclusive(&lock, "holder-two pid 2") {
        Ok(_) => panic!("conformance {CHECK}: a second holder got the lock"),
        Err(LockError::Held { path, holder }) => {
            assert_eq!(path, lock, "conformance {CHECK}: Held names the lock file");
            assert_eq!(
                holder, "holder-one pid 1",
                "conformance {CHECK}: Held names the first holder"
            );
        }
        Err(error) => panic!("conformance {CHECK}: second lock failed with {error}; expected Held"),
    }
    // The other lock file is another lock.
    let other = dir.join("other.lock");
    let other_guard = match fs.lock_exclusive(&other, "other") {
        Ok(guard) => guard,
        Err(error) => panic!("conformance {CHECK}: lock of another file failed: {error}"),
    };
    drop(first);
    let second = match fs.lock_exclusive(&lock, "holder-two pid 2") {
        Ok(guard) => guard,
        Err(error) => panic!("conformance {CHECK}: lock after release failed: {error}"),
    };
    match fs.lock_exclusive(&lock, "holder-three") {
        Err(LockError::Held { holder, .. }) => assert_eq!(
            holder, "holder-two pid 2",
            "conformance {CHECK}: Held names the second holder"
        ),
        Ok(_) => panic!("conformance {CHECK}: a third holder got the lock"),
        Err(error) => panic!("conformance {CHECK}: third lock failed with {error}; expected Held"),
    }
    drop(second);
    drop(other_guard);

    let orphan = dir.join("missing").join("agent.lock");
    match fs.lock_exclusive(&orphan, "nobody") {
        Err(LockError::Io { path, source }) => {
            assert_eq!(path, orphan, "conformance {CHECK}: Io names the lock file");
            assert_eq!(
                source.kind(),
                io::ErrorKind::NotFound,
                "conformance {CHECK}: lock without a parent"
            );
        }
        Ok(_) => panic!("conformance {CHECK}: locked a file in a missing directory"),
        Err(error) => panic!("conformance {CHECK}: lock without a parent failed with {error}"),
    }
}

/// `disk_usage` is a fraction in `[0, 1]` for an existing path, `NotFound` otherwise.
pub fn check_disk_usage(fs: &dyn FileSystem, root: &Path) {
    const CHECK: &str = "disk_usage";
    let dir = check_dir(fs, root, CHECK);
    let file = dir.join("file");
    ok(CHECK, "write", &file, fs.write(&file, &[7u8; 4096]));
    for path in [dir.as_path(), file.as_path(), root] {
        let usage = ok(CHECK, "disk_usage", path, fs.disk_usage(path));
        assert!(
            (0.0..=1.0).contains(&usage),
            "conformance {CHECK}: disk_usage '{}' is {usage}, outside [0, 1]",
            path.display()
        );
    }
    let missing = dir.join("missing");
    fails!(CHECK;
        "disk_usage", &missing => fs.disk_usage(&missing), NotFound;
    );
}

/// How far a file's modification time may lag behind the time `touch` sets: the kernel
/// stamps writes with a coarse clock.
const MODIFIED_SLACK: Duration = Duration::from_secs(1);

/// `modified` works on files and directories and follows symlinks; `touch` never moves
/// it backwards.
pub fn check_touch_modified(fs: &dyn FileSystem, root: &Path) {
    const CHECK: &str = "touch_modified";
    let dir = check_dir(fs, root, CHECK);
    let file = dir.join("file");
    ok(CHECK, "write", &file, fs.write(&file, b"f"));
    let written = ok(CHECK, "modified", &file, fs.modified(&file));
    ok(CHECK, "touch", &file, fs.touch(&file));
    let touched = ok(CHECK, "modified", &file, fs.modified(&file));
    assert!(
        touched + MODIFIED_SLACK >= written,
        "conformance {CHECK}: touch moved the modification time back from {written:?} to {touched:?}"
    );
    let link = dir.join("link");
    ok(
        CHECK,
        "symlink",
        &link,
        fs.symlink(Path::new("file"), &link),
    );
    let through = ok(CHECK, "modified", &link, fs.modified(&link));
    assert_eq!(
        through, touched,
        "conformance {CHECK}: modified through a link is the target's"
    );
    ok(CHECK, "modified", &dir, fs.modified(&dir));
    ok(CHECK, "touch", &dir, fs.touch(&dir));
    ok(CHECK, "modified", &dir, fs.modified(&dir));
    content(CHECK, fs, &file, b"f");
}
