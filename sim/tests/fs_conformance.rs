//! The filesystem conformance suite ([`revenant::os::conformance`]) on [`SimFs`]: the
//! simulated filesystem must behave as the real one does for everything the agent uses.

use std::path::Path;

use revenant::os::{conformance, FileSystem};
use revenant_sim::fs::SimFs;

fn fresh(root: &Path) -> SimFs {
    let fs = SimFs::new();
    fs.create_dir_all_durably(root).expect("the root");
    fs
}

#[test]
fn sim_fs_passes_the_conformance_suite() {
    let root = Path::new("/conformance");
    let fs = fresh(root);
    conformance::run_all(&fs, root);
}

#[test]
fn sim_fs_passes_each_check_alone() {
    for (name, check) in conformance::CHECKS {
        eprintln!("check {name}");
        let root = Path::new("/tmp/conformance");
        let fs = fresh(root);
        check(&fs, root);
    }
}

#[test]
fn sim_fs_passes_the_suite_at_the_root_and_after_a_power_loss() {
    // At `/` itself, and again on a filesystem that went through a power loss (the
    // rebuilt tree must behave like a fresh one).
    let fs = SimFs::new();
    conformance::run_all(&fs, Path::new("/"));
    fs.power_loss_keep_all();
    let root = Path::new("/again");
    fs.create_dir(root).expect("a second root");
    conformance::run_all(&fs, root);
}

#[test]
fn sim_fs_passes_the_suite_with_a_ticking_clock() {
    use std::cell::Cell;
    use std::rc::Rc;
    use std::time::{Duration, SystemTime};

    let ticks = Rc::new(Cell::new(0u64));
    let clock_ticks = Rc::clone(&ticks);
    let fs = SimFs::with_clock(Rc::new(move || {
        clock_ticks.set(clock_ticks.get() + 1);
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + clock_ticks.get())
    }));
    let root = Path::new("/ticking");
    fs.create_dir(root).expect("the root");
    conformance::run_all(&fs, root);
    assert!(ticks.get() > 0, "the clock was never read");
}

#[test]
fn sim_fs_appends_to_the_file_now_under_the_path() {
    let root = Path::new("/conformance");
    let fs = fresh(root);
    conformance::check_append_when_the_path_changes_meaning(&fs, root);
}
