//! Crash states of [`SimFs`]: what a power loss may and may not leave behind, checked
//! over many seeds. Each test names the rule of the durability contract it checks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::SeedableRng;
use revenant::os::{temp_path_for, FileSystem, LockError};
use revenant_sim::fs::{Entry, Fault, FaultError, Op, OpSet, SimFs};

/// Seeds per test: enough that every outcome the tests look for is reached (the choice
/// per inode is uniform over a handful of options), few enough to stay fast.
const SEEDS: u64 = 300;

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A filesystem with `dir` made and durable.
fn with_durable_dir(dir: &str) -> SimFs {
    let fs = SimFs::new();
    fs.create_dir_all_durably(Path::new(dir))
        .expect("create dir");
    fs
}

/// Writes `data` to `path` and makes both the data and the name durable.
fn write_durably(fs: &SimFs, path: &Path, data: &[u8]) {
    fs.write(path, data).expect("write");
    fs.sync_file(path).expect("sync file");
    fs.sync_dir(path.parent().expect("a parent"))
        .expect("sync dir");
}

/// Runs `setup` on a fresh filesystem, cuts the power with each seed, and collects what
/// `observe` sees after each.
fn outcomes<T: Ord>(setup: impl Fn() -> SimFs, observe: impl Fn(&SimFs) -> T) -> BTreeSet<T> {
    (0..SEEDS)
        .map(|seed| {
            let fs = setup();
            fs.power_loss(&mut rng(seed));
            observe(&fs)
        })
        .collect()
}

fn read(fs: &SimFs, path: &str) -> Option<Vec<u8>> {
    fs.read(Path::new(path)).ok()
}

#[test]
fn an_unsynced_write_is_lost_for_some_seeds_and_kept_for_others() {
    let seen = outcomes(
        || {
            let fs = with_durable_dir("/d");
            write_durably(&fs, Path::new("/d/f"), b"old");
            fs.write(Path::new("/d/f"), b"new").unwrap();
            fs
        },
        |fs| read(fs, "/d/f").expect("the name was durable"),
    );
    assert!(seen.contains(b"old".as_slice()), "never lost: {seen:?}");
    assert!(seen.contains(b"new".as_slice()), "never kept: {seen:?}");
    // A write is a truncate then an append: the legal states are the old content, the
    // truncated file, or a prefix of the new content.
    for data in &seen {
        assert!(
            data == b"old" || b"new".starts_with(data),
            "illegal content {:?}",
            String::from_utf8_lossy(data)
        );
    }
    assert!(
        seen.contains(&Vec::new()),
        "the truncated state is reachable"
    );
}

#[test]
fn an_unsynced_new_file_may_lose_its_name_its_data_or_neither() {
    let seen = outcomes(
        || {
            let fs = with_durable_dir("/d");
            fs.write(Path::new("/d/f"), b"data").unwrap();
            fs
        },
        |fs| read(fs, "/d/f"),
    );
    assert!(seen.contains(&None), "the name is never lost: {seen:?}");
    assert!(
        seen.contains(&Some(b"data".to_vec())),
        "never kept: {seen:?}"
    );
    assert!(
        seen.contains(&Some(Vec::new())),
        "the name without data: {seen:?}"
    );
}

#[test]
fn a_synced_file_whose_directory_was_not_synced_may_lose_its_name() {
    let seen = outcomes(
        || {
            let fs = with_durable_dir("/d");
            fs.write(Path::new("/d/f"), b"synced data").unwrap();
            fs.sync_file(Path::new("/d/f")).unwrap();
            fs
        },
        |fs| read(fs, "/d/f"),
    );
    assert_eq!(
        seen,
        BTreeSet::from([None, Some(b"synced data".to_vec())]),
        "the name is lost or kept, and if kept its data is whole"
    );
}

#[test]
fn a_new_directory_whose_parent_was_not_synced_may_vanish_with_its_contents() {
    let seen = outcomes(
        || {
            let fs = with_durable_dir("/d");
            fs.create_dir(Path::new("/d/new")).unwrap();
            write_durably(&fs, Path::new("/d/new/f"), b"x");
            fs
        },
        |fs| (fs.is_dir(Path::new("/d/new")), read(fs, "/d/new/f")),
    );
    assert_eq!(
        seen,
        BTreeSet::from([(false, None), (true, Some(b"x".to_vec()))])
    );
}

#[test]
fn an_unsynced_removal_may_be_undone() {
    let seen = outcomes(
        || {
            let fs = with_durable_dir("/d");
            write_durably(&fs, Path::new("/d/f"), b"keep me");
            fs.remove_file(Path::new("/d/f")).unwrap();
            fs
        },
        |fs| read(fs, "/d/f"),
    );
    assert_eq!(seen, BTreeSet::from([None, Some(b"keep me".to_vec())]));

    let fs = with_durable_dir("/d");
    write_durably(&fs, Path::new("/d/f"), b"gone");
    fs.remove_file(Path::new("/d/f")).unwrap();
    fs.sync_dir(Path::new("/d")).unwrap();
    fs.power_loss_keep_all();
    assert!(!fs.exists(Path::new("/d/f")), "a synced removal is durable");
}

