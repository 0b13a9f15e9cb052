//! Rule: a fixed scenario ends as its `[expect]` section says (task states, reasons and
//! messages the framework sees, whether each agent kept its id, which agents
//! re-registered, which executors were reconnected, whether the agent exited).

use std::collections::{BTreeMap, BTreeSet};

use super::Violation;
use crate::decision::Decision;
use crate::observations::{AgentOutcome, Observations};
use crate::scenario::Scenario;
use crate::trace::TraceEvent;

/// Checks the rule.
pub fn check(
    scenario: &Scenario,
    trace: &[TraceEvent],
    observations: &Observations,
) -> Vec<Violation> {
    let Some(expect) = &scenario.expect else {
        return Vec::new();
    };
    let end = std::time::Duration::from_secs_f64(scenario.duration_s);
    let mut out = Vec::new();
    let mut push = |message: String| {
        out.push(Violation {
            time: end,
            oracle: "expectations",
            message,
        })
    };
    for (task, state) in &expect.states {
        let last = observations.seen.iter().rev().find(|s| &s.task == task);
        match last {
            Some(seen) if seen.state.as_str_name() == state => {}
            Some(seen) => push(format!(
                "task {task} ended {} (reason {}), expected {state}",
                seen.state.as_str_name(),
                seen.reason
            )),
            None => push(format!("task {task} was never heard of, expected {state}")),
        }
    }
    for (task, reason) in &expect.reasons {
        let last = observations.seen.iter().rev().find(|s| &s.task == task);
        if last.is_none_or(|s| &s.reason != reason) {
            push(format!(
                "task {task} ended with reason {}, expected {reason}",
                last.map(|s| s.reason.as_str()).unwrap_or("none")
            ));
        }
    }
    // docs/recovery-rules.md R17: the message says why the task failed.
    for (task, words) in &expect.messages {
        let last = observations.seen.iter().rev().find(|s| &s.task == task);
        if last.is_none_or(|s| !s.message.contains(words.as_str())) {
            push(format!(
                "task {task} ended with message {:?}, expected one containing {words:?}",
                last.map(|s| s.message.as_str()).unwrap_or("none")
            ));
        }
    }
    if let Some(same) = expect.same_agent_id {
        // Each agent process of the machine on its own (its trace host).
        let mut ids: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for event in trace.iter().filter(|e| {
            e.is(Decision::RegisteredWithMaster) || e.is(Decision::ReregisteredWithMaster)
        }) {
            if let Some(id) = event.field("agent") {
                ids.entry(event.host.as_str()).or_default().insert(id);
            }
        }
        for index in 1..=scenario.agents {
            let host = crate::observations::agent_trace_host(index);
            let ids = ids.remove(host.as_str()).unwrap_or_default();
            let agent = if scenario.agents > 1 {
                format!("agent {host}")
            } else {
                "agent".to_owned()
            };
            if same && ids.len() != 1 {
                push(format!("expected the {agent} to keep one id, saw {ids:?}"));
            }
            if !same && ids.len() < 2 {
                push(format!(
                    "expected the {agent} to register under a new id, saw {ids:?}"
                ));
            }
        }
    }
    for index in &expect.reregistered {
        let host = crate::observations::agent_trace_host(*index);
        let reregistered = trace
            .iter()
            .any(|e| e.host == host && e.is(Decision::ReregisteredWithMaster));
        if !reregistered {
            push(format!(
                "agent {index} ({host}) did not re-register with the master"
            ));
        }
    }
    for task in &expect.reconnected {
        let reconnected = trace.iter().any(|e| {
            e.is(Decision::ExecutorReconnected) && e.field("executor") == Some(task.as_str())
        });
        if !reconnected {
            push(format!("executor of task {task} was not reconnected"));
        }
    }
    // `collected` names executors whose directories must be gone from the disk at the
    // end: the executor's meta directory and its sandbox, with every run in them
    // (docs/lifecycle-rules.md rule 3). When it names every task of a framework, that
    // framework's directories (meta and sandbox) must be gone too.
    if !expect.collected.is_empty() {
        let work_dir = crate::observations::agent_work_dir(1);
        let disk = &observations.disk_at_end;
        // <work_dir>/[meta/]slaves/<agent>/frameworks/<framework>/executors/<executor>
        let executor_dirs = |name: &str| -> Vec<std::path::PathBuf> {
            disk.keys()
                .filter(|p| {
                    p.file_name().is_some_and(|n| n == name)
                        && p.parent()
                            .and_then(|d| d.file_name())
                            .is_some_and(|n| n == "executors")
                })
                .cloned()
                .collect()
        };
        for executor in &expect.collected {
            for dir in executor_dirs(executor) {
                push(format!(
                    "directory {} of executor {executor} was not garbage collected",
                    dir.strip_prefix(&work_dir).unwrap_or(&dir).display()
                ));
            }
        }
        let frameworks = scenario.frameworks.max(1);
        for framework in 1..=frameworks {
            let tasks: Vec<String> =
                crate::observations::tasks_for_oracles(scenario, observations.seed)
                    .into_iter()
                    .map(|(task, _)| task.task_id)
                    .filter(|t| crate::observations::framework_of(scenario, t) == framework)
                    .collect();
            let done = !tasks.is_empty() && tasks.iter().all(|t| expect.collected.contains(t));
            if done && frameworks == 1 {
                let left: Vec<&std::path::PathBuf> = disk
                    .keys()
                    .filter(|p| {
                        p.parent()
                            .and_then(|d| d.file_name())
                            .is_some_and(|n| n == "frameworks")
                    })
                    .collect();
                for dir in left {
                    push(format!(
                        "directory {} of framework {framework} was not garbage collected",
                        dir.strip_prefix(&work_dir).unwrap_or(dir).display()
                    ));
                }
            }
        }
    }
    for executor in &expect.destroyed {
        let destroyed = trace.iter().any(|e| {
            e.field("executor") == Some(executor.as_str())
                && (e.is(Decision::ExecutorReregistrationTimedOut)
                    || e.is(Decision::CleanupRecovery)
                    || e.is(Decision::ExecutorProcessGone))
        });
        if !destroyed {
            push(format!(
                "executor {executor} was not destroyed after the restart"
            ));
        }
    }
    if let Some(expected) = &expect.checkpointed_resources {
        // What the agent's disk holds at the end (L19), not what its log said.
        let agent = observations
            .history
            .final_resources
            .get(&1)
            .cloned()
            .flatten()
            .filter(|r| !r.is_empty());
        if agent.as_deref() != Some(expected.as_str()) {
            push(format!(
                "the agent's disk ended with checkpointed resources {}, expected {expected}",
                agent.as_deref().unwrap_or("none")
            ));
        }
        let master = crate::oracles::resources::master_view(trace, 1).map(|(_, view)| view);
        if master != Some(expected.as_str()) {
            push(format!(
                "the master's last view of the agent's checkpointed resources is {}, expected {expected}",
                master.unwrap_or("none")
            ));
        }
    }
    for executor in &expect.shut_down {
        let asked = trace.iter().any(|e| {
            e.field("executor") == Some(executor.as_str())
                && (e.is(Decision::AskingExecutorToShutDown)
                    || e.is(Decision::ShutDownFrameworkExecutorTerminated))
        });
        if !asked {
            push(format!(
                "executor {executor} was not shut down with its framework"
            ));
        }
        if observations.live_executors_at_end.contains(executor) {
            push(format!("executor {executor} is still alive at the end"));
        }
    }
    if let Some(expected) = &expect.frameworks_removed {
        let expected: std::collections::BTreeSet<u32> = expected.iter().copied().collect();
        if expected != observations.removed_frameworks {
            push(format!(
                "expected the master to tell frameworks {expected:?} they were removed, it told {:?}",
                observations.removed_frameworks
            ));
        }
    }
    // docs/recovery-rules.md R54: the master hears the restarted agent re-register
    // within the bound, whatever the agent says of its own recovery.
    if let Some(bound) = expect.reregistered_within_s {
        let bound = std::time::Duration::from_secs_f64(bound.max(0.0));
        let starts = trace
            .iter()
            .filter(|e| e.is(Decision::AgentProcessStarting))
            .skip(1);
        for start in starts {
            let back = trace
                .iter()
                .find(|e| e.time >= start.time && e.is(Decision::MasterAgentReregistered));
            match back {
                Some(back) if back.time - start.time <= bound => {}
                Some(back) => push(format!(
                    "the agent restarted at {:?} was re-registered by the master {:?} later, expected within {bound:?}",
                    start.time,
                    back.time - start.time
                )),
                None => push(format!(
                    "the agent restarted at {:?} was never re-registered by the master, expected within {bound:?}",
                    start.time
                )),
            }
        }
    }
    if let Some(exits) = expect.agent_exits {
        let exited = observations
            .agent_exits
            .iter()
            .any(|(_, _, o)| matches!(o, AgentOutcome::Exited(_) | AgentOutcome::Failed(_)));
        if exits != exited {
            push(format!(
                "expected agent_exits = {exits}, the agent {}",
                if exited { "exited" } else { "kept running" }
            ));
        }
    }
    out
}
