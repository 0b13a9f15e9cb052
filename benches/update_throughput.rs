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
//! ratio of the medians over the rounds: throughput on / off at 100 tasks, target >= 10.
//!
//! Run with `cargo bench --bench update_throughput`. Knobs: `REVENANT_BENCH_ROUNDS`
//! (default 2), `REVENANT_BENCH_DIR` (where the work directories go; default the system
//! temporary directory, which must be on the disk you want to measure). Under
//! `cargo test --benches` (no `--bench` argument) it runs one tiny round as a smoke test.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "../tests/inproc/mod.rs"]
mod inproc;

use std::rc::Rc;
use std::time::Duration;

use revenant::os::real::{GroupSync, RealFs};
use revenant::os::FileSystem;

const TARGET: f64 = 10.0;
const GROUP: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq)]
struct Case {
    tasks: usize,
    updates_per_task: usize,
    batch: usize,
    group_sync: GroupSync,
}

impl Case {
    fn label(&self) -> String {
        match (self.batch, self.group_sync) {
            (1, _) => "off (batch 1)".to_owned(),
            (batch, GroupSync::Parallel) => format!("on (batch {batch})"),
            (batch, GroupSync::Sequential) => format!("on (batch {batch}), sequential fdatasync"),
            (batch, GroupSync::Syncfs) => format!("on (batch {batch}), syncfs"),
        }
    }
}

struct Sample {
    throughput: f64,
    median: Duration,
    p99: Duration,
}

fn run_case(case: Case, base: &std::path::Path) -> Sample {
    let dir = tempfile::TempDir::new_in(base).expect("a temporary directory");
    let group_sync = case.group_sync;
    let results = inproc::run(inproc::Options {
        tasks: case.tasks,
        updates_per_task: case.updates_per_task,
        status_update_batch: case.batch,
        work_dir: dir.path().join("work"),
        make_fs: Box::new(move || {
            Rc::new(RealFs::with_group_sync(group_sync)) as Rc<dyn FileSystem>
        }),
        observer: None,
        timeout: Duration::from_secs(300),
    })
    .unwrap_or_else(|error| panic!("{}: {error}", case.label()));
    Sample {
        throughput: results.throughput(),
        median: results.latency(0.5),
        p99: results.latency(0.99),
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

fn main() {
    let bench = std::env::args().any(|arg| arg == "--bench");
    let rounds: usize = if bench {
        std::env::var("REVENANT_BENCH_ROUNDS")
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(2)
    } else {
        1
    };
    let base = std::env::var_os("REVENANT_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let (one, many, one_updates, many_updates) = if bench {
        (1, 100, 200, 20)
    } else {
        (1, 4, 5, 3)
    };
    let case = |tasks, updates_per_task, batch, group_sync| Case {
        tasks,
        updates_per_task,
        batch,
        group_sync,
    };
    let mut cases = vec![
        case(one, one_updates, 1, GroupSync::Parallel),
        case(one, one_updates, GROUP, GroupSync::Parallel),
        case(many, many_updates, 1, GroupSync::Parallel),
        case(many, many_updates, GROUP, GroupSync::Parallel),
    ];
    if bench {
        cases.push(case(many, many_updates, GROUP, GroupSync::Sequential));
        cases.push(case(many, many_updates, GROUP, GroupSync::Syncfs));
    }
    println!(
        "update_throughput: {rounds} round(s); work directories under {}",
        base.display()
    );
    let mut samples: Vec<Vec<Sample>> = cases.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
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
    let mut summary = Vec::new();
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
        summary.push((*case, throughput, median, p99));
    }
    println!();
    for tasks in [one, many] {
        let find = |batch: usize| {
            summary
                .iter()
                .find(|(case, ..)| {
                    case.tasks == tasks
                        && case.batch == batch
                        && case.group_sync == GroupSync::Parallel
                })
                .copied()
                .expect("measured")
        };
        let (_, off_throughput, off_median, off_p99) = find(1);
        let (_, on_throughput, on_median, on_p99) = find(GROUP);
        let ratio = on_throughput / off_throughput;
        let verdict = if tasks == many && bench {
            if ratio >= TARGET {
                format!(" (target >= {TARGET}x: met)")
            } else {
                format!(" (target >= {TARGET}x: NOT met)")
            }
        } else {
            String::new()
        };
        println!(
            "{tasks:>3} task(s): group commit on / off: throughput {ratio:.2}x{verdict}; latency median {:.2}x, p99 {:.2}x",
            on_median.as_secs_f64() / off_median.as_secs_f64(),
            on_p99.as_secs_f64() / off_p99.as_secs_f64(),
        );
    }
}