/// The steps of [`FileSystem::replace_atomically`], one at a time.
fn replace_step(fs: &SimFs, path: &Path, data: &[u8], step: usize) {
    let temp = temp_path_for(path);
    match step {
        0 => fs.write(&temp, data).unwrap(),
        1 => fs.sync_file(&temp).unwrap(),
        2 => fs.rename(&temp, path).unwrap(),
        3 => fs.sync_dir(path.parent().unwrap()).unwrap(),
        _ => unreachable!(),
    }
}

#[test]
fn replace_atomically_leaves_old_or_new_content_after_a_power_loss_at_every_step() {
    let path = Path::new("/meta/slaves/a1/slave.info");
    for steps_done in 0..=4 {
        let seen = outcomes(
            || {
                let fs = with_durable_dir("/meta/slaves/a1");
                write_durably(&fs, path, b"old content");
                // Un-synced noise elsewhere in the directory must not matter.
                fs.write(&path.with_file_name("other"), b"noise").unwrap();
                for step in 0..steps_done {
                    replace_step(&fs, path, b"new content", step);
                }
                fs
            },
            |fs| fs.read(path).expect("the name always survives"),
        );
        let legal = BTreeSet::from([b"old content".to_vec(), b"new content".to_vec()]);
        assert!(seen.is_subset(&legal), "after {steps_done} steps: {seen:?}");
        if steps_done <= 2 {
            assert!(seen.contains(b"old content".as_slice()), "{seen:?}");
        }
        match steps_done {
            3 => assert_eq!(seen, legal, "after the rename both are reachable"),
            4 => assert_eq!(seen, BTreeSet::from([b"new content".to_vec()])),
            _ => {}
        }
    }
}

#[test]
fn replace_atomically_of_a_new_file_leaves_nothing_or_the_whole_file() {
    let path = Path::new("/meta/boot_id");
    for steps_done in 0..=4 {
        let seen = outcomes(
            || {
                let fs = with_durable_dir("/meta");
                for step in 0..steps_done {
                    replace_step(&fs, path, b"boot-1\n", step);
                }
                fs
            },
            |fs| fs.read(path).ok(),
        );
        assert!(
            seen.is_subset(&BTreeSet::from([None, Some(b"boot-1\n".to_vec())])),
            "after {steps_done} steps: {seen:?}"
        );
        if steps_done == 4 {
            assert_eq!(seen, BTreeSet::from([Some(b"boot-1\n".to_vec())]));
        }
    }
}

#[test]
fn replace_atomically_works_again_after_a_power_loss_left_a_temp_file() {
    let path = Path::new("/meta/f");
    for seed in 0..SEEDS {
        let fs = with_durable_dir("/meta");
        write_durably(&fs, path, b"v1");
        replace_step(&fs, path, b"v2", 0);
        replace_step(&fs, path, b"v2", 1);
        fs.power_loss(&mut rng(seed));
        fs.replace_atomically(path, b"v3").unwrap();
        fs.power_loss(&mut rng(seed + 1));
        assert_eq!(fs.read(path).unwrap(), b"v3");
        assert_eq!(fs.list_dir(Path::new("/meta")).unwrap(), ["f"]);
    }
}

#[test]
fn the_model_catches_a_rename_without_syncing_the_temp_file() {
    // The classic bug: write, rename, sync the directory, but never sync the data. The
    // name may then hold an empty or torn file.
    let path = Path::new("/meta/f");
    let seen = outcomes(
        || {
            let fs = with_durable_dir("/meta");
            write_durably(&fs, path, b"old content");
            let temp = temp_path_for(path);
            fs.write(&temp, b"new content").unwrap();
            fs.rename(&temp, path).unwrap();
            fs.sync_dir(Path::new("/meta")).unwrap();
            fs
        },
        |fs| fs.read(path).unwrap(),
    );
    assert!(seen.contains(&Vec::new()), "{seen:?}");
    assert!(
        seen.iter().any(|data| !data.is_empty() && data.len() < 11),
        "a torn file is reachable: {seen:?}"
    );
}

#[test]
fn the_model_catches_an_in_place_rewrite() {
    let path = Path::new("/meta/f");
    let seen = outcomes(
        || {
            let fs = with_durable_dir("/meta");
            write_durably(&fs, path, b"old content");
            fs.write(path, b"new content").unwrap();
            fs
        },
        |fs| fs.read(path).unwrap(),
    );
    assert!(
        seen.iter()
            .any(|data| data.as_slice() != b"old content" && data.as_slice() != b"new content"),
        "a mix is reachable: {seen:?}"
    );
}

#[test]
fn a_torn_append_keeps_a_prefix_of_the_appended_bytes_at_any_byte_boundary() {
    const HEAD: &[u8] = b"HEAD|";
    const APPENDED: &[u8] = b"0123456789";
    let seen = outcomes(
        || {
            let fs = with_durable_dir("/d");
            write_durably(&fs, Path::new("/d/log"), HEAD);
            fs.append(Path::new("/d/log"), APPENDED).unwrap();
            fs
        },
        |fs| read(fs, "/d/log").unwrap(),
    );
    let mut lengths = BTreeSet::new();
    for data in &seen {
        assert!(
            data.starts_with(HEAD),
            "the durable head was lost: {data:?}"
        );
        let tail = &data[HEAD.len()..];
        assert!(APPENDED.starts_with(tail), "not a prefix: {tail:?}");
        lengths.insert(tail.len());
    }
    assert_eq!(
        lengths,
        (0..=APPENDED.len()).collect(),
        "every byte boundary is reachable"
    );
}

