//! Simulator fidelity: a process told to die at a filesystem (or process) operation
//! ends there, at once; a recursive removal is one operation per unlink, so a death can
//! land part-way through it; an append can tear without a reboot.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::rc::Rc;

use revenant::os::FileSystem;
use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::fs::{Fault, FaultError, Op, SimFs};
use revenant_sim::scenario::{FaultKind, Scenario};
use revenant_sim::seams::{ProcessFs, SimulatedDeath};

fn armed(fs: &SimFs, ops: u64) -> (ProcessFs, Rc<Cell<bool>>) {
    let crashed = Rc::new(Cell::new(false));
    let process = ProcessFs::new(
        fs.clone(),
        Rc::new(Cell::new(Some(ops))),
        crashed.clone(),
        Rc::new(RefCell::new(None)),
    );
    (process, crashed)
}

/// A task that ignores the error of an operation (as garbage collection logs and
/// ignores its errors) still ends at the operation it dies at: nothing after it runs,
/// and the task itself is aborted.
#[test]
fn death_at_an_operation_whose_error_is_ignored_ends_the_task_there() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let fs = SimFs::new();
    fs.create_dir(Path::new("/w")).expect("mkdir");
    let crashed = Rc::new(Cell::new(false));
    let task = Rc::new(RefCell::new(None));
    let process = Rc::new(ProcessFs::new(
        fs.clone(),
        Rc::new(Cell::new(Some(1))),
        crashed.clone(),
        task.clone(),
    ));
    let ran_after = Rc::new(Cell::new(false));
    let ran = ran_after.clone();
    let outcome = local.block_on(&runtime, async move {
        let handle = tokio::task::spawn_local(async move {
            process.write(Path::new("/w/a"), b"a").expect("first op");
            // The second operation is the one it dies at; its error would be ignored.
            let _ = process.write(Path::new("/w/b"), b"b");
            ran.set(true);
            let _ = process.write(Path::new("/w/c"), b"c");
        });
        *task.borrow_mut() = Some(handle.abort_handle());
        handle.await
    });
    assert!(crashed.get(), "the process is marked dead");
    assert!(!ran_after.get(), "code after the operation it died at ran");
    let error = outcome.expect_err("the task ended abnormally");
    let payload = error.into_panic();
    assert!(payload.downcast_ref::<SimulatedDeath>().is_some());
    assert!(
        fs.exists(Path::new("/w/a")),
        "the operation before it stays"
    );
    assert!(
        !fs.exists(Path::new("/w/b")),
        "the operation it died at never happened"
    );
    assert!(!fs.exists(Path::new("/w/c")));
}

fn run_tree(fs: &SimFs) {
    for dir in [
        "/w",
        "/w/runs",
        "/w/runs/c1",
        "/w/runs/c1/pids",
        "/w/runs/c1/tasks",
    ] {
        fs.create_dir(Path::new(dir)).expect("mkdir");
    }
    fs.write(Path::new("/w/runs/c1/pids/forked.pid"), b"1001 1 boot")
        .expect("write");
    fs.write(Path::new("/w/runs/c1/tasks/task.updates"), b"u")
        .expect("write");
    fs.write(Path::new("/w/runs/c1/executor.sentinel"), b"")
        .expect("write");
    fs.symlink(Path::new("c1"), Path::new("/w/runs/latest"))
        .expect("symlink");
    fs.sync_everything();
}

