//! End-to-end status update throughput and latency, group commit off against on.
//!
//! A master, the real agent (real TCP on loopback, [`RealFs`] on a temporary work
//! directory, checkpointing on), a framework and synthetic executors, all in this process
//! (`tests/inproc/mod.rs`: the agent on a thread of its own, the others on this one).
//! Each task's executor sends TASK_RUNNING updates and then TASK_FINISHED, keeping one
//! update in flight end to end (the next one leaves when the framework received the
//! previous), so `tasks` updates are in flight at once. Every update costs the agent an
//! UPDATE record before it acknowledges the executor and forwards it, and an ACK record
//! when the framework's acknowledgement comes back, before the next one is forwarded.
//!
//! Measured, for 1 and for 100 concurrent tasks: updates per second (from the start of
//! the streams to the framework's receipt of the last update) and the latency of each
//! update from the executor's send to the framework's receipt (median, p99), with group
//! commit off (`--status-update-batch 1`: one fsync per record, one after another: the
//! baseline) and on (`--status-update-batch 256`), interleaved over the rounds. With 100
//! tasks it also runs group commit with the other ways [`RealFs`] can sync a group
//! ([`GroupSync::Sequential`], [`GroupSync::Syncfs`]) for comparison. The verdict is the
//! median over the rounds of each round's ratio (on and off run back to back):
//! throughput on / off at 100 tasks, target >= 10.
//!
//! What group commit can win is bounded by what an fsync costs against the rest of the
//! work of an update (decoding, bookkeeping, four messages through the master and the
//! framework, on two cores here). So each round first probes the disk: what one
//! `fdatasync` costs when 100 files with a 200-byte append each are synced one after
//! another. On
//! a disk whose flush takes milliseconds the ratio is large; where the virtual disk
//! answers fsync from a cache in under 0.1 ms it cannot be, and the probe shows which.
//! `REVENANT_BENCH_DISK_LOAD=1` adds what a busy agent machine has: a thread writing
//! task-log-like dirty data (1 MiB every 5 ms, never synced) to the same disk.
//!
//! Beside them, TLS on against off (docs/security.md SEC8): group commit on, 1 and 100
//! tasks, this disk and no syncs, every role on mutual TLS with one `rcgen` identity;
//! the verdict is the median over the rounds of the median-latency ratio on / off at 100
//! tasks, target <= 1.2. `REVENANT_BENCH_CASES=tls` runs only those cases.
//!
//! Run with `cargo bench --bench update_throughput`. Knobs: `REVENANT_BENCH_ROUNDS`
//! (default 3), `REVENANT_BENCH_DIR` (where the work directories go; default the system
//! temporary directory, which must be on the disk you want to measure). Under
//! `cargo test --benches` (no `--bench` argument) it runs one tiny round as a smoke test.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "../tests/inproc/mod.rs"]
mod inproc;
#[path = "support/sync_cost_fs.rs"]
mod sync_cost_fs;

use std::rc::Rc;
use std::time::Duration;

use revenant::os::real::{GroupSync, RealFs};
use revenant::os::FileSystem;
use sync_cost_fs::{SyncCostFs, Syncs};

const TARGET: f64 = 10.0;
const GROUP: usize = 256;
/// Group commit on against the no-sync ceiling at 100 tasks: the least (issue 15).
const CEILING_TARGET: f64 = 0.8;
/// TLS on against off: the most the median latency at 100 tasks may grow.
const TLS_TARGET: f64 = 1.2;
/// The fraction of the updates left out at each end of a run when its throughput is
/// taken (docs/recovery-latency.md P50).
const STEADY_SKIP: f64 = 0.1;
/// Updates per task of the group-commit-on and ceiling cases in `gcommit` mode: long
/// enough (10,000 updates at 100 tasks) that a round is not a second of noise (P50).
const GCOMMIT_UPDATES: usize = 100;

/// The disk under the agent's work directory.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Disk {
    /// [`RealFs`] on the benchmark's directory, as it is.
    Real,
    /// [`RealFs`] with every sync taken out: not durable, the ceiling of any group commit.
    NoSyncs,
    /// [`RealFs`] with a flush of this cost added to each sync (each group): emulated.
    Flush(Duration),
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Case {
    tasks: usize,
    updates_per_task: usize,
    batch: usize,
    group_sync: GroupSync,
    disk: Disk,
    /// Mutual TLS on every connection (docs/security.md SEC8).
    tls: bool,
}