#[test]
fn only_the_first_lost_append_may_be_torn() {
    // Appends A, B, C after the last sync: the file holds the head, then whole appends
    // in order, then at most part of the next one.
    let appends: [&[u8]; 3] = [b"aaaa", b"bbbb", b"cccc"];
    let legal: BTreeSet<Vec<u8>> = {
        let mut legal = BTreeSet::new();
        let mut whole = b"H".to_vec();
        for append in appends {
            for torn in 0..append.len() {
                let mut data = whole.clone();
                data.extend_from_slice(&append[..torn]);
                legal.insert(data);
            }
            whole.extend_from_slice(append);
        }
        legal.insert(whole);
        legal
    };
    let seen = outcomes(
        || {
            let fs = with_durable_dir("/d");
            write_durably(&fs, Path::new("/d/log"), b"H");
            for append in appends {
                fs.append(Path::new("/d/log"), append).unwrap();
            }
            fs
        },
        |fs| read(fs, "/d/log").unwrap(),
    );
    assert!(seen.is_subset(&legal), "{seen:?}");
    assert_eq!(seen, legal, "every legal state is reachable");
}

/// Builds a tree and makes all of it durable the way the store does (data synced, every
/// parent synced).
fn durable_tree(fs: &SimFs) {
    fs.create_dir_all_durably(Path::new("/meta/slaves/a1/frameworks/f1"))
        .unwrap();
    write_durably(fs, Path::new("/meta/slaves/a1/slave.info"), b"agent");
    write_durably(
        fs,
        Path::new("/meta/slaves/a1/frameworks/f1/framework.info"),
        b"framework",
    );
    fs.symlink(Path::new("a1"), Path::new("/meta/slaves/latest"))
        .unwrap();
    fs.sync_dir(Path::new("/meta/slaves")).unwrap();
    fs.append(Path::new("/meta/slaves/a1/log"), b"record 1;")
        .unwrap();
    fs.sync_file(Path::new("/meta/slaves/a1/log")).unwrap();
    fs.sync_dir(Path::new("/meta/slaves/a1")).unwrap();
}

#[test]
fn everything_durable_survives() {
    let reference = SimFs::new();
    durable_tree(&reference);
    assert!(reference.is_all_durable(), "{}", reference.dump());
    let durable = reference.tree();
    assert_eq!(reference.snapshot_durable(), durable);
    for seed in 0..SEEDS {
        let fs = SimFs::new();
        durable_tree(&fs);
        // Pending work beside and below the durable tree.
        fs.append(Path::new("/meta/slaves/a1/log"), b"record 2;")
            .unwrap();
        fs.write(Path::new("/meta/slaves/a1/new"), b"pending")
            .unwrap();
        fs.create_dir(Path::new("/meta/other")).unwrap();
        fs.write(Path::new("/meta/other/x"), b"x").unwrap();
        fs.power_loss(&mut rng(seed));
        let after = fs.tree();
        for (path, entry) in &durable {
            let now = after.get(path);
            if path == Path::new("/meta/slaves/a1/log") {
                let Some(Entry::File(data)) = now else {
                    panic!("seed {seed}: the log is gone");
                };
                assert!(data.starts_with(b"record 1;"), "seed {seed}: {data:?}");
            } else {
                assert_eq!(now, Some(entry), "seed {seed}: {}", path.display());
            }
        }
        // After a power loss, everything left is durable.
        assert!(fs.is_all_durable(), "seed {seed}");
        assert_eq!(fs.snapshot_durable(), after, "seed {seed}");
    }
}

#[test]
fn sync_everything_then_power_loss_changes_nothing() {
    let fs = SimFs::new();
    durable_tree(&fs);
    fs.write(Path::new("/meta/loose"), b"loose").unwrap();
    fs.sync_everything();
    let before = fs.tree();
    fs.power_loss(&mut rng(7));
    assert_eq!(fs.tree(), before);
}

#[test]
fn power_loss_extremes_are_reachable_explicitly() {
    let setup = || {
        let fs = with_durable_dir("/d");
        write_durably(&fs, Path::new("/d/f"), b"old");
        fs.write(Path::new("/d/f"), b"new").unwrap();
        fs.write(Path::new("/d/g"), b"g").unwrap();
        fs
    };
    let fs = setup();
    let report = fs.power_loss_durable_only();
    assert_eq!(read(&fs, "/d/f").unwrap(), b"old");
    assert!(!fs.exists(Path::new("/d/g")));
    assert_eq!(report.file_ops_kept, 0);
    assert_eq!(report.dir_ops_kept, 0);

    let fs = setup();
    let before = fs.tree();
    let report = fs.power_loss_keep_all();
    assert_eq!(fs.tree(), before);
    assert_eq!(report.file_ops_kept, report.file_ops_pending);
}

