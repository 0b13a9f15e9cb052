//! Rule: strict recovery of a crash state the filesystem model allows never fails (a
//! failure there is a bug in the checkpoint protocol); only injected corruption may make
//! it fail. Non-strict recovery never fails on corruption.

use std::collections::BTreeSet;

use super::Violation;
use crate::observations::{AgentOutcome, Observations};
use crate::scenario::Scenario;

use crate::corrupt::{INCOMPATIBLE_INFO, INCOMPATIBLE_RECONFIGURATION};

/// How the simulator's fault log names `delete_agent_dir` (`sim/src/faults.rs`).
const AGENT_DIR_DELETED: &str = "agent checkpoint directory deleted";

/// Checks the rule.
pub fn check(scenario: &Scenario, observations: &Observations) -> Vec<Violation> {
    let expected = scenario.expect.as_ref().is_some_and(|e| e.recovery_fails);
    // docs/recovery-rules.md R46: an agent directory an operator removed under its
    // `latest` link stops recovery, strict or not. The damage is done while the agent is
    // down, so it excuses one agent exit only: that of the first incarnation after it that
    // met the dangling link. Incarnations that crashed (the simulator's death, at a
    // filesystem operation of recovery too) or stopped on a disk failure before their
    // exit was judged leave the link dangling for the next one
    // (`regression_dangling_latest_met_after_a_crash`), so the excused exit is the first
    // after the deletion that is neither. Any other failed exit of the run is still
    // judged.
    let excused: BTreeSet<usize> = first_exits_after(observations, AGENT_DIR_DELETED).collect();
    // docs/recovery-rules.md R9, R47, docs/simulator-reach.md 15f: an operator who restarts
    // the agent with less than it checkpointed must see recovery stop, strict or not. It
    // excuses one exit only: the first after the change that is neither a crash nor a
    // disk failure, and only if it is that stop (the error R9 names). Any other failure,
    // and a stop after an additive change, is still judged.
    let excused: BTreeSet<usize> = first_exits_after(observations, INCOMPATIBLE_RECONFIGURATION)
        .filter(|index| {
            matches!(&observations.agent_exits[*index].2,
                    AgentOutcome::Failed(message) if message.starts_with(INCOMPATIBLE_INFO))
        })
        .chain(excused)
        .collect();
    observations
        .agent_exits
        .iter()
        .enumerate()
        .filter_map(|(index, (time, _, outcome))| match outcome {
            AgentOutcome::Failed(message)
                if !(expected
                    || excused.contains(&index)
                    || observations.corruption_injected && scenario.agent.strict) =>
            {
                Some(Violation {
                    time: *time,
                    oracle: "strict_recovery",
                    message: format!("the agent failed without injected corruption: {message}"),
                })
            }
            _ => None,
        })
        .collect()
}

