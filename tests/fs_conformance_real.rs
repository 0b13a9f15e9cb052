//! The filesystem conformance suite ([`revenant::os::conformance`]) on the real
//! filesystem, in a temporary directory.

use revenant::os::conformance;
use revenant::os::real::RealFs;

#[test]
fn real_fs_passes_the_conformance_suite() {
    let dir = tempfile::TempDir::new().expect("a temporary directory");
    conformance::run_all(&RealFs::default(), dir.path());
}

#[test]
fn real_fs_passes_each_check_alone() {
    // Each check on a fresh filesystem handle, so that one check's cached state (the
    // append handles) cannot hide another's failure.
    for (name, check) in conformance::CHECKS {
        let dir = tempfile::TempDir::new().expect("a temporary directory");
        eprintln!("check {name}");
        check(&RealFs::default(), dir.path());
    }
}

#[test]
fn real_fs_appends_to_the_file_now_under_the_path() {
    let dir = tempfile::TempDir::new().expect("a temporary directory");
    conformance::check_append_when_the_path_changes_meaning(&RealFs::default(), dir.path());
}