#[test]
fn a_failed_fsync_leaves_the_data_non_durable() {
    let fs = with_durable_dir("/d");
    write_durably(&fs, Path::new("/d/log"), b"durable;");
    fs.append(Path::new("/d/log"), b"pending;").unwrap();
    fs.fail_next_file_syncs(1);
    let error = fs.sync_file(Path::new("/d/log")).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(libc_eio()));
    assert_eq!(
        read(&fs, "/d/log").unwrap(),
        b"durable;pending;",
        "reads see it"
    );
    assert_eq!(
        fs.snapshot_durable()[Path::new("/d/log")],
        Entry::File(b"durable;".to_vec()),
        "not durable after the failed sync"
    );
    fs.power_loss_durable_only();
    assert_eq!(read(&fs, "/d/log").unwrap(), b"durable;");

    // The fault was spent: the next sync works and makes the data durable.
    fs.append(Path::new("/d/log"), b"again;").unwrap();
    fs.sync_file(Path::new("/d/log")).unwrap();
    fs.power_loss_durable_only();
    assert_eq!(read(&fs, "/d/log").unwrap(), b"durable;again;");
}

fn libc_eio() -> i32 {
    FaultError::Io.to_io_error().raw_os_error().unwrap()
}

#[test]
fn a_failed_directory_sync_leaves_the_names_non_durable() {
    let fs = with_durable_dir("/d");
    write_durably(&fs, Path::new("/d/old"), b"old");
    fs.write(Path::new("/d/new"), b"new").unwrap();
    fs.sync_file(Path::new("/d/new")).unwrap();
    fs.inject(Fault::new(FaultError::Io).on(Op::SyncDir).times(1));
    assert!(fs.sync_dir(Path::new("/d")).is_err());
    fs.power_loss_durable_only();
    assert_eq!(fs.list_dir(Path::new("/d")).unwrap(), ["old"]);
}

#[test]
fn injected_faults_fail_before_any_effect() {
    let fs = with_durable_dir("/d");
    write_durably(&fs, Path::new("/d/f"), b"before");
    fs.fail_next(3, FaultError::NoSpace);
    let kinds: Vec<_> = [
        fs.write(Path::new("/d/f"), b"after"),
        fs.append(Path::new("/d/f"), b"after"),
        fs.rename(Path::new("/d/f"), Path::new("/d/g")),
    ]
    .into_iter()
    .map(|result| result.unwrap_err().kind())
    .collect();
    assert_eq!(kinds, [std::io::ErrorKind::StorageFull; 3]);
    assert_eq!(read(&fs, "/d/f").unwrap(), b"before");
    assert!(fs.is_all_durable(), "{}", fs.dump());
    // Spent: the fourth operation works.
    fs.write(Path::new("/d/f"), b"after").unwrap();
    assert_eq!(fs.counters().faults_injected, 3);
}

#[test]
fn faults_can_be_limited_to_a_path_prefix_and_to_kinds_of_operation() {
    let fs = with_durable_dir("/meta");
    fs.create_dir(Path::new("/work")).unwrap();
    fs.inject(
        Fault::new(FaultError::Io)
            .on(OpSet::WRITES.union(OpSet::SYNCS))
            .under("/meta"),
    );
    assert!(fs.write(Path::new("/meta/f"), b"x").is_err());
    assert!(fs.sync_dir(Path::new("/meta")).is_err());
    fs.write(Path::new("/work/f"), b"x").unwrap();
    fs.sync_dir(Path::new("/work")).unwrap();
    // Reads are not in the set.
    fs.list_dir(Path::new("/meta")).unwrap();
    // A rename matches on either side.
    fs.inject(Fault::new(FaultError::Io).on(Op::Rename).under("/meta"));
    assert!(fs
        .rename(Path::new("/work/f"), Path::new("/meta/f"))
        .is_err());
    fs.clear_faults();
    fs.write(Path::new("/meta/f"), b"x").unwrap();
}

#[test]
fn probabilistic_faults_follow_the_fault_seed() {
    let run = |seed: u64| -> Vec<bool> {
        let fs = with_durable_dir("/d");
        fs.set_fault_seed(seed);
        fs.inject(
            Fault::new(FaultError::Io)
                .on(Op::Append)
                .with_probability(0.3),
        );
        (0..200)
            .map(|_| fs.append(Path::new("/d/log"), b"x").is_err())
            .collect()
    };
    let first = run(42);
    assert_eq!(first, run(42), "same seed, same faults");
    assert_ne!(first, run(43), "another seed, other faults");
    let failed = first.iter().filter(|&&failed| failed).count();
    assert!(
        (30..=90).contains(&failed),
        "{failed} of 200 failed at p = 0.3"
    );
}

#[test]
fn counters_count_every_call() {
    let fs = with_durable_dir("/d");
    fs.reset_counters();
    fs.replace_atomically(Path::new("/d/f"), b"x").unwrap();
    fs.read(Path::new("/d/f")).unwrap();
    let _ = fs.read(Path::new("/d/missing"));
    let counters = fs.counters();
    assert_eq!(counters.reads(), 2);
    assert_eq!(counters.writes(), 1);
    assert_eq!(counters.syncs(), 2);
    assert_eq!(counters.count(Op::Rename), 1);
    assert_eq!(counters.total(), 6);
}