/// For each fault whose log line starts with `fault`: the first agent exit at or after
/// it that is neither a crash nor a disk failure (an incarnation that crashed, or
/// stopped on a disk failure, may not have reached what the fault left for the next
/// one), by its index in `agent_exits`.
fn first_exits_after<'a>(
    observations: &'a Observations,
    fault: &'a str,
) -> impl Iterator<Item = usize> + 'a {
    observations
        .faults
        .iter()
        .filter(move |(_, description)| description.starts_with(fault))
        .filter_map(|(at, _)| {
            observations
                .agent_exits
                .iter()
                .position(|(time, _, outcome)| {
                    time >= at
                        && !matches!(
                            outcome,
                            AgentOutcome::Crashed | AgentOutcome::DiskFailure(_)
                        )
                })
        })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn scenario() -> Scenario {
        toml::from_str("[[tasks]]\nid = \"t1\"\ncommand = \"sleep 1\"\n").expect("scenario")
    }

    fn failed(at_s: u64) -> (Duration, u32, AgentOutcome) {
        let failure = AgentOutcome::Failed("recovery failed".to_owned());
        (Duration::from_secs(at_s), 1, failure)
    }

    /// R46 excuses the failed recovery right after the deletion, and no other: the bug
    /// class the oracle caught before R46 (a recovery that fails on a legal crash state)
    /// is still caught in a run that also deleted an agent directory.
    #[test]
    fn a_deleted_agent_directory_excuses_the_next_exit_only() {
        let mut observations = Observations::default();
        let deletion = format!("{AGENT_DIR_DELETED}: meta/slaves/a1 (meta/slaves/latest dangles)");
        observations
            .faults
            .push((Duration::from_secs(10), deletion));
        observations.agent_exits = vec![failed(5), failed(12), failed(40)];
        let violations = check(&scenario(), &observations);
        let times: Vec<Duration> = violations.iter().map(|v| v.time).collect();
        assert_eq!(times, [Duration::from_secs(5), Duration::from_secs(40)]);
    }

    /// Seed 1656 of `swarm_agent_machine`: the first start after the deletion died at a
    /// filesystem operation of its recovery; the next met the dangling link. That one is
    /// excused, a failure after it is not.
    #[test]
    fn a_crash_before_the_dangling_link_is_met_passes_the_excuse_on() {
        let mut observations = Observations::default();
        let deletion = format!("{AGENT_DIR_DELETED}: meta/slaves/a1 (meta/slaves/latest dangles)");
        observations
            .faults
            .push((Duration::from_secs(10), deletion));
        let crashed = (Duration::from_secs(11), 1, AgentOutcome::Crashed);
        let disk = AgentOutcome::DiskFailure("eio".to_owned());
        observations.agent_exits = vec![
            crashed,
            (Duration::from_secs(12), 1, disk),
            failed(13),
            failed(40),
        ];
        let violations = check(&scenario(), &observations);
        let times: Vec<Duration> = violations.iter().map(|v| v.time).collect();
        assert_eq!(times, [Duration::from_secs(40)]);
    }

    fn incompatible_stop(at_s: u64) -> (Duration, u32, AgentOutcome) {
        let message = format!("{INCOMPATIBLE_INFO} checkpointed agent1:5051 with resources mem(*):1024, flags say agent1:5051 with resources mem(*):512");
        (Duration::from_secs(at_s), 1, AgentOutcome::Failed(message))
    }

    /// R9 (docs/simulator-reach.md 15f): an incompatible change of resources excuses the
    /// stop of the next start, and nothing else: a later failed recovery, the same stop
    /// without such a change, a stop after an additive change, and another failure right
    /// after the change are all still caught.
    #[test]
    fn an_incompatible_reconfiguration_excuses_its_own_stop_only() {
        let change = |at_s: u64, what: &str| {
            (
                Duration::from_secs(at_s),
                format!("{what} (restart after 3.0s with --resources mem(*):512)"),
            )
        };
        let mut observations = Observations::default();
        observations
            .faults
            .push(change(10, INCOMPATIBLE_RECONFIGURATION));
        let crashed = (Duration::from_secs(11), 1, AgentOutcome::Crashed);
        observations.agent_exits = vec![
            incompatible_stop(5),
            crashed,
            incompatible_stop(13),
            incompatible_stop(20),
            failed(40),
        ];
        let times: Vec<Duration> = check(&scenario(), &observations)
            .iter()
            .map(|v| v.time)
            .collect();
        let at = |s: u64| Duration::from_secs(s);
        assert_eq!(times, [at(5), at(20), at(40)]);
        // A failure of another kind right after the change is not excused.
        observations.agent_exits = vec![failed(13)];
        assert_eq!(check(&scenario(), &observations).len(), 1);
        // Nor is the stop after an additive change.
        observations.faults = vec![change(10, crate::corrupt::ADDITIVE_RECONFIGURATION)];
        observations.agent_exits = vec![incompatible_stop(13)];
        assert_eq!(check(&scenario(), &observations).len(), 1);
    }

    #[test]
    fn without_damage_every_failed_exit_is_a_violation() {
        let observations = Observations {
            agent_exits: vec![failed(12)],
            ..Observations::default()
        };
        assert_eq!(check(&scenario(), &observations).len(), 1);
    }
}