impl Case {
    fn label(&self) -> String {
        let commit = match (self.batch, self.group_sync) {
            (1, _) => "off (batch 1)".to_owned(),
            (batch, GroupSync::Parallel) => format!("on (batch {batch})"),
            (batch, GroupSync::Sequential) => format!("on (batch {batch}), sequential fdatasync"),
            (batch, GroupSync::Syncfs) => format!("on (batch {batch}), syncfs"),
        };
        let label = match self.disk {
            Disk::Real => commit,
            Disk::NoSyncs => "no syncs at all (ceiling; not durable)".to_owned(),
            Disk::Flush(delay) => format!("{commit}, +{} ms flush", ms(delay)),
        };
        if self.tls {
            format!("{label}, TLS")
        } else {
            label
        }
    }
}

struct Sample {
    throughput: f64,
    median: Duration,
    p99: Duration,
}

/// One TLS identity (made with `rcgen`, valid for 127.0.0.1) that every role of a TLS
/// case presents and checks its peers against.
fn tls_identity(base: &std::path::Path) -> revenant::tls::TlsIdentity {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let dir = tempfile::TempDir::new_in(base).expect("a temporary directory");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "bench-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("CA key");
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let mut params = CertificateParams::new(vec!["127.0.0.1".into()]).expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, "bench");
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("certificate");
    let files = revenant::tls::TlsFiles {
        cert: dir.path().join("bench.crt"),
        key: dir.path().join("bench.key"),
        ca: dir.path().join("ca.crt"),
    };
    std::fs::write(&files.cert, cert.pem()).expect("write");
    std::fs::write(&files.key, key.serialize_pem()).expect("write");
    std::fs::write(&files.ca, ca.pem()).expect("write");
    revenant::tls::TlsIdentity::load(&files).expect("the bench's TLS identity")
}

fn run_case(case: Case, base: &std::path::Path) -> Sample {
    let dir = tempfile::TempDir::new_in(base).expect("a temporary directory");
    let (group_sync, disk) = (case.group_sync, case.disk);
    let results = inproc::run(inproc::Options {
        tasks: case.tasks,
        updates_per_task: case.updates_per_task,
        status_update_batch: case.batch,
        work_dir: dir.path().join("work"),
        make_fs: Box::new(move || {
            let real = RealFs::with_group_sync(group_sync);
            match disk {
                Disk::Real => Rc::new(real) as Rc<dyn FileSystem>,
                Disk::NoSyncs => Rc::new(SyncCostFs(real, Syncs::Skipped)),
                Disk::Flush(delay) => Rc::new(SyncCostFs(real, Syncs::Delayed(delay))),
            }
        }),
        observer: None,
        timeout: Duration::from_secs(300),
        tls: case.tls.then(|| tls_identity(base)),
    })
    .unwrap_or_else(|error| panic!("{}: {error}", case.label()));
    Sample {
        // docs/recovery-latency.md P50: the steady middle of the run, not its ramp up
        // and tail.
        throughput: results.steady_throughput(STEADY_SKIP),
        median: results.latency(0.5),
        p99: results.latency(0.99),
    }
}

/// What one `fdatasync` costs in the pattern of group commit off: 100 files under
/// `base` get a 200-byte append each, then an `fdatasync` each, one after another; the
/// median over 3 such rounds of the time per file.
fn fsync_probe(base: &std::path::Path) -> Duration {
    use std::io::Write;
    let dir = tempfile::TempDir::new_in(base).expect("a temporary directory");
    let mut files: Vec<std::fs::File> = (0..100)
        .map(|index| {
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(dir.path().join(format!("probe-{index}")))
                .expect("probe file")
        })
        .collect();
    let mut times = Vec::new();
    for _ in 0..3 {
        for file in &mut files {
            file.write_all(&[0x5a; 200]).expect("append");
        }
        let started = std::time::Instant::now();
        for file in &files {
            file.sync_data().expect("fdatasync");
        }
        times.push(started.elapsed() / files.len() as u32);
    }
    median_duration(&mut times)
}

