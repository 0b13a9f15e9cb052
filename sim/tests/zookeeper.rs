//! ZooKeeper in the simulator (docs/zookeeper.md Z11-Z16): the fixed scenario of a
//! leader cut from ZooKeeper passes as it is, and each ZooKeeper oracle fails against
//! a test-only breakage (`revenant::breakage`): a master that keeps leading after its
//! session was lost (zk_one_leader, Z15), a new leader that claims the registry by
//! writing an empty one (zk_registry, Z16). The swarm reaches the first too.

use std::path::Path;

use revenant::breakage::Breakage;
use revenant_sim::cluster::{self, RunOptions, RunResult};
use revenant_sim::scenario::Scenario;

fn scenario(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scenarios")
        .join(name);
    Scenario::load(&path).expect("scenario parses")
}

fn run(name: &str, seed: u64, breakage: Breakage) -> RunResult {
    let options = RunOptions {
        breakage,
        ..RunOptions::default()
    };
    cluster::run(&scenario(name), seed, &options)
}

fn oracles(result: &RunResult) -> Vec<&'static str> {
    for v in result.violations.iter().take(3) {
        eprintln!("{:.3}s [{}] {}", v.time.as_secs_f64(), v.oracle, v.message);
    }
    result.violations.iter().map(|v| v.oracle).collect()
}

const CUT: &str = "zk_leader_cut_from_zookeeper.toml";

#[test]
fn a_leader_cut_from_zookeeper_hands_over() {
    let result = run(CUT, 0, Breakage::default());
    assert!(result.violations.is_empty(), "{:?}", result.violations);
    let text: Vec<String> = result.trace.iter().map(|e| e.line()).collect();
    let at = |needle: &str| text.iter().position(|line| line.contains(needle));
    let stopped = at("master1 master: no longer the leading master").expect("master1 steps down");
    let expired = at("zookeeper expired a session").expect("the server expires master1's session");
    let elected =
        at("master2 contender: lowest member of the group: leading").expect("master2 leads");
    let rejoined = at(
        "master1 contender: joined the masters' group member=/revenant/members/member_0000000003",
    )
    .expect("master1 joins again as a new member");
    assert!(stopped < expired && expired < elected && elected < rejoined);
}

#[test]
fn one_leader_oracle_catches_a_master_leading_without_session() {
    let breakage = Breakage {
        master_leads_without_session: true,
        ..Breakage::default()
    };
    let result = run(CUT, 0, breakage);
    assert!(
        oracles(&result).contains(&"zk_one_leader"),
        "{:?}",
        result.violations
    );
}

#[test]
fn registry_oracle_catches_a_leader_that_forgets_the_registry() {
    let breakage = Breakage {
        master_forgets_zk_registry: true,
        ..Breakage::default()
    };
    let result = run(CUT, 0, breakage);
    assert!(
        oracles(&result).contains(&"zk_registry"),
        "{:?}",
        result.violations
    );
}

/// The swarm's drawn ZooKeeper faults reach the breakage within a few seeds.
#[test]
fn swarm_reaches_a_master_leading_without_session() {
    let breakage = Breakage {
        master_leads_without_session: true,
        ..Breakage::default()
    };
    let seed = (0..40)
        .find(|seed| oracles(&run("swarm_zk.toml", *seed, breakage)).contains(&"zk_one_leader"));
    assert!(seed.is_some(), "no seed of 40 caught it");
    eprintln!("zk_one_leader: caught at seed {}", seed.unwrap());
}

/// The ZooKeeper swarm injects each of its ZooKeeper faults within its first seeds, and
/// draws partitions from ZooKeeper just under and just over both timeouts that matter:
/// two thirds of the session timeout (the client gives up) and the whole of it (the
/// server expires the session) (docs/zookeeper.md Z14).
#[test]
fn swarm_zk_injects_its_faults_on_both_sides_of_the_timeouts() {
    use revenant_sim::scenario::FaultKind;
    let scenario = scenario("swarm_zk.toml");
    let zk = [
        FaultKind::ZkPartition,
        FaultKind::ZkDown,
        FaultKind::ZkExpire,
    ];
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..40 {
        let result = cluster::run(&scenario, seed, &RunOptions::default());
        seen.extend(
            result
                .observations
                .fault_kinds
                .iter()
                .copied()
                .filter(|k| zk.contains(k)),
        );
        if seen.len() == zk.len() {
            break;
        }
    }
    assert_eq!(seen.len(), zk.len(), "injected: {seen:?}");
    let timeout = 10.0;
    let mut sides = [[0u32; 2]; 2];
    for seed in 0..200 {
        for fault in cluster::schedule_for(&scenario, seed) {
            if fault.kind != FaultKind::ZkPartition {
                continue;
            }
            let d = fault.duration_s.expect("drawn duration");
            for (i, boundary) in [timeout * 2.0 / 3.0, timeout].into_iter().enumerate() {
                if (d - boundary).abs() <= boundary * 0.05 {
                    sides[i][usize::from(d > boundary)] += 1;
                }
            }
        }
    }
    assert!(
        sides.iter().flatten().all(|n| *n > 0),
        "partitions near 2/3 T (below, above) and T (below, above): {sides:?}"
    );
}
