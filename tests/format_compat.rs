//! Recovery across releases: the work directories under `tests/fixtures/format-v1/` were
//! written by this release's checkpoint writers (`cargo run --example sample_work_dir --
//! tests/fixtures/format-v1/sample 00000000-0000-4000-8000-000000000000`, sandboxes
//! removed) and are checked in. Every later build must recover each strictly into the same
//! tree (`NAME.inspect.json` beside it: `revenant inspect --strict --ignore-boot-id
//! --json`, the directory replaced by `<DIR>`), so that a change of the format can never
//! strand an agent's checkpoints silently: such a change needs a new format version and
//! a reader for the old one (docs/checkpoint-format.md §2.1).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::{Path, PathBuf};

use revenant::os::real::RealFs;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-v1")
}

/// Copies a fixture to a temporary directory (recovery must not depend on, or change,
/// the checked-in bytes), keeping symlinks as symlinks.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn every_checked_in_work_dir_recovers_strictly_into_the_same_tree() {
    let mut checked = 0;
    let mut names: Vec<_> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    names.sort();
    for fixture in names {
        let name = fixture.file_name().unwrap().to_string_lossy().into_owned();
        let expected_file = fixtures().join(format!("{name}.inspect.json"));
        let expected = std::fs::read_to_string(&expected_file)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_file.display()));
        let dir = tempfile::tempdir().unwrap();
        let work_dir = dir.path().join(&name);
        copy_tree(&fixture, &work_dir);
        let state = revenant::inspect::inspect(&RealFs::default(), &work_dir, true, None)
            .unwrap_or_else(|error| panic!("fixture {name} no longer recovers strictly: {error}"));
        assert!(state.is_some(), "fixture {name}: no meta directory found");
        let value = revenant::inspect::render_json(&work_dir, state.as_ref());
        let got = serde_json::to_string_pretty(&value)
            .unwrap()
            .replace(&work_dir.display().to_string(), "<DIR>");
        assert_eq!(
            got.trim(),
            expected.trim(),
            "fixture {name} recovers into another tree than release 1 wrote"
        );
        checked += 1;
    }
    assert!(checked >= 1, "no fixture under {}", fixtures().display());
}