/// `remove_dir_all` of a run directory is one operation per unlink, children first: a
/// death at each of them leaves a different part-way state (the last one: the run
/// directory gone, `runs/latest` dangling), and a power loss after a part-way removal
/// may keep any prefix of each directory's unlinks.
#[test]
fn recursive_removal_is_many_operations_and_a_death_can_land_part_way() {
    // c1, pids, forked.pid, tasks, task.updates, executor.sentinel: 6 unlinks.
    let unlinks = 6;
    let mut states = BTreeSet::new();
    for ops in 0..=unlinks + 1 {
        let fs = SimFs::new();
        run_tree(&fs);
        let (process, crashed) = armed(&fs, ops);
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            process.remove_dir_all(Path::new("/w/runs/c1"))
        }));
        let tree: Vec<String> = fs.tree().keys().map(|p| p.display().to_string()).collect();
        if ops <= unlinks {
            assert!(result.is_err(), "death at operation {ops} unwinds");
            assert!(crashed.get());
        } else {
            result.expect("no death").expect("removed");
            assert!(!crashed.get());
        }
        if ops == unlinks {
            // Everything below is gone, the directory itself still there.
            assert!(fs.is_dir(Path::new("/w/runs/c1")), "{tree:?}");
            assert!(fs
                .list_dir(Path::new("/w/runs/c1"))
                .expect("list")
                .is_empty());
        }
        if ops > unlinks {
            assert!(!fs.exists(Path::new("/w/runs/c1")));
            assert!(
                fs.read_link(Path::new("/w/runs/latest")).is_ok(),
                "latest dangles"
            );
        }
        states.insert(tree);
    }
    // Nothing removed (a death at the call or at the first unlink), then one state
    // after each unlink.
    assert_eq!(states.len() as u64, unlinks + 1, "{states:#?}");

    // A power loss after a death part-way keeps, per directory, a prefix of the unlinks
    // (none of them were synced): some crash state still has forked.pid, some has not.
    let mut kept = BTreeSet::new();
    for seed in 0..32u64 {
        let fs = SimFs::new();
        run_tree(&fs);
        let (process, _) = armed(&fs, 4);
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
            process.remove_dir_all(Path::new("/w/runs/c1"))
        }));
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
        fs.power_loss(&mut rng);
        kept.insert(fs.exists(Path::new("/w/runs/c1/pids/forked.pid")));
    }
    assert_eq!(kept.len(), 2, "a power loss may keep or lose the unlinks");
}

/// The plain `remove_dir_all` of the simulated disk still removes everything, as std's.
#[test]
fn plain_recursive_removal_still_removes_everything() {
    let fs = SimFs::new();
    run_tree(&fs);
    fs.remove_dir_all(Path::new("/w/runs/c1")).expect("removed");
    assert!(!fs.exists(Path::new("/w/runs/c1")));
    fs.remove_dir_all(Path::new("/w/runs/latest"))
        .expect("a symlink is removed");
    assert!(fs.list_dir(Path::new("/w/runs")).expect("list").is_empty());
    fs.check_invariants();
}

/// A torn append writes a strict prefix of its bytes, then fails; the next append is
/// whole again.
#[test]
fn a_torn_append_leaves_a_prefix_and_fails() {
    for seed in 0..16 {
        let fs = SimFs::new();
        fs.set_fault_seed(seed);
        fs.create_dir(Path::new("/w")).expect("mkdir");
        fs.write(Path::new("/w/log"), b"head").expect("write");
        fs.inject(
            Fault::new(FaultError::NoSpace)
                .on(Op::Append)
                .torn()
                .times(1),
        );
        let record = b"0123456789";
        let error = fs
            .append(Path::new("/w/log"), record)
            .expect_err("the torn append fails");
        assert_eq!(error.raw_os_error(), Some(libc_enospc()));
        let data = fs.read(Path::new("/w/log")).expect("read");
        let tail = &data[4..];
        assert!(!tail.is_empty() && tail.len() < record.len(), "{tail:?}");
        assert_eq!(tail, &record[..tail.len()]);
        fs.append(Path::new("/w/log"), b"!")
            .expect("the fault is spent");
    }
}

fn libc_enospc() -> i32 {
    28
}

/// In a whole run, a torn append of a status update stops the agent (no reboot); the
/// restarted agent cuts the partial record, and the task still ends as it should.
#[test]
fn a_torn_status_update_is_cut_by_the_restarted_agent() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scenarios")
        .join("torn_update_append_cut_on_restart.toml");
    let scenario = Scenario::load(&path).expect("scenario");
    let result = cluster::run(&scenario, 0, &RunOptions::default());
    assert!(
        result.violations.is_empty(),
        "violations: {:?}",
        result.violations
    );
    assert!(result
        .observations
        .fault_kinds
        .contains(&FaultKind::TornAppend));
    assert!(result.observations.reboots.is_empty(), "no reboot");
    assert!(
        result
            .observations
            .agent_exits
            .iter()
            .any(|(_, _, outcome)| matches!(outcome, cluster::AgentOutcome::DiskFailure(_))),
        "the agent stopped on the failed append: {:?}",
        result.observations.agent_exits
    );
}
