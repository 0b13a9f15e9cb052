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

/// Differential testing: the same random operations on [`SimFs`] and on the real
/// filesystem (in a temporary directory) give the same results, errno for errno.
mod differential {
    use std::io;
    use std::path::{Path, PathBuf};

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use revenant::os::real::RealFs;
    use revenant::os::FileSystem;
    use revenant_sim::fs::SimFs;

    const NAMES: [&str; 4] = ["a", "b", "c", "l"];
    /// Symlink targets: relative, and without `..`, so that a resolution climbs at most
    /// as many levels as its path has `..` components (three), which keeps every
    /// operation inside the temporary directory (see `ROOT_DEPTH`).
    const TARGETS: [&str; 8] = ["a", "b", "c/a", "l", ".", "missing", "a/", "l/l"];
    /// How deep the root of the operations lies below the temporary directory.
    const ROOT_DEPTH: usize = 4;
    const OPS_PER_SEED: usize = 150;
    /// Seeds per run: each costs a few hundred real fsyncs. A wider search (3000 seeds
    /// of 300 operations, comparing the whole tree after every step) passed when the
    /// simulator's path rules were last changed.
    const DIFFERENTIAL_SEEDS: u64 = 20;

    /// A path of one to three names below the root, sometimes with `..` or a slash.
    fn random_path(rng: &mut StdRng) -> PathBuf {
        let depth = rng.gen_range(1..=3);
        let mut path = PathBuf::new();
        for _ in 0..depth {
            if rng.gen_ratio(1, 12) {
                path.push("..");
            }
            path.push(NAMES[rng.gen_range(0..NAMES.len())]);
        }
        if rng.gen_ratio(1, 20) {
            let mut text = path.into_os_string();
            text.push("/");
            path = PathBuf::from(text);
        }
        path
    }

    /// What a call returned, comparable across the two filesystems.
    #[derive(Debug, PartialEq)]
    enum Outcome {
        Ok(String),
        Err(Option<i32>, io::ErrorKind),
    }

    fn outcome<T: std::fmt::Debug>(result: io::Result<T>) -> Outcome {
        match result {
            Ok(value) => Outcome::Ok(format!("{value:?}")),
            Err(error) => Outcome::Err(error.raw_os_error(), error.kind()),
        }
    }

    /// One random operation, described and applied to `fs` under `root`.
    fn apply(fs: &dyn FileSystem, root: &Path, op: u32, a: &Path, b: &Path, n: u8) -> Outcome {
        let (a, b) = (root.join(a), root.join(b));
        // `..` at the top of the real root would leave it: keep both inside.
        match op {
            0 => outcome(fs.write(&a, &[n; 3])),
            1 => outcome(fs.append(&a, &[n; 2])),
            2 => outcome(fs.read(&a)),
            3 => outcome(fs.create_dir(&a)),
            4 => outcome(fs.rename(&a, &b)),
            5 => outcome(fs.symlink(Path::new(TARGETS[n as usize % TARGETS.len()]), &a)),
            6 => outcome(fs.read_link(&a)),
            7 => outcome(fs.list_dir(&a)),
            8 => outcome(fs.remove_file(&a)),
            9 => outcome(fs.remove_dir_all(&a)),
            10 => outcome(fs.truncate(&a, u64::from(n % 5))),
            11 => Outcome::Ok(format!("{} {}", fs.exists(&a), fs.is_dir(&a))),
            12 => outcome(fs.replace_atomically(&a, &[n; 4])),
            13 => outcome(fs.create_dir_all_durably(&a)),
            14 => outcome(fs.sync_dir(&a)),
            _ => outcome(fs.sync_file(&a)),
        }
    }

    /// Every path below `root` with what it is, walked through the trait (symlinks are
    /// listed, not followed).
    fn listing(fs: &dyn FileSystem, root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut todo = vec![PathBuf::new()];
        while let Some(relative) = todo.pop() {
            let dir = root.join(&relative);
            for name in fs.list_dir(&dir).expect("list a directory") {
                let child = relative.join(&name);
                let path = root.join(&child);
                if let Ok(target) = fs.read_link(&path) {
                    out.push(format!("{} -> {}", child.display(), target.display()));
                } else if fs.is_dir(&path) {
                    out.push(format!("{}/", child.display()));
                    todo.push(child);
                } else {
                    let data = fs.read(&path).expect("read a file");
                    out.push(format!("{} {:?}", child.display(), data));
                }
            }
        }
        out.sort();
        out
    }

    fn run(seed: u64, real_handle_per_op: bool) {
        let temp = tempfile::TempDir::new().expect("a temporary directory");
        // The roots sit deep enough that `..` never leaves the temporary directory.
        let below: PathBuf = (1..ROOT_DEPTH).map(|level| format!("d{level}")).collect();
        let real_root = temp.path().join(&below).join("root");
        let sim_root = &Path::new("/").join(&below).join("root");
        let persistent = RealFs::default();
        persistent.create_dir_all_durably(&real_root).unwrap();
        let sim = SimFs::new();
        sim.create_dir_all_durably(sim_root).unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut log = Vec::new();
        for step in 0..OPS_PER_SEED {
            // The operations that fsync (12 to 15) are rarer: each costs real disk time.
            let op = if rng.gen_ratio(1, 8) {
                rng.gen_range(12..16)
            } else {
                rng.gen_range(0..12)
            };
            let a = random_path(&mut rng);
            let b = random_path(&mut rng);
            let n: u8 = rng.gen();
            log.push(format!(
                "{step}: op {op} {} {} {n}",
                a.display(),
                b.display()
            ));
            let fresh = RealFs::default();
            let real: &dyn FileSystem = if real_handle_per_op {
                &fresh
            } else {
                &persistent
            };
            let expected = apply(real, &real_root, op, &a, &b, n);
            let got = apply(&sim, sim_root, op, &a, &b, n);
            let expected = format!("{expected:?}").replace(&*temp.path().to_string_lossy(), "");
            assert_eq!(
                format!("{got:?}"),
                expected,
                "seed {seed}, operations so far:\n{}\nsim:\n{}",
                log.join("\n"),
                sim.dump()
            );
            // The whole tree after every step, so that a silent divergence shows where
            // it happened.
            assert_eq!(
                listing(&sim, Path::new("/")),
                listing(&RealFs::default(), temp.path()),
                "seed {seed}, after:\n{}",
                log.join("\n")
            );
        }
    }

    #[test]
    fn sim_fs_matches_the_kernel_on_random_operations() {
        for seed in 0..DIFFERENTIAL_SEEDS {
            run(seed, true);
        }
    }

    #[test]
    fn sim_fs_matches_real_fs_with_its_append_handle_cache() {
        for seed in 0..DIFFERENTIAL_SEEDS {
            run(seed, false);
        }
    }
}
