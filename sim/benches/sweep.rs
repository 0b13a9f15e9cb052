//! Sweep cost against the bare-turmoil floor, measured side by side in the same run
//! (docs/recovery-latency.md P31-P33).
//!
//! turmoil polls every host at every tick, so a run costs at least hosts x ticks. The
//! floor is a bare turmoil simulation with the same hosts (counted per seed: the swarm
//! adds the rogue framework's host to the runs that draw it), tick and simulated length,
//! whose hosts only sleep; the ratio of a real swarm run to it is the harness's own
//! overhead (agent, master, executors, framework, faults, oracles, trace). Target: <= 1.1.
//!
//! Both are timed in CPU time of this thread (what a loaded machine does not inflate) and
//! in wall time, alternating seed by seed so that machine noise hits both alike; the
//! verdict is the CPU ratio. `cargo bench -p revenant-sim --bench sweep`
//! (REVENANT_BENCH_SEEDS to change the count, REVENANT_BENCH_SCENARIO for another file).
//!
//! A run here is the run `revenant-sim sweep` makes (`cluster::run`, default options);
//! its milliseconds depend on the machine, so the floor is also printed per host and
//! tick, the gauge to compare two machines by, and the projection of a 2,000-seed sweep
//! counts the sweep's default determinism re-runs (docs/recovery-latency.md P62).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::scenario::Scenario;

/// CPU time consumed by this thread so far.
fn thread_cpu() -> Duration {
    let mut spec = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `spec` is a valid, writable timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut spec) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(spec.tv_sec as u64, spec.tv_nsec as u32)
}

/// Wall and CPU time of `work`.
fn timed<T>(work: impl FnOnce() -> T) -> (T, Duration, Duration) {
    let wall = Instant::now();
    let cpu = thread_cpu();
    let out = work();
    (out, wall.elapsed(), thread_cpu() - cpu)
}

fn bare_turmoil(hosts: usize, tick: Duration, length: Duration) {
    let mut sim = turmoil::Builder::new()
        .tick_duration(tick)
        .simulation_duration(length + Duration::from_secs(60))
        .build();
    for index in 0..hosts {
        sim.host(format!("host{index}").as_str(), || async {
            loop {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        });
    }
    while sim.elapsed() < length {
        sim.step().expect("bare sim steps");
    }
}

/// The hosts a run of `scenario` with `seed` adds to turmoil (driver_hosts.rs): a
/// ZooKeeper host with `[zookeeper]`, the masters, the agent machine, the rogue
/// framework's host when the seed draws the rogue, and the frameworks.
fn hosts_of(scenario: &Scenario, seed: u64) -> usize {
    let drawn = revenant_sim::faults::with_knobs(scenario, seed);
    let zk = usize::from(drawn.zookeeper.is_some());
    let rogue = usize::from(!revenant_sim::rogue::plan(&drawn, seed).is_empty());
    zk + drawn.masters as usize + 1 + rogue + drawn.frameworks.max(1) as usize
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

/// The processor's model, as /proc/cpuinfo names it.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// `revenant-sim sweep`'s default `--determinism-every`: one seed in this many runs twice.
const SWEEP_DETERMINISM_EVERY: f64 = 50.0;

fn main() {
    // `cargo test --benches` runs this as a smoke test: keep it tiny there.
    let quick = std::env::args().any(|a| a == "--test" || a == "--quick");
    let seeds: u64 = std::env::var("REVENANT_BENCH_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 2 } else { 40 });
    let path = std::env::var("REVENANT_BENCH_SCENARIO")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/swarm_agent_machine.toml")
        });
    let scenario = Scenario::load(&path).expect("swarm scenario");
    let tick = Duration::from_millis(scenario.tick_ms.max(1));
    let length = Duration::from_secs_f64(scenario.duration_s);
    println!("cpu: {}", cpu_model());
    println!("load average before: {}", load_average());

    let (mut swarm_wall, mut swarm_cpu) = (Duration::ZERO, Duration::ZERO);
    let (mut floor_wall, mut floor_cpu) = (Duration::ZERO, Duration::ZERO);
    let mut host_total = 0usize;
    // Alternate the two so that machine noise hits both alike.
    for seed in 0..seeds {
        let (result, wall, cpu) = timed(|| cluster::run(&scenario, seed, &RunOptions::default()));
        swarm_wall += wall;
        swarm_cpu += cpu;
        assert!(
            result.violations.is_empty(),
            "seed {seed} failed: {:?}",
            result.violations
        );
        drop(result);
        let hosts = hosts_of(&scenario, seed);
        host_total += hosts;
        let ((), wall, cpu) = timed(|| bare_turmoil(hosts, tick, length));
        floor_wall += wall;
        floor_cpu += cpu;
    }
    let per = |total: Duration| total.as_secs_f64() * 1e3 / seeds as f64;
    println!(
        "{}: {seeds} seeds, {:.2} hosts on average, tick {} ms, {} s simulated",
        scenario.name,
        host_total as f64 / seeds as f64,
        scenario.tick_ms,
        scenario.duration_s
    );
    println!(
        "swarm run:          {:.1} ms CPU, {:.1} ms wall per seed",
        per(swarm_cpu),
        per(swarm_wall)
    );
    println!(
        "bare turmoil floor: {:.1} ms CPU, {:.1} ms wall per seed",
        per(floor_cpu),
        per(floor_wall)
    );
    println!(
        "ratio swarm/floor = {:.3} CPU (target <= 1.1), {:.3} wall",
        per(swarm_cpu) / per(floor_cpu),
        per(swarm_wall) / per(floor_wall)
    );
    let ticks = (length.as_secs_f64() / tick.as_secs_f64()).ceil();
    println!(
        "floor per host and tick (this machine's gauge): {:.2} us CPU",
        floor_cpu.as_secs_f64() * 1e6 / (host_total as f64 * ticks)
    );
    println!(
        "2,000 seeds on 2 cores (one run per core at a time, CPU time, with the sweep's \
         default determinism re-run of one seed in {SWEEP_DETERMINISM_EVERY}): about {:.0} s",
        2000.0 * (1.0 + 1.0 / SWEEP_DETERMINISM_EVERY) * per(swarm_cpu) / 1e3 / 2.0
    );
    println!("load average after: {}", load_average());
}
