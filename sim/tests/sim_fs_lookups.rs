//! The simulated disk's one-path reads (docs/recovery-latency.md P35) give exactly what
//! the whole-disk listing they replaced gave: `paths_under` the live paths of
//! `tree()` that start with the path, in the same order, and `entry` what `tree()` holds
//! at the path, on a tree with directories, files, symlinks and odd spellings.

use std::path::{Path, PathBuf};

use revenant::os::FileSystem;
use revenant_sim::fs::SimFs;

fn disk() -> SimFs {
    let fs = SimFs::new();
    for dir in [
        "/w",
        "/w/meta",
        "/w/meta/runs",
        "/w/meta/runs/r1",
        "/w/meta/runs/r1/tasks",
    ] {
        fs.create_dir(Path::new(dir)).expect("mkdir");
    }
    fs.create_dir(Path::new("/w/meta/runs/r1/tasks/t1"))
        .expect("mkdir");
    fs.write(Path::new("/w/meta/runs/r1/tasks/t1/task.info"), b"info")
        .expect("write");
    fs.create_dir(Path::new("/w/meta/runs/r2")).expect("mkdir");
    fs.write(Path::new("/w/meta/runs/r2/a"), b"a")
        .expect("write");
    fs.write(Path::new("/w/meta/runs/r2b"), b"not under r2")
        .expect("write");
    fs.symlink(
        Path::new("/w/meta/runs/r1"),
        Path::new("/w/meta/runs/latest"),
    )
    .expect("symlink");
    fs.create_dir(Path::new("/x")).expect("mkdir");
    fs
}

/// What `paths_under` gave before P35: every live path of the whole walk that starts
/// with `path`, component by component.
fn whole_walk_under(fs: &SimFs, path: &Path) -> Vec<PathBuf> {
    fs.tree()
        .into_keys()
        .filter(|live| live.starts_with(path))
        .collect()
}

const PATHS: [&str; 15] = [
    "/",
    "/w",
    "/w/",
    "/w/./meta",
    "/w/meta/runs",
    "/w/meta/runs/r2",
    "/w/meta/runs/r1/tasks/t1/task.info",
    "/w/meta/runs/latest",
    "/w/meta/runs/latest/tasks",
    "/w/meta/../meta",
    "/w/missing",
    "/w/meta/runs/r2b/below-a-file",
    "w/meta",
    "",
    ".",
];

#[test]
fn paths_under_is_the_whole_walk_filtered() {
    let fs = disk();
    for path in PATHS {
        let path = Path::new(path);
        let mut got = fs.paths_under(path);
        let mut want = whole_walk_under(&fs, path);
        // The listing is sorted; the walk's order is the walk's: compare as sets, and
        // the count (no duplicates).
        assert_eq!(got.len(), want.len(), "{}", path.display());
        got.sort();
        want.sort();
        assert_eq!(got, want, "{}", path.display());
    }
}

#[test]
fn entry_is_what_the_listing_holds() {
    let fs = disk();
    let tree = fs.tree();
    for path in PATHS {
        let path = Path::new(path);
        assert!(
            fs.entry(path) == tree.get(path).cloned(),
            "{}",
            path.display()
        );
    }
}