/// A workload with pending operations of every kind, for determinism checks.
fn busy(fs: &SimFs) {
    durable_tree(fs);
    for index in 0..20 {
        let dir = PathBuf::from(format!("/meta/runs/r{}", index % 4));
        fs.create_dir_all_durably(&dir).unwrap();
        fs.append(&dir.join("log"), format!("record {index};").as_bytes())
            .unwrap();
        if index % 3 == 0 {
            fs.sync_file(&dir.join("log")).unwrap();
        }
        fs.write(&dir.join(format!("f{index}")), b"some data")
            .unwrap();
        if index % 5 == 0 {
            fs.rename(&dir.join(format!("f{index}")), Path::new("/meta/moved"))
                .unwrap();
        }
        if index % 7 == 0 {
            let _ = fs.remove_file(Path::new("/meta/slaves/latest"));
            fs.symlink(
                Path::new(&format!("r{index}")),
                Path::new("/meta/slaves/latest"),
            )
            .unwrap();
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_tree() {
    let mut distinct = BTreeSet::new();
    for seed in 0..50 {
        let first = SimFs::new();
        busy(&first);
        let report = first.power_loss(&mut rng(seed));
        let second = SimFs::new();
        busy(&second);
        assert_eq!(second.power_loss(&mut rng(seed)), report, "seed {seed}");
        assert_eq!(first.tree(), second.tree(), "seed {seed}");
        assert_eq!(first.dump(), second.dump(), "seed {seed}");
        distinct.insert(first.dump());
    }
    assert!(
        distinct.len() > 10,
        "seeds barely matter: {}",
        distinct.len()
    );
}

#[test]
fn a_rename_within_one_directory_is_atomic() {
    let seen = outcomes(
        || {
            let fs = with_durable_dir("/d");
            write_durably(&fs, Path::new("/d/a"), b"file");
            fs.rename(Path::new("/d/a"), Path::new("/d/b")).unwrap();
            fs
        },
        |fs| fs.list_dir(Path::new("/d")).unwrap(),
    );
    assert_eq!(
        seen,
        BTreeSet::from([vec!["a".to_owned()], vec!["b".to_owned()]])
    );
}

#[test]
fn each_side_of_a_rename_across_directories_follows_its_own_directory() {
    let names = |fs: &SimFs| {
        (
            fs.list_dir(Path::new("/from")).unwrap(),
            fs.list_dir(Path::new("/to")).unwrap(),
        )
    };
    let seen = outcomes(
        || {
            let fs = SimFs::new();
            fs.create_dir_all_durably(Path::new("/from")).unwrap();
            fs.create_dir_all_durably(Path::new("/to")).unwrap();
            write_durably(&fs, Path::new("/from/f"), b"file");
            fs.rename(Path::new("/from/f"), Path::new("/to/f")).unwrap();
            fs
        },
        names,
    );
    let none: Vec<String> = Vec::new();
    let f = vec!["f".to_owned()];
    assert_eq!(
        seen,
        BTreeSet::from([
            (f.clone(), none.clone()),
            (none.clone(), f.clone()),
            (f.clone(), f.clone()),
            (none.clone(), none.clone()),
        ])
    );

    // Syncing both directories makes the move durable.
    let fs = SimFs::new();
    fs.create_dir_all_durably(Path::new("/from")).unwrap();
    fs.create_dir_all_durably(Path::new("/to")).unwrap();
    write_durably(&fs, Path::new("/from/f"), b"file");
    fs.rename(Path::new("/from/f"), Path::new("/to/f")).unwrap();
    fs.sync_dir(Path::new("/from")).unwrap();
    fs.sync_dir(Path::new("/to")).unwrap();
    fs.power_loss_durable_only();
    assert_eq!(names(&fs), (none, f));
}

#[test]
fn a_directory_moved_across_directories_stays_a_tree() {
    for seed in 0..SEEDS {
        let fs = SimFs::new();
        fs.create_dir_all_durably(Path::new("/from/dir")).unwrap();
        fs.create_dir_all_durably(Path::new("/to")).unwrap();
        write_durably(&fs, Path::new("/from/dir/f"), b"file");
        fs.rename(Path::new("/from/dir"), Path::new("/to/dir"))
            .unwrap();
        fs.power_loss(&mut rng(seed));
        let dirs = [Path::new("/from/dir"), Path::new("/to/dir")]
            .into_iter()
            .filter(|dir| fs.is_dir(dir))
            .count();
        assert!(
            dirs <= 1,
            "seed {seed}: a directory under two names\n{}",
            fs.dump()
        );
        if dirs == 1 {
            let dir = if fs.is_dir(Path::new("/from/dir")) {
                "/from/dir/f"
            } else {
                "/to/dir/f"
            };
            assert_eq!(read(&fs, dir).unwrap(), b"file");
        }
    }
}

#[test]
fn repointing_a_latest_symlink_leaves_the_old_or_the_new_target() {
    // As the store does: a new link at a temp name, renamed over the old, directory synced.
    let link = Path::new("/runs/latest");
    for steps_done in 0..=3 {
        let seen = outcomes(
            || {
                let fs = with_durable_dir("/runs");
                fs.create_dir(Path::new("/runs/c1")).unwrap();
                fs.create_dir(Path::new("/runs/c2")).unwrap();
                fs.symlink(Path::new("c1"), link).unwrap();
                fs.sync_dir(Path::new("/runs")).unwrap();
                let temp = temp_path_for(link);
                if steps_done >= 1 {
                    fs.symlink(Path::new("c2"), &temp).unwrap();
                }
                if steps_done >= 2 {
                    fs.rename(&temp, link).unwrap();
                }
                if steps_done >= 3 {
                    fs.sync_dir(Path::new("/runs")).unwrap();
                }
                fs
            },
            |fs| fs.read_link(link).unwrap(),
        );
        let legal = BTreeSet::from([PathBuf::from("c1"), PathBuf::from("c2")]);
        assert!(seen.is_subset(&legal), "after {steps_done} steps: {seen:?}");
        if steps_done == 3 {
            assert_eq!(seen, BTreeSet::from([PathBuf::from("c2")]));
        }
    }
}

#[test]
fn a_power_loss_releases_every_lock() {
    let fs = with_durable_dir("/work");
    let lock = Path::new("/work/agent.lock");
    let old_guard = fs.lock_exclusive(lock, "agent before the reboot").unwrap();
    assert!(matches!(
        fs.lock_exclusive(lock, "second"),
        Err(LockError::Held { .. })
    ));
    fs.power_loss(&mut rng(1));
    let new_guard = fs.lock_exclusive(lock, "agent after the reboot").unwrap();
    // The old guard going away (its process's future dropped) must not release the
    // lock the new agent holds.
    drop(old_guard);
    match fs.lock_exclusive(lock, "third") {
        Err(LockError::Held { holder, .. }) => assert_eq!(holder, "agent after the reboot"),
        Ok(_) => panic!("the lock was released by a guard from before the reboot"),
        Err(error) => panic!("{error}"),
    }
    drop(new_guard);
    fs.lock_exclusive(lock, "fourth").unwrap();
}

#[test]
fn a_clone_is_a_handle_to_the_same_filesystem() {
    let simulator = with_durable_dir("/d");
    let agent = simulator.clone();
    agent.write(Path::new("/d/f"), b"x").unwrap();
    assert_eq!(read(&simulator, "/d/f").unwrap(), b"x");
    simulator.power_loss_durable_only();
    assert!(!agent.exists(Path::new("/d/f")));
}

#[test]
fn disk_usage_follows_the_capacity_and_a_full_disk_refuses_writes() {
    let fs = with_durable_dir("/d");
    fs.set_capacity_bytes(1000);
    fs.write(Path::new("/d/a"), &[0; 250]).unwrap();
    assert_eq!(fs.disk_usage(Path::new("/d")).unwrap(), 0.25);
    fs.append(Path::new("/d/a"), &[0; 250]).unwrap();
    assert_eq!(fs.disk_usage(Path::new("/")).unwrap(), 0.5);
    let error = fs.write(Path::new("/d/b"), &[0; 501]).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::StorageFull);
    fs.write(Path::new("/d/b"), &[0; 500]).unwrap();
    assert_eq!(fs.disk_usage(Path::new("/")).unwrap(), 1.0);
    assert!(fs.append(Path::new("/d/b"), b"x").is_err());
    fs.remove_file(Path::new("/d/a")).unwrap();
    assert_eq!(fs.used_bytes(), 500);
    fs.remove_dir_all(Path::new("/d")).unwrap();
    assert_eq!(fs.used_bytes(), 0);
    // After a power loss, usage counts what survived.
    fs.power_loss_durable_only();
    assert_eq!(fs.used_bytes(), 0);
}

#[test]
fn modification_times_come_from_the_clock() {
    use std::cell::Cell;
    use std::rc::Rc;
    use std::time::{Duration, SystemTime};

    let now = Rc::new(Cell::new(SystemTime::UNIX_EPOCH + Duration::from_secs(100)));
    let clock_now = Rc::clone(&now);
    let fs = SimFs::with_clock(Rc::new(move || clock_now.get()));
    fs.write(Path::new("/f"), b"x").unwrap();
    assert_eq!(fs.modified(Path::new("/f")).unwrap(), now.get());
    now.set(now.get() + Duration::from_secs(60));
    fs.touch(Path::new("/f")).unwrap();
    assert_eq!(
        fs.modified(Path::new("/f")).unwrap(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(160)
    );
}

#[test]
fn unreachable_inodes_are_collected() {
    let fs = with_durable_dir("/d");
    for index in 0..5000 {
        let path = PathBuf::from(format!("/d/f{}", index % 10));
        fs.replace_atomically(&path, b"x").unwrap();
        fs.remove_file(&path).unwrap();
        fs.sync_dir(Path::new("/d")).unwrap();
    }
    assert!(fs.inode_count() < 3000, "{} inodes", fs.inode_count());
}

#[test]
fn a_symlink_loop_and_deep_chains_resolve_or_fail_without_hanging() {
    let fs = with_durable_dir("/d");
    fs.write(Path::new("/d/l0"), b"end").unwrap();
    for index in 1..=40 {
        fs.symlink(
            Path::new(&format!("l{}", index - 1)),
            Path::new(&format!("/d/l{index}")),
        )
        .unwrap();
    }
    assert_eq!(read(&fs, "/d/l40").unwrap(), b"end", "40 links are allowed");
    fs.symlink(Path::new("l40"), Path::new("/d/l41")).unwrap();
    let error = fs.read(Path::new("/d/l41")).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(40), "ELOOP: {error}");
}

#[test]
fn dump_shows_pending_state() {
    let fs = with_durable_dir("/d");
    fs.write(Path::new("/d/f"), b"hello").unwrap();
    fs.symlink(Path::new("f"), Path::new("/d/link")).unwrap();
    let dump = fs.dump();
    assert!(
        dump.contains("/d/f file 5 bytes (durable 0, pending 1) \"hello\""),
        "{dump}"
    );
    assert!(dump.contains("/d/link -> f"), "{dump}");
    assert!(dump.contains("/d dir (pending 2)"), "{dump}");
}

#[test]
fn random_workloads_with_power_losses_keep_the_simulator_consistent() {
    use rand::Rng;

    const NAMES: [&str; 4] = ["a", "b", "c", "l"];
    const TARGETS: [&str; 5] = ["a", "b/c", ".", "..", "missing"];
    fn random_path(rng: &mut StdRng) -> PathBuf {
        let mut path = PathBuf::from("/r");
        for _ in 0..rng.gen_range(1..=3) {
            path.push(NAMES[rng.gen_range(0..NAMES.len())]);
        }
        path
    }

    for seed in 0..60 {
        let run = |seed: u64| {
            let fs = with_durable_dir("/r");
            let mut rng = rng(seed);
            for _ in 0..200 {
                let a = random_path(&mut rng);
                let b = random_path(&mut rng);
                let n: u8 = rng.gen();
                let _ = match rng.gen_range(0..14) {
                    0 => fs.write(&a, &[n; 3]),
                    1 => fs.append(&a, &[n; 2]),
                    2 => fs.create_dir(&a),
                    3 => fs.rename(&a, &b),
                    4 => fs.symlink(Path::new(TARGETS[n as usize % TARGETS.len()]), &a),
                    5 => fs.remove_file(&a),
                    6 => fs.remove_dir_all(&a),
                    7 => fs.truncate(&a, u64::from(n % 4)),
                    8 => fs.replace_atomically(&a, &[n; 4]),
                    9 => fs.create_dir_all_durably(&a),
                    10 => fs.sync_dir(&a),
                    11 => fs.sync_file(&a),
                    12 => {
                        let report = fs.power_loss(&mut rng);
                        assert!(fs.is_all_durable(), "seed {seed}: {report:?}");
                        assert_eq!(fs.snapshot_durable(), fs.tree(), "seed {seed}");
                        Ok(())
                    }
                    _ => fs.read(&a).map(drop),
                };
                fs.check_invariants();
            }
            fs.power_loss(&mut rng);
            fs.check_invariants();
            fs.dump()
        };
        assert_eq!(run(seed), run(seed), "seed {seed}: not deterministic");
    }
}

// docs/crash-points.md CP-7: zero-fill. A file whose size an un-synced append extended
// may come back with its new length and zeroes where the bytes never reached the disk.

/// The zero-filled outcomes of `setup` (each seed's power loss with zeroes drawn from a
/// stream of their own), with what each power loss reported.
fn zero_filled_outcomes<T: Ord>(
    setup: impl Fn() -> SimFs,
    observe: impl Fn(&SimFs) -> T,
) -> BTreeSet<T> {
    (0..SEEDS)
        .map(|seed| {
            let fs = setup();
            fs.power_loss_zero_filled(&mut rng(seed), &mut rng(seed ^ 0x5a5a));
            observe(&fs)
        })
        .collect()
}

#[test]
fn zero_fill_leaves_one_run_of_zeroes_among_the_unsynced_appended_bytes_only() {
    const HEAD: &[u8] = b"HEAD|";
    const APPENDED: &[u8] = b"0123456789";
    let seen = zero_filled_outcomes(
        || {
            let fs = with_durable_dir("/d");
            write_durably(&fs, Path::new("/d/log"), HEAD);
            fs.append(Path::new("/d/log"), APPENDED).unwrap();
            fs
        },
        |fs| read(fs, "/d/log").unwrap(),
    );
    let (mut whole_tail_zeroed, mut part_zeroed, mut untouched) = (false, false, false);
    for data in &seen {
        assert!(data.starts_with(HEAD), "synced bytes changed: {data:?}");
        let tail = &data[HEAD.len()..];
        assert!(tail.len() <= APPENDED.len(), "grew: {data:?}");
        // Every byte is the appended one or a zero, and the zeroes that replaced bytes
        // form one run.
        let replaced: Vec<usize> = (0..tail.len())
            .filter(|&i| tail[i] != APPENDED[i])
            .collect();
        assert!(
            replaced.iter().all(|&i| tail[i] == 0),
            "not zeroes: {tail:?}"
        );
        if let (Some(first), Some(last)) = (replaced.first(), replaced.last()) {
            assert_eq!(
                last - first + 1,
                replaced.len(),
                "two runs of zeroes: {tail:?}"
            );
            if replaced.len() == tail.len() {
                whole_tail_zeroed = true;
            } else {
                part_zeroed = true;
            }
        } else {
            untouched = true;
        }
    }
    assert!(whole_tail_zeroed && part_zeroed && untouched, "{seen:?}");
}

#[test]
fn zero_fill_asks_the_run_stream_what_a_power_loss_without_it_asks() {
    // The kept and lost operations (lengths, names) are the same with or without
    // zero-fill for the same seed: only bytes change, so adding zero-fill to a power loss
    // moves no other draw of a run.
    let setup = || {
        let fs = SimFs::new();
        busy(&fs);
        fs
    };
    for seed in 0..SEEDS {
        let plain = setup();
        let plain_loss = plain.power_loss(&mut rng(seed));
        let zeroed = setup();
        let zeroed_loss = zeroed.power_loss_zero_filled(&mut rng(seed), &mut rng(!seed));
        let shape = |fs: &SimFs| -> Vec<(PathBuf, Option<usize>)> {
            fs.tree()
                .into_iter()
                .map(|(path, entry)| match entry {
                    Entry::File(bytes) => (path, Some(bytes.len())),
                    _ => (path, None),
                })
                .collect()
        };
        assert_eq!(shape(&plain), shape(&zeroed), "seed {seed}");
        assert_eq!(plain_loss.file_ops_kept, zeroed_loss.file_ops_kept);
        assert_eq!(plain_loss.dir_ops_kept, zeroed_loss.dir_ops_kept);
        assert_eq!(plain_loss.files_zeroed, 0);
        // Each zeroed byte is one the plain power loss left where it was, or a zero.
        for (path, entry) in zeroed.tree() {
            if let (Entry::File(z), Some(Entry::File(p))) = (&entry, plain.entry(&path)) {
                assert!(
                    z.iter().zip(p.iter()).all(|(a, b)| a == b || *a == 0),
                    "seed {seed}: {path:?} holds bytes that are neither its own nor zero"
                );
            }
        }
    }
}

#[test]
fn zero_fill_of_an_unsynced_new_file_can_leave_a_short_file_of_zeroes() {
    // A file written and not synced (a header of 8 bytes): besides its prefixes, it may
    // come back as 1 to 3 bytes that are not a prefix of what was written, the state
    // `check_header` must refuse with an error, never a panic.
    const HEADER: &[u8] = b"RVNT\x01\x00\x02\x00";
    let seen = zero_filled_outcomes(
        || {
            let fs = with_durable_dir("/d");
            write_durably(&fs, Path::new("/d/f"), b"");
            fs.write(Path::new("/d/f"), HEADER).unwrap();
            fs
        },
        |fs| read(fs, "/d/f").unwrap(),
    );
    assert!(
        seen.iter()
            .any(|data| (1..4).contains(&data.len()) && !HEADER.starts_with(data)),
        "no short file that is not a prefix: {seen:?}"
    );
    for data in &seen {
        assert!(data.len() <= HEADER.len());
        assert!(data
            .iter()
            .zip(HEADER)
            .all(|(byte, written)| byte == written || *byte == 0));
    }
}

#[test]
fn zero_fill_extremes_are_reachable_explicitly_and_synced_files_never_change() {
    let setup = || {
        let fs = with_durable_dir("/d");
        write_durably(&fs, Path::new("/d/synced"), b"synced");
        write_durably(&fs, Path::new("/d/log"), b"H");
        fs.append(Path::new("/d/log"), b"abc").unwrap();
        fs
    };
    // Every pending operation kept, every un-synced byte zeroed.
    let fs = setup();
    let report = fs.power_loss_zero_filled_with(&mut |n| n, &mut |n| n);
    assert_eq!(read(&fs, "/d/log").unwrap(), b"H\0\0\0");
    assert_eq!(read(&fs, "/d/synced").unwrap(), b"synced");
    assert_eq!((report.files_zeroed, report.bytes_zeroed), (1, 3));
    assert!(format!("{report:?}").contains("bytes_zeroed: 3"));
    // No zeroes chosen: the mildest state, as without zero-fill, reported as before.
    let fs = setup();
    let before = fs.tree();
    let report = fs.power_loss_zero_filled_with(&mut |n| n, &mut |_| 0);
    assert_eq!(fs.tree(), before);
    assert_eq!(report, setup().power_loss_keep_all());
    assert!(!format!("{report:?}").contains("zeroed"));
    // Only durable bytes: nothing to zero.
    let fs = setup();
    let report = fs.power_loss_zero_filled_with(&mut |_| 0, &mut |n| n);
    assert_eq!(read(&fs, "/d/log").unwrap(), b"H");
    assert_eq!(report.files_zeroed, 0);
}
