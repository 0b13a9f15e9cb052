//! The history checker: rules L13, L14, L15 and L17 of `docs/task-lifecycle.md`, judged
//! over the whole history the simulator recorded outside the code under test (updates
//! the frameworks received, executor processes the machine's process table started and
//! ended, agent starts by boot):
//! - L13: a repeated uuid is a retry: every delivery of one uuid carries the same task,
//!   state, reason and agent id, and a uuid never arrives again once a later update of
//!   the same task's stream arrived (unless corruption was injected into the
//!   checkpoints: recovery then cuts the acknowledgements after the corrupt record and
//!   replays what they acknowledged);
//! - L14: an agent incarnation launches a command executor (named after its one task)
//!   at most once, and never runs two processes of one executor id at the same time
//!   (an id several tasks chose may run again once its run ended);
//! - L15: an update from an agent id registered in boot `b` is never about an executor
//!   whose processes were all started in earlier boots (no executor adopted across a
//!   boot); for an executor id that tasks chose, which may be launched again in a later
//!   boot, or a command executor whose processes all hung before registering
//!   (docs/lifecycle-rules.md rule 23), only about a task that ran before boot `b` began;
//! - L17: when the run ends with the agent running, every executor process alive that
//!   ran a task (reported on one itself) has a task that is non-terminal as its
//!   framework sees it (or a torn-down framework).
//!
//! (L1 to L5 are the terminal oracle's, L6 to L12 the delivery oracle's, L16 the
//! liveness oracle's.)

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use revenant::domain::task_state::is_terminal;
use revenant::ids::Uuid;
use revenant::proto::TaskState;

use super::Violation;
use crate::decision::Decision;
use crate::history::{Delivery, History, Source};
use crate::observations::{agent_of_host, Observations};
use crate::scenario::Scenario;
use crate::trace::TraceEvent;

/// Checks the rules.
pub fn check(
    scenario: &Scenario,
    trace: &[TraceEvent],
    observations: &Observations,
) -> Vec<Violation> {
    let history = &observations.history;
    let mut out = Vec::new();
    out.extend(duplicates(history, observations.corruption_injected));
    out.extend(launches(scenario, observations));
    out.extend(adoption(trace, history));
    out.extend(left_behind(scenario, observations));
    out
}

fn violation(time: Duration, message: String) -> Violation {
    Violation {
        time,
        oracle: "history",
        message,
    }
}

/// L13.
fn duplicates(history: &History, corruption_injected: bool) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut first: BTreeMap<Uuid, &Delivery> = BTreeMap::new();
    // Per task: the uuids of its stream in order of first arrival.
    let mut order: BTreeMap<&str, Vec<Uuid>> = BTreeMap::new();
    for delivery in &history.deliveries {
        let (Source::Agent, Some(uuid)) = (delivery.source, delivery.uuid) else {
            continue;
        };
        match first.get(&uuid) {
            None => {
                first.insert(uuid, delivery);
                order.entry(&delivery.task).or_default().push(uuid);
            }
            Some(earlier) => {
                if (
                    &earlier.task,
                    earlier.state,
                    &earlier.reason,
                    &earlier.agent_id,
                ) != (
                    &delivery.task,
                    delivery.state,
                    &delivery.reason,
                    &delivery.agent_id,
                ) {
                    out.push(violation(
                        delivery.time,
                        format!(
                            "uuid {uuid} reached the framework as task {} {} from agent {} and again as task {} {} from agent {} (L13)",
                            earlier.task,
                            earlier.state.as_str_name(),
                            earlier.agent_id,
                            delivery.task,
                            delivery.state.as_str_name(),
                            delivery.agent_id
                        ),
                    ));
                }
                let stream = order.get(delivery.task.as_str());
                // Injected corruption may cut acknowledgements off a checkpoint, which
                // non-strict recovery then replays (L13).
                if !corruption_injected
                    && stream.is_some_and(|s| s.last() != Some(&uuid) && s.contains(&uuid))
                {
                    out.push(violation(
                        delivery.time,
                        format!(
                            "update {uuid} of task {} ({}) reached the framework again after a later update of its stream (L13)",
                            delivery.task,
                            delivery.state.as_str_name()
                        ),
                    ));
                }
            }
        }
    }
    out
}

/// L14.
fn launches(scenario: &Scenario, observations: &Observations) -> Vec<Violation> {
    // Command executors: named after their one task. An executor id that tasks chose
    // may run several times in one incarnation, one run after the other
    // (docs/lifecycle-rules.md rule 14).
    let mut tasks_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (task, executor) in crate::observations::executors_of_tasks(scenario, observations.seed) {
        tasks_of.entry(executor).or_default().push(task);
    }
    let tasks: BTreeSet<String> = tasks_of
        .into_iter()
        .filter(|(executor, tasks)| tasks.len() == 1 && tasks[0] == *executor)
        .map(|(executor, _)| executor)
        .collect();
    let mut by_incarnation: BTreeMap<(u32, u64, &str), Vec<&crate::history::ProcessRecord>> =
        BTreeMap::new();
    for process in &observations.history.processes {
        by_incarnation
            .entry((process.owner, process.incarnation, &process.executor_id))
            .or_default()
            .push(process);
    }
    let mut out = Vec::new();
    for ((owner, incarnation, executor), processes) in by_incarnation {
        if processes.len() < 2 {
            continue;
        }
        let second = processes[1];
        if tasks.contains(executor) {
            out.push(violation(
                second.started,
                format!(
                    "incarnation {incarnation} of agent {owner} launched the executor of task {executor} {} times (L14)",
                    processes.len()
                ),
            ));
            continue;
        }
        for pair in processes.windows(2) {
            let overlap = pair[0].ended.is_none_or(|(end, _)| end > pair[1].started);
            if overlap {
                out.push(violation(
                    pair[1].started,
                    format!(
                        "incarnation {incarnation} of agent {owner} started executor {executor} while an earlier process of it was alive (L14)"
                    ),
                ));
            }
        }
    }
    out
}

