//! The oracles: the rules of recovery (numbered in `docs/task-lifecycle.md`), one file each, checked after every run (the
//! executor recovery-timeout rule is also sampled during the run). Each returns the
//! violations it found, with the simulated time of the first evidence.

pub mod delivery;
pub mod durability;
pub mod executor_timers;
pub mod expectations;
pub mod failover;
pub mod gc_live;
pub mod header_overwritten;
pub mod history;
pub mod hung;
pub mod leaked;
pub mod left_behind;
pub mod liveness;
pub mod master_state;
pub mod no_panic;
pub mod non_checkpointing_meta;
pub mod one_agent_id;
pub mod pacing;
pub mod reboot;
pub mod reconciliation;
pub mod recovery_errors;
pub mod recovery_read_error;
pub mod recovery_timeout;
pub mod refusal;
pub mod removed_agent;
pub mod resources;
pub mod rogue;
pub mod rogue_agent;
pub mod shutdown_grace;
pub mod strict_recovery;
pub mod teardown;
pub mod terminal;
pub mod undecodable_record;
pub mod update_retries;
pub mod wasted_disk_work;
pub mod write_order;

use crate::observations::Observations;
use crate::scenario::Scenario;
use crate::trace::TraceEvent;
pub use crate::violation::Violation;

/// Runs every after-the-run oracle.
pub fn check_after(
    scenario: &Scenario,
    trace: &[TraceEvent],
    observations: &Observations,
) -> Vec<Violation> {
    let mut out = Vec::new();
    out.extend(delivery::check(trace, observations));
    out.extend(durability::check(observations));
    out.extend(terminal::check(observations));
    out.extend(reboot::check(trace, observations));
    out.extend(recovery_timeout::check(observations));
    out.extend(recovery_read_error::check(
        scenario,
        trace,
        observations,
        &crate::fault_log::so_far(),
    ));
    out.extend(resources::check(
        trace,
        observations,
        scenario.agent.strict,
        &crate::fault_log::so_far(),
    ));
    out.extend(strict_recovery::check(scenario, observations));
    out.extend(no_panic::check(observations));
    out.extend(liveness::check(scenario, observations));
    out.extend(teardown::check(scenario, observations));
    out.extend(failover::check(scenario, trace, observations));
    out.extend(history::check(scenario, trace, observations));
    out.extend(left_behind::check(scenario, observations));
    out.extend(leaked::check(scenario, observations));
    out.extend(gc_live::check(observations));
    out.extend(executor_timers::check(scenario, trace, observations));
    out.extend(hung::check(scenario, observations));
    out.extend(rogue::check(observations));
    out.extend(rogue_agent::check(observations));
    out.extend(refusal::check(scenario, observations));
    out.extend(master_state::check(scenario, observations));
    out.extend(master_state::check_resources(trace, observations));
    out.extend(update_retries::check(scenario, observations));
    out.extend(reconciliation::check(scenario, observations));
    out.extend(undecodable_record::check(
        scenario,
        observations,
        &crate::corrupt::undecodable_so_far(),
    ));
    out.extend(shutdown_grace::check(observations));
    out.extend(removed_agent::check(observations));
    out.extend(one_agent_id::check(observations));
    out.extend(pacing::check(observations));
    out.extend(recovery_errors::check(
        scenario,
        observations,
        &crate::corrupt::undecodable_so_far(),
        !crate::fault_log::so_far().is_empty(),
    ));
    out.extend(expectations::check(scenario, trace, observations));
    out.extend(wasted_disk_work::check(&crate::disk_work::so_far()));
    out.extend(header_overwritten::check(&crate::disk_work::so_far()));
    out.extend(write_order::check(&crate::disk_work::so_far()));
    out.extend(non_checkpointing_meta::check(
        scenario.checkpoint,
        &crate::disk_work::so_far(),
    ));
    out
}
