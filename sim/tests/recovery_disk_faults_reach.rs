//! docs/simulator-reach.md rules 12k and 13k happen in the default sweep: in the first
//! seeds of `swarm_agent_machine`, an `EIO` aimed at recovery's reads stops a
//! recovery (the agent exits on the disk error and is started again), and a tear
//! inside a record's header is cut as a torn tail by the next recovery. Judged from the
//! faults the simulator injected and the agent processes' exits it saw.
#![allow(clippy::disallowed_methods)]

use std::path::Path;

use revenant_sim::cluster::{self, AgentOutcome, RunOptions};
use revenant_sim::scenario::Scenario;

const SEEDS: u64 = 30;

#[test]
fn recovery_read_errors_and_header_tears_happen_in_the_default_swarm() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/swarm_agent_machine.toml");
    let scenario = Scenario::load(&path).expect("scenario parses");
    let mut recovery_stopped = 0;
    let mut header_torn_and_cut = 0;
    for seed in 0..SEEDS {
        let result = cluster::run(&scenario, seed, &RunOptions::default());
        let read_error = result.observations.faults.iter().any(|(_, f)| {
            f.contains("read_link operation(s) under")
                || f.contains("list_dir operation(s) under")
                || f.contains("read operation(s) under")
        });
        let stopped = result
            .observations
            .agent_exits
            .iter()
            .any(|(_, _, outcome)| {
                matches!(outcome, AgentOutcome::DiskFailure(m)
                if m.contains("failed to list directory") || m.contains("failed to read"))
            });
        if read_error && stopped {
            recovery_stopped += 1;
        } else if read_error && std::env::var_os("REACH_DEBUG").is_some() {
            eprintln!(
                "seed {seed}: {:?} {:?}",
                result.observations.faults, result.observations.agent_exits
            );
        }
        let header_tear = result
            .observations
            .faults
            .iter()
            .any(|(_, f)| f.contains("tears (at most"));
        let cut = result
            .coverage
            .get("recover_torn_tail_cut")
            .is_some_and(|n| *n > 0);
        if header_tear && cut {
            header_torn_and_cut += 1;
        }
    }
    eprintln!(
        "of {SEEDS} seeds: {recovery_stopped} with a recovery stopped by an aimed read error, {header_torn_and_cut} with a header tear cut"
    );
    assert!(
        recovery_stopped > 0,
        "no recovery read error stopped a recovery"
    );
    assert!(
        header_torn_and_cut > 0,
        "no tear inside a record header was cut"
    );
}
