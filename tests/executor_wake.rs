//! Executors back at once (docs/recovery-rules.md R31–R36, docs/recovery-latency.md P3):
//! in the simulator, a restarted agent's live executor re-registers within a few
//! simulated milliseconds of the restart, not after its back-off (uniform up to the
//! re-registration timeout, 2 s here), and the agent re-registers with the master right
//! after. Before the wakes, most seeds took hundreds of milliseconds, so the bound fails
//! on a broken wake.

use std::path::Path;
use std::time::Duration;

use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::decision::Decision;
use revenant_sim::scenario::Scenario;

/// The agent crashes at 15 s and restarts 5 s later (the scenario's fault).
const RESTART: Duration = Duration::from_secs(20);
/// Recovery, the wake, the re-registration: work, not waiting.
const BOUND: Duration = Duration::from_millis(100);

#[test]
fn a_restarted_agent_gets_its_executor_back_at_once() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios/agent_restart_reconnects_executor.toml");
    let scenario = Scenario::load(&path).expect("scenario parses");
    for seed in 0..8 {
        let result = cluster::run(&scenario, seed, &RunOptions::default());
        assert!(
            result.violations.is_empty(),
            "seed {seed}: {:?}",
            result.violations
        );
        let first = |decision: Decision| {
            result
                .trace
                .iter()
                .find(|e| e.time >= RESTART && e.is(decision))
                .map(|e| e.time)
                .unwrap_or_else(|| panic!("seed {seed}: no {decision:?} after the restart"))
        };
        let reconnected = first(Decision::ExecutorReconnected);
        let reregistered = first(Decision::ReregisteredWithMaster);
        assert!(
            reconnected - RESTART <= BOUND,
            "seed {seed}: the executor re-registered {:?} after the restart",
            reconnected - RESTART
        );
        assert!(
            reregistered - RESTART <= BOUND,
            "seed {seed}: the agent re-registered with the master {:?} after the restart",
            reregistered - RESTART
        );
    }
}
