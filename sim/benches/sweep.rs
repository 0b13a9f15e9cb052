//! Sweep throughput against the bare-turmoil floor, measured in the same run.
//!
//! turmoil polls every host at every tick, so a run costs at least hosts x ticks. The
//! floor is a bare turmoil simulation with the same hosts, tick and simulated length,
//! whose hosts only sleep; the ratio of a real swarm run to it is the harness's own
//! overhead (agent, master, executors, framework, faults, oracles, trace). Target: <= 1.2.
//!
//! `cargo bench -p revenant-sim --bench sweep` (REVENANT_BENCH_SEEDS to change the count).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::Path;
use std::time::{Duration, Instant};

use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::scenario::Scenario;

fn bare_turmoil(hosts: usize, tick: Duration, length: Duration) -> Duration {
    let started = Instant::now();
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
    started.elapsed()
}

fn main() {
    // `cargo test --benches` runs this as a smoke test: keep it tiny there.
    let quick = std::env::args().any(|a| a == "--test" || a == "--quick");
    let seeds: u64 = std::env::var("REVENANT_BENCH_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 2 } else { 40 });
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/swarm_agent_machine.toml");
    let scenario = Scenario::load(&path).expect("swarm scenario");
    let tick = Duration::from_millis(scenario.tick_ms);
    let length = Duration::from_secs_f64(scenario.duration_s);
    let hosts = scenario.masters as usize + 2; // masters, the agent machine, the framework

    let mut harness = Duration::ZERO;
    let mut floor = Duration::ZERO;
    // Alternate the two so that machine noise hits both alike.
    for seed in 0..seeds {
        let started = Instant::now();
        let result = cluster::run(&scenario, seed, &RunOptions::default());
        harness += started.elapsed();
        assert!(
            result.violations.is_empty(),
            "seed {seed} failed: {:?}",
            result.violations
        );
        floor += bare_turmoil(hosts, tick, length);
    }
    let per_run = harness.as_secs_f64() / seeds as f64;
    let per_floor = floor.as_secs_f64() / seeds as f64;
    println!(
        "swarm run: {:.1} ms per seed ({} hosts, tick {} ms, {} s simulated)",
        per_run * 1e3,
        hosts,
        scenario.tick_ms,
        scenario.duration_s
    );
    println!("bare turmoil floor: {:.1} ms per seed", per_floor * 1e3);
    println!(
        "ratio swarm/floor = {:.2} (target <= 1.2)",
        per_run / per_floor
    );
    println!(
        "one core: {:.1} seeds/s; 2,000 seeds on 2 cores: about {:.0} s",
        1.0 / per_run,
        2000.0 * per_run / 2.0
    );
}