/// Dirty data in the background, as tasks writing their logs make on an agent's disk:
/// a thread appending 1 MiB at a time to a file under `base` (cut back every 256 MiB),
/// never syncing, until the returned guard is dropped.
struct DiskLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl DiskLoad {
    fn start(base: &std::path::Path) -> DiskLoad {
        use std::io::Write;
        let dir = tempfile::TempDir::new_in(base).expect("a temporary directory");
        let path = dir.path().join("task-log");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let chunk = vec![0x6cu8; 1 << 20];
                let mut file = std::fs::File::create(&path).expect("load file");
                let mut written = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    file.write_all(&chunk).expect("load write");
                    written += chunk.len();
                    if written >= 256 << 20 {
                        file = std::fs::File::create(&path).expect("load file");
                        written = 0;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        DiskLoad {
            stop,
            thread: Some(thread),
            _dir: dir,
        }
    }
}

impl Drop for DiskLoad {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn median_f64(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    values[values.len() / 2]
}

fn median_duration(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn ms(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1e3)
}

/// The median over the rounds of each round's throughput ratio `on / off` (run back to
/// back in one round), the per-round ratios, and the latency ratios (median, p99).
fn ratios(samples: &[Vec<Sample>], off: usize, on: usize) -> (f64, Vec<f64>, f64, f64) {
    let per_round = |f: &dyn Fn(&Sample, &Sample) -> f64| -> Vec<f64> {
        samples[off]
            .iter()
            .zip(&samples[on])
            .map(|(off, on)| f(off, on))
            .collect()
    };
    let throughputs = per_round(&|off, on| on.throughput / off.throughput);
    let medians = per_round(&|off, on| on.median.as_secs_f64() / off.median.as_secs_f64());
    let p99s = per_round(&|off, on| on.p99.as_secs_f64() / off.p99.as_secs_f64());
    (
        median_f64(&mut throughputs.clone()),
        throughputs,
        median_f64(&mut medians.clone()),
        median_f64(&mut p99s.clone()),
    )
}

fn main() {
    let bench = std::env::args().any(|arg| arg == "--bench");
    let rounds: usize = if bench {
        std::env::var("REVENANT_BENCH_ROUNDS")
            .ok()
            .and_then(|value| value.parse().ok())
            // The group-commit comparison is read from its spread over the rounds (P50).
            .unwrap_or(
                if std::env::var("REVENANT_BENCH_CASES").as_deref() == Ok("gcommit") {
                    9
                } else {
                    3
                },
            )
    } else {
        1
    };
    let base = std::env::var_os("REVENANT_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let _load = (std::env::var("REVENANT_BENCH_DISK_LOAD").as_deref() == Ok("1")).then(|| {
        println!("update_throughput: with background disk load (1 MiB unsynced writes every 5 ms)");
        DiskLoad::start(&base)
    });
    // The emulated slower disk: what a flush costs on network block storage (~1 ms) or
    // a disk without a power-safe cache. 0 leaves it out.
    let flush = Duration::from_micros(
        std::env::var("REVENANT_BENCH_FLUSH_US")
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(1000),
    );
    let (one, many, one_updates, many_updates) = if bench {
        (1, 100, 200, 20)
    } else {
        (1, 4, 5, 3)
    };
    let case = |tasks, updates_per_task, batch, group_sync, disk| Case {
        tasks,
        updates_per_task,
        batch,
        group_sync,
        disk,
        tls: false,
    };
    // `REVENANT_BENCH_GROUP_SYNC=syncfs` (or `sequential`): every case that syncs its
    // groups in parallel by default syncs them that way instead, for comparing what a
    // group's syncs cost (docs/recovery-latency.md P59).
    let parallel = match std::env::var("REVENANT_BENCH_GROUP_SYNC").as_deref() {
        Ok("syncfs") => GroupSync::Syncfs,
        Ok("sequential") => GroupSync::Sequential,
        _ => GroupSync::Parallel,
    };
    // `REVENANT_BENCH_CASES=tls`: only the TLS comparison (group commit on, TLS off and
    // on, 1 and 100 tasks), in a quarter of the time.
    let only_tls = std::env::var("REVENANT_BENCH_CASES").as_deref() == Ok("tls");
    let tls_cases = [
        case(one, one_updates, GROUP, parallel, Disk::Real),
        Case {
            tls: true,
            ..case(one, one_updates, GROUP, parallel, Disk::Real)
        },
        case(many, many_updates, GROUP, parallel, Disk::Real),
        Case {
            tls: true,
            ..case(many, many_updates, GROUP, parallel, Disk::Real)
        },
        // Without syncs TLS's own cost is not hidden by the disk's.
        case(many, many_updates, GROUP, parallel, Disk::NoSyncs),
        Case {
            tls: true,
            ..case(many, many_updates, GROUP, parallel, Disk::NoSyncs)
        },
    ];
    let mut cases = vec![
        case(one, one_updates, 1, parallel, Disk::Real),
        case(one, one_updates, GROUP, parallel, Disk::Real),
        case(many, many_updates, 1, parallel, Disk::Real),
        case(many, many_updates, GROUP, parallel, Disk::Real),
        case(many, many_updates, GROUP, parallel, Disk::NoSyncs),
    ];
    if bench {
        cases.push(case(
            many,
            many_updates,
            GROUP,
            GroupSync::Sequential,
            Disk::Real,
        ));
        cases.push(case(
            many,
            many_updates,
            GROUP,
            GroupSync::Syncfs,
            Disk::Real,
        ));
    }
    cases.extend(tls_cases.iter().filter(|c| c.tls).copied());
    if only_tls {
        cases = tls_cases.to_vec();
    }
    // `REVENANT_BENCH_CASES=gcommit`: only what issue 15's group commit targets compare
    // (100 tasks: off, on and the no-sync ceiling on this disk; off and on with the
    // emulated flush, added below), side by side in the same rounds.
    let only_gcommit = std::env::var("REVENANT_BENCH_CASES").as_deref() == Ok("gcommit");
    if only_gcommit {
        cases = vec![
            case(many, many_updates, 1, parallel, Disk::Real),
            case(many, GCOMMIT_UPDATES, GROUP, parallel, Disk::Real),
            case(many, GCOMMIT_UPDATES, GROUP, parallel, Disk::NoSyncs),
        ];
    }
    // `REVENANT_BENCH_CASES=gcommit_on` or `gcommit_ceiling`: that one case of `gcommit`
    // alone, for counting a case's syscalls under `perf stat` or `strace -c`
    // (docs/recovery-latency.md P59). The emulated flush cases are left out too.
    let single = match std::env::var("REVENANT_BENCH_CASES").as_deref() {
        Ok("gcommit_on") => Some(Disk::Real),
        Ok("gcommit_ceiling") => Some(Disk::NoSyncs),
        _ => None,
    };
    if let Some(disk) = single {
        cases = vec![case(many, GCOMMIT_UPDATES, GROUP, parallel, disk)];
    }
    if !flush.is_zero() && !only_tls && single.is_none() {
        cases.push(case(many, many_updates, 1, parallel, Disk::Flush(flush)));
        cases.push(case(
            many,
            many_updates,
            GROUP,
            parallel,
            Disk::Flush(flush),
        ));
    }
    println!(
        "update_throughput: {rounds} round(s); work directories under {}",
        base.display()
    );
    let mut samples: Vec<Vec<Sample>> = cases.iter().map(|_| Vec::new()).collect();
    let mut probes = Vec::new();
    for round in 0..rounds {
        let probe = fsync_probe(&base);
        println!(
            "  round {round}: fdatasync of 100 files one after another: {} ms per file",
            ms(probe)
        );
        probes.push(probe);
        // Alternate the order, so that drift of the machine hits every case alike.
        let order: Vec<usize> = if round % 2 == 0 {
            (0..cases.len()).collect()
        } else {
            (0..cases.len()).rev().collect()
        };
        for index in order {
            let case = cases[index];
            let sample = run_case(case, &base);
            println!(
                "  round {round}: {:>3} tasks x {:>3} updates, {:<40} {:>9.0} updates/s  median {:>7} ms  p99 {:>7} ms",
                case.tasks,
                case.updates_per_task,
                case.label(),
                sample.throughput,
                ms(sample.median),
                ms(sample.p99)
            );
            samples[index].push(sample);
        }
    }
    println!();
    println!(
        "{:>5}  {:<40} {:>11} {:>11} {:>11}",
        "tasks", "group commit", "updates/s", "median ms", "p99 ms"
    );
    for (case, samples) in cases.iter().zip(&samples) {
        let throughput = median_f64(&mut samples.iter().map(|s| s.throughput).collect::<Vec<_>>());
        let median = median_duration(&mut samples.iter().map(|s| s.median).collect::<Vec<_>>());
        let p99 = median_duration(&mut samples.iter().map(|s| s.p99).collect::<Vec<_>>());
        println!(
            "{:>5}  {:<40} {:>11.0} {:>11} {:>11}",
            case.tasks,
            case.label(),
            throughput,
            ms(median),
            ms(p99)
        );
    }
    println!();
    println!(
        "fdatasync per file, 100 files one after another, per round (ms): {}",
        probes.iter().map(|p| ms(*p)).collect::<Vec<_>>().join(", ")
    );
    let find_tls = |tasks: usize, batch: usize, disk: Disk, tls: bool| {
        cases.iter().position(|c| {
            c.tasks == tasks
                && c.batch == batch
                && c.group_sync == parallel
                && c.disk == disk
                && c.tls == tls
        })
    };
    let find = |tasks: usize, batch: usize, disk: Disk| find_tls(tasks, batch, disk, false);
    let verdict = |ratio: f64| {
        if !bench {
            String::new()
        } else if ratio >= TARGET {
            format!(" (target >= {TARGET}x: met)")
        } else {
            format!(" (target >= {TARGET}x: NOT met)")
        }
    };
    let rounds_text = |values: &[f64]| {
        values
            .iter()
            .map(|r| format!("{r:.2}x"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (tasks, disk, what) in [
        (one, Disk::Real, "this disk".to_owned()),
        (many, Disk::Real, "this disk".to_owned()),
        (
            many,
            Disk::Flush(flush),
            format!("this disk +{} ms flush, emulated", ms(flush)),
        ),
    ] {
        let (Some(off), Some(on)) = (find(tasks, 1, disk), find(tasks, GROUP, disk)) else {
            continue;
        };
        let (ratio, per_round, median, p99) = ratios(&samples, off, on);
        let verdict = if tasks == many {
            verdict(ratio)
        } else {
            String::new()
        };
        println!(
            "{tasks:>3} task(s), {what}: group commit on / off: throughput {ratio:.2}x{verdict} (per round: {}); latency median {median:.2}x, p99 {p99:.2}x",
            rounds_text(&per_round),
        );
    }
    // TLS on against off (group commit on): the latency ratio at 100 tasks, target
    // <= 1.2x, on this disk and without syncs.
    for (tasks, disk, what) in [
        (one, Disk::Real, "this disk"),
        (many, Disk::Real, "this disk"),
        (many, Disk::NoSyncs, "no syncs"),
    ] {
        let (Some(off), Some(on)) = (
            find_tls(tasks, GROUP, disk, false),
            find_tls(tasks, GROUP, disk, true),
        ) else {
            continue;
        };
        let (throughput, per_round, median, p99) = ratios(&samples, off, on);
        let medians: Vec<f64> = samples[off]
            .iter()
            .zip(&samples[on])
            .map(|(off, on)| on.median.as_secs_f64() / off.median.as_secs_f64())
            .collect();
        let verdict = match (bench, tasks == many) {
            (true, true) if median <= TLS_TARGET => format!(" (target <= {TLS_TARGET}x: met)"),
            (true, true) => format!(" (target <= {TLS_TARGET}x: NOT met)"),
            _ => String::new(),
        };
        println!(
            "{tasks:>3} task(s), {what}, group commit on: TLS on / off: latency median {median:.2}x{verdict} (per round: {}), p99 {p99:.2}x; throughput {throughput:.2}x (per round: {})",
            rounds_text(&medians),
            rounds_text(&per_round),
        );
    }
    if let (Some(off), Some(ceiling)) =
        (find(many, 1, Disk::Real), find(many, GROUP, Disk::NoSyncs))
    {
        let (ratio, per_round, ..) = ratios(&samples, off, ceiling);
        println!(
            "{many} task(s), this disk: no syncs at all / group commit off: {ratio:.2}x (per round: {}): \
             the most any group commit could win here, since every update's other work stays",
            rounds_text(&per_round),
        );
    }
    // Issue 15: group commit on at >= 80% of the ceiling, measured side by side.
    if let (Some(ceiling), Some(on)) = (
        find(many, GROUP, Disk::NoSyncs),
        find(many, GROUP, Disk::Real),
    ) {
        let (ratio, per_round, median, _) = ratios(&samples, ceiling, on);
        let mut sorted = per_round.clone();
        sorted.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        let quantile = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        println!(
            "{many} task(s), this disk: group commit on / no syncs at all over {} round(s): median {ratio:.2}, quartiles {:.2}-{:.2}, range {:.2}-{:.2}",
            sorted.len(),
            quantile(0.25),
            quantile(0.75),
            sorted[0],
            sorted[sorted.len() - 1],
        );
        let verdict = match bench {
            false => String::new(),
            true if ratio >= CEILING_TARGET => format!(" (target >= {CEILING_TARGET:.2}: met)"),
            true => format!(" (target >= {CEILING_TARGET:.2}: NOT met)"),
        };
        println!(
            "{many} task(s), this disk: group commit on / no syncs at all: throughput {ratio:.2}{verdict} (per round: {}); latency median {median:.2}x",
            rounds_text(&per_round),
        );
    }
}
