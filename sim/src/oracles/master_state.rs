//! Rules L25, L26 and L27 of `docs/task-lifecycle.md`: what the leading masters report
//! (their `/state`, taken at every tick by `crate::master_reports`) agrees with what the
//! frameworks heard (the history, recorded on the frameworks' side of the wire):
//! - L25: an agent a leading master listed removed is never listed connected or
//!   disconnected again (judged over every tick's report, not only the last);
//! - L26: a task whose framework heard a terminal state is not listed in a non-terminal
//!   state;
//! - L27: every task listed was submitted by a framework;
//! - L37: after an agent incarnation (re-)registers, the master lists the agent with the
//!   resources that incarnation was started with ([`check_resources`]).
//!
//! Only reports of a master that says it leads are judged; a run that ends with no
//! leader is not judged here (the liveness rules cover it).

use std::collections::{BTreeMap, BTreeSet};

use revenant::domain::task_state::is_terminal;
use revenant::proto::TaskState;

use super::Violation;
use crate::decision::Decision;
use crate::hosts::agent_of_host;
use crate::observations::Observations;
use crate::scenario::Scenario;
use crate::trace::TraceEvent;

/// Checks the rules.
pub fn check(scenario: &Scenario, observations: &Observations) -> Vec<Violation> {
    let end = std::time::Duration::from_secs_f64(scenario.duration_s.max(0.0));
    let mut out = Vec::new();
    let deliveries = &observations.history.deliveries;
    // L26: the tasks whose framework heard a terminal state: the first one heard.
    let mut ended: BTreeMap<&str, (std::time::Duration, TaskState)> = BTreeMap::new();
    for delivery in deliveries {
        if is_terminal(delivery.state) {
            ended
                .entry(delivery.task.as_str())
                .or_insert((delivery.time, delivery.state));
        }
    }
    // L25: once a leading master listed an agent removed, no leading master lists it
    // connected or disconnected again.
    let mut removed: BTreeMap<&str, (std::time::Duration, &str)> = BTreeMap::new();
    for (time, master, agent, phase) in &observations.master_agent_phases {
        if phase == "removed" {
            removed
                .entry(agent.as_str())
                .or_insert((*time, master.as_str()));
        } else if let Some((at, by)) = removed.get(agent.as_str()) {
            out.push(Violation {
                time: *time,
                oracle: "master_state",
                message: format!(
                    "{master} lists agent {agent} {phase} at {:.3} s, but {by} had removed it at {:.3} s: a removed agent was admitted again under its old id (L25)",
                    time.as_secs_f64(),
                    at.as_secs_f64()
                ),
            });
        }
    }
    for (master, (time, report)) in &observations.master_reports {
        // The end of the run: a master's last report from its final second (a master
        // that died earlier said nothing at the end).
        if !report.leading || *time + std::time::Duration::from_secs(1) < end {
            continue;
        }
        let mut push = |message: String| {
            out.push(Violation {
                time: *time,
                oracle: "master_state",
                message: format!("{master} reports at the end: {message}"),
            })
        };
        for agent in &report.agents {
            for task in &agent.tasks {
                let state = TaskState::from_str_name(&task.state).unwrap_or_default();
                if is_terminal(state) {
                    continue;
                }
                if let Some((heard, first)) = ended.get(task.id.as_str()) {
                    push(format!(
                        "task {} is {} on agent {} ({}), but its framework heard it {} at {:.3} s (L26)",
                        task.id,
                        task.state,
                        agent.id,
                        agent.phase,
                        first.as_str_name(),
                        heard.as_secs_f64()
                    ));
                }
            }
        }
        let listed: BTreeSet<&str> = report
            .agents
            .iter()
            .flat_map(|a| a.tasks.iter().map(|t| t.id.as_str()))
            .chain(
                report
                    .completed_frameworks
                    .iter()
                    .flat_map(|f| f.tasks.iter().map(|t| t.id.as_str())),
            )
            .chain(report.orphan_tasks.iter().map(|t| t.id.as_str()))
            .collect();
        for task in listed {
            if !observations.submitted.contains(task) {
                push(format!(
                    "task {task} is listed, but no framework submitted it (L27)"
                ));
            }
        }
    }
    out
}

/// docs/task-lifecycle.md L37: once an agent incarnation has registered or re-registered,
/// the leading master's `/state` lists the agent with the resources that incarnation was
/// started with (its `--resources`; dynamic reservations are kept apart, as the master's
/// view of its checkpointed resources). Judged from the masters' reports
/// (`Observations::master_agent_resources`), not from the agent's log: for each
/// registration the incarnation heard, the master's last registration of that id before
/// it (on the master's host, since the incarnation started), and that master's first
/// report of the id within a second after it (a report changes when the phase does,
/// and a registration makes the agent connected). A registration with no such report
/// (the master stopped leading or died before its next tick) is not judged.
pub fn check_resources(trace: &[TraceEvent], observations: &Observations) -> Vec<Violation> {
    let window = std::time::Duration::from_secs(1);
    let starts = &observations.history.agent_starts;
    let mut out = Vec::new();
    let mut judged: BTreeSet<(u32, u64, String)> = BTreeSet::new();
    for heard in trace
        .iter()
        .filter(|e| e.is(Decision::RegisteredWithMaster) || e.is(Decision::ReregisteredWithMaster))
    {
        let (Some(agent), Some(id)) = (agent_of_host(&heard.host), heard.field("agent")) else {
            continue;
        };
        let Some(start) = starts
            .iter()
            .rfind(|s| s.agent == agent && s.time <= heard.time)
        else {
            continue;
        };
        let Some(flags) = &start.flag_resources else {
            continue;
        };
        let Some(admitted) = trace.iter().rfind(|e| {
            e.time >= start.time
                && e.time <= heard.time
                && e.host.starts_with("master")
                && (e.message == "agent registered" || e.message == "agent re-registered")
                && e.field("agent") == Some(id)
        }) else {
            continue;
        };
        let Some((reported, master, _, _, resources)) = observations
            .master_agent_resources
            .iter()
            .filter(|(_, master, agent_id, _, _)| {
                agent_id == id && master.split(':').next() == Some(admitted.host.as_str())
            })
            .find(|(time, ..)| *time >= admitted.time && *time <= admitted.time + window)
        else {
            continue;
        };
        if resources == flags || !judged.insert((agent, start.incarnation, id.to_owned())) {
            continue;
        }
        out.push(Violation {
            time: *reported,
            oracle: "master_state",
            message: format!(
                "{master} lists agent {id} with resources {resources} after incarnation {} of agent process {agent} {} at {:.3} s, but that incarnation was started with --resources {flags} (L37)",
                start.incarnation,
                if heard.is(Decision::RegisteredWithMaster) { "registered" } else { "re-registered" },
                heard.time.as_secs_f64()
            ),
        });
    }
    out
}