/// L15.
fn adoption(trace: &[TraceEvent], history: &History) -> Vec<Violation> {
    // Registrations of agent ids, from the agents' hosts: (time, agent process, id).
    let registrations: Vec<(Duration, u32, &str)> = trace
        .iter()
        .filter(|e| e.is(Decision::RegisteredWithMaster) || e.is(Decision::ReregisteredWithMaster))
        .filter_map(|e| Some((e.time, agent_of_host(&e.host)?, e.field("agent")?)))
        .collect();
    let boot_at = |agent: u32, time: Duration| -> Option<u64> {
        history
            .agent_starts
            .iter()
            .filter(|s| s.agent == agent && s.time <= time)
            .map(|s| s.boot)
            .next_back()
    };
    // When each task first reported on itself through its executor (it ran then).
    let mut ran_at: BTreeMap<&str, Duration> = BTreeMap::new();
    for delivery in &history.deliveries {
        if delivery.made_by == "SOURCE_EXECUTOR" {
            ran_at.entry(&delivery.task).or_insert(delivery.time);
        }
    }
    let mut out = Vec::new();
    let mut reported: BTreeSet<(&str, &str)> = BTreeSet::new();
    for delivery in &history.deliveries {
        if delivery.source != Source::Agent
            || delivery.agent_id.is_empty()
            || delivery.executor_id.is_empty()
        {
            continue;
        }
        // The boot of the latest registration of the delivery's agent id before it.
        let Some((agent, boot)) = registrations
            .iter()
            .rfind(|(time, _, id)| *time <= delivery.time && *id == delivery.agent_id)
            .and_then(|(time, agent, _)| Some((*agent, boot_at(*agent, *time)?)))
        else {
            continue;
        };
        // An executor id that tasks chose is used again across boots: only a task that
        // ran before this boot began can have been adopted (docs/lifecycle-rules.md
        // rule 14). A command executor is its task's alone, unless every process it had
        // hung before registering: such a process ran nothing, and its task may still
        // be placed on the new agent (docs/lifecycle-rules.md rule 23).
        let all_hung = history
            .processes
            .iter()
            .filter(|p| p.owner == agent && p.executor_id == delivery.executor_id)
            .all(|p| p.hung);
        if delivery.executor_id != delivery.task || all_hung {
            let boot_began = history
                .agent_starts
                .iter()
                .filter(|s| s.agent == agent && s.boot == boot)
                .map(|s| s.time)
                .min();
            let ran_before = ran_at
                .get(delivery.task.as_str())
                .is_some_and(|at| boot_began.is_some_and(|began| *at < began));
            if !ran_before {
                continue;
            }
        }
        let boots: BTreeSet<u64> = history
            .processes
            .iter()
            .filter(|p| p.owner == agent && p.executor_id == delivery.executor_id)
            .map(|p| p.boot)
            .collect();
        if !boots.is_empty()
            && boots.iter().all(|b| *b < boot)
            && reported.insert((&delivery.agent_id, &delivery.executor_id))
        {
            out.push(violation(
                delivery.time,
                format!(
                    "agent {} of boot {boot} reported task {} {} of executor {}, whose processes ran only in boot(s) {boots:?} (L15)",
                    delivery.agent_id,
                    delivery.task,
                    delivery.state.as_str_name(),
                    delivery.executor_id
                ),
            ));
        }
    }
    out
}

/// L17.
fn left_behind(scenario: &Scenario, observations: &Observations) -> Vec<Violation> {
    if !observations.agent_running_at_end
        || scenario.agents > 1
        || scenario
            .expect
            .as_ref()
            .is_some_and(|e| e.agent_exits == Some(true))
    {
        return Vec::new();
    }
    let history = &observations.history;
    // The state each task ended in as its framework knows it (a terminal state sticks).
    let mut known: BTreeMap<&str, TaskState> = BTreeMap::new();
    let mut executors: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut ran: BTreeSet<&str> = BTreeSet::new();
    for delivery in &history.deliveries {
        if delivery.made_by == "SOURCE_EXECUTOR" {
            ran.insert(&delivery.executor_id);
        }
        if !delivery.executor_id.is_empty() {
            executors
                .entry(&delivery.executor_id)
                .or_default()
                .insert(&delivery.task);
        }
        if !known
            .get(delivery.task.as_str())
            .is_some_and(|s| is_terminal(*s))
        {
            known.insert(&delivery.task, delivery.state);
        }
    }
    let end = Duration::from_secs_f64(scenario.duration_s);
    let mut out = Vec::new();
    for process in history.alive_at_end() {
        let executor = process.executor_id.as_str();
        if !ran.contains(executor) {
            // Never ran a task: shut down at its registration timeout (L17).
            continue;
        }
        let mut tasks: BTreeSet<&str> = executors.get(executor).cloned().unwrap_or_default();
        tasks.insert(executor);
        if tasks.iter().any(|t| observations.framework_gone(t)) {
            continue;
        }
        let all_terminal = tasks
            .iter()
            .all(|t| known.get(t).is_none_or(|s| is_terminal(*s)))
            && tasks.iter().any(|t| known.contains_key(t));
        if all_terminal {
            out.push(violation(
                end,
                format!(
                    "executor {executor} (pid {}, boot {}) is alive at the end although its task(s) {tasks:?} ended as the framework sees it (L17)",
                    process.pid, process.boot
                ),
            ));
        }
    }
    out
}
