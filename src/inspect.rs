//! `revenant inspect`: a read-only recovery of a meta directory, reported for a person or
//! as JSON for tools. It runs the agent's own recovery code with `truncate` off, so it
//! never changes the directory.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{json, Value};

use crate::checkpoint::paths::MetaPaths;
use crate::checkpoint::recover::{ExecutorState, RunState, TaskState};
use crate::checkpoint::{recover, RecoverOptions, RecoveryError, State, WarningKind};
use crate::ids::Uuid;
use crate::os::FileSystem;
use crate::proto::{StatusUpdate, TaskState as ProtoTaskState};

/// Recovers `work_dir`'s meta directory without changing it. `current_boot_id` is the
/// machine's boot id (to report a reboot), or `None` to skip that check.
pub fn inspect(
    fs: &dyn FileSystem,
    work_dir: &Path,
    strict: bool,
    current_boot_id: Option<String>,
) -> Result<Option<State>, RecoveryError> {
    let paths = MetaPaths::for_work_dir(work_dir);
    recover(
        fs,
        &paths,
        &RecoverOptions {
            strict,
            truncate: false,
            current_boot_id,
        },
    )
}

fn state_name(state: ProtoTaskState) -> &'static str {
    state.as_str_name()
}

fn update_line(update: &StatusUpdate) -> String {
    let status = update.status.clone().unwrap_or_default();
    let uuid = Uuid::from_bytes(&update.uuid)
        .map(|uuid| uuid.to_string())
        .unwrap_or_default();
    let mut line = format!("{} uuid {uuid}", state_name(status.state()));
    if status.reason != 0 {
        let _ = write!(line, " reason {}", status.reason().as_str_name());
    }
    if !status.message.is_empty() {
        let _ = write!(line, " message {:?}", status.message);
    }
    line
}

/// The report for a person.
pub fn render_text(work_dir: &Path, state: Option<&State>) -> String {
    let mut out = String::new();
    let meta = MetaPaths::for_work_dir(work_dir);
    let _ = writeln!(out, "meta directory: {}", meta.root().display());
    let Some(state) = state else {
        let _ = writeln!(out, "nothing to recover (no meta directory: a first start)");
        return out;
    };
    match (&state.checkpointed_boot_id, state.rebooted) {
        (Some(id), false) => {
            let _ = writeln!(out, "boot id: {id}");
        }
        (Some(id), true) => {
            let _ = writeln!(
                out,
                "boot id: {id} (the machine rebooted since: agent state is not recovered)"
            );
        }
        (None, _) => {
            let _ = writeln!(out, "boot id: none checkpointed");
        }
    }
    if let Some(resources) = &state.resources {
        let listed: Vec<String> = resources
            .resources
            .iter()
            .map(|r| {
                let role = if r.role.is_empty() { "*" } else { &r.role };
                format!("{}({role}):{}", r.name, r.scalar)
            })
            .collect();
        let _ = writeln!(
            out,
            "checkpointed resources: {}",
            if listed.is_empty() {
                "none".to_owned()
            } else {
                listed.join("; ")
            }
        );
    }
    match &state.agent {
        None => {
            let _ = writeln!(out, "agent: none recovered");
        }
        Some(agent) => {
            let _ = write!(out, "agent {}", agent.id);
            match &agent.info {
                Some(info) => {
                    let _ = writeln!(out, " at {}:{}", info.hostname, info.port);
                }
                None => {
                    let _ = writeln!(out, " (no agent info)");
                }
            }
            for framework in agent.frameworks.values() {
                let name = framework
                    .info
                    .as_ref()
                    .map(|i| i.name.as_str())
                    .unwrap_or("?");
                let pid = match framework.pid.as_deref() {
                    Some("") => "none".to_owned(),
                    Some(pid) => pid.to_owned(),
                    None => "missing".to_owned(),
                };
                let _ = writeln!(out, "  framework {} ({name}) pid {pid}", framework.id);
                for executor in framework.executors.values() {
                    render_executor(&mut out, executor);
                }
            }
        }
    }
    let _ = writeln!(out, "errors: {}", state.errors);
    let _ = writeln!(out, "warnings: {}", state.warnings.len());
    for warning in &state.warnings {
        let _ = writeln!(out, "  - {warning}");
    }
    out
}

fn render_executor(out: &mut String, executor: &ExecutorState) {
    let latest = executor
        .latest
        .as_ref()
        .map(|id| id.to_string())
        .unwrap_or_else(|| "none".to_owned());
    let _ = writeln!(out, "    executor {} latest run {latest}", executor.id);
    let Some(run) = executor
        .latest
        .as_ref()
        .and_then(|id| executor.runs.get(id))
    else {
        return;
    };
    render_run(out, run);
    let older = executor.runs.len() - 1;
    if older > 0 {
        let _ = writeln!(out, "      ({older} older run(s), to be collected)");
    }
}

fn render_run(out: &mut String, run: &RunState) {
    let forked = run
        .forked_pid
        .as_ref()
        .map(|f| format!("{} boot {}", f.process, f.boot_id))
        .unwrap_or_else(|| "none".to_owned());
    let connection = match (run.http, &run.libprocess_pid) {
        (Some(true), _) => "http".to_owned(),
        (_, Some(address)) => format!("at {address}"),
        _ => "never registered".to_owned(),
    };
    let _ = writeln!(
        out,
        "      run {}: forked {forked}; {connection}{}",
        run.id,
        if run.completed { "; completed" } else { "" }
    );
    for task in run.tasks.values() {
        render_task(out, task);
    }
}

/// The state `inspect` shows for a task, the same in text and JSON: its latest
/// checkpointed update's state; TASK_STAGING for a task whose info was checkpointed but
/// that has no update yet (the agent launched it; nothing has been reported); `None` when
/// not even the task's info is on disk.
fn shown_state(task: &TaskState) -> Option<&'static str> {
    task.latest_state()
        .map(state_name)
        .or(task.info.is_some().then_some("TASK_STAGING"))
}

fn render_task(out: &mut String, task: &TaskState) {
    let latest = shown_state(task).unwrap_or("unknown");
    let unacknowledged: Vec<&StatusUpdate> = task.unacknowledged().collect();
    let _ = writeln!(
        out,
        "        task {} {latest}: {} update(s), {} acknowledged, {} unacknowledged{}",
        task.id,
        task.updates.len(),
        task.acks.len(),
        unacknowledged.len(),
        if task.bytes_cut > 0 {
            format!(", {} byte(s) of torn or corrupt tail", task.bytes_cut)
        } else {
            String::new()
        }
    );
    for update in unacknowledged {
        let _ = writeln!(out, "          unacknowledged {}", update_line(update));
    }
}

fn warning_kind(kind: &WarningKind) -> Value {
    match kind {
        WarningKind::Missing => json!("missing"),
        WarningKind::Empty => json!("empty"),
        WarningKind::DanglingLatest => json!("dangling_latest"),
        WarningKind::TornTail { offset, bytes } => {
            json!({"torn_tail": {"offset": offset, "bytes": bytes}})
        }
        WarningKind::Error => json!("error"),
        WarningKind::Rebooted => json!("rebooted"),
    }
}

fn update_json(update: &StatusUpdate) -> Value {
    let status = update.status.clone().unwrap_or_default();
    json!({
        "uuid": Uuid::from_bytes(&update.uuid).map(|u| u.to_string()),
        "state": state_name(status.state()),
        "reason": status.reason().as_str_name(),
        "message": status.message,
    })
}

/// The report as JSON.
pub fn render_json(work_dir: &Path, state: Option<&State>) -> Value {
    let meta = MetaPaths::for_work_dir(work_dir);
    let Some(state) = state else {
        return json!({"meta_dir": meta.root(), "recovered": false});
    };
    let agent = state.agent.as_ref().map(|agent| {
        let frameworks: Vec<Value> = agent
            .frameworks
            .values()
            .map(|framework| {
                let executors: Vec<Value> = framework
                    .executors
                    .values()
                    .map(|executor| {
                        let runs: Vec<Value> = executor
                            .runs
                            .values()
                            .map(|run| {
                                let tasks: Vec<Value> = run
                                    .tasks
                                    .values()
                                    .map(|task| {
                                        json!({
                                            "id": task.id.as_str(),
                                            "has_info": task.info.is_some(),
                                            "latest_state": shown_state(task),
                                            "updates": task.updates.iter().map(update_json).collect::<Vec<_>>(),
                                            "acknowledged": task.acks.iter().map(|u| u.to_string()).collect::<Vec<_>>(),
                                            "unacknowledged": task.unacknowledged().map(update_json).collect::<Vec<_>>(),
                                            "bytes_cut": task.bytes_cut,
                                            "errors": task.errors,
                                        })
                                    })
                                    .collect();
                                json!({
                                    "id": run.id.as_str(),
                                    "forked_pid": run.forked_pid.as_ref().map(|f| json!({"pid": f.process.pid, "start_time": f.process.start_time, "boot_id": f.boot_id})),
                                    "libprocess_pid": run.libprocess_pid,
                                    "http": run.http,
                                    "completed": run.completed,
                                    "tasks": tasks,
                                    "errors": run.errors,
                                })
                            })
                            .collect();
                        json!({
                            "id": executor.id.as_str(),
                            "has_info": executor.info.is_some(),
                            "latest": executor.latest.as_ref().map(|l| l.as_str()),
                            "runs": runs,
                            "errors": executor.errors,
                        })
                    })
                    .collect();
                json!({
                    "id": framework.id.as_str(),
                    "name": framework.info.as_ref().map(|i| i.name.clone()),
                    "pid": framework.pid,
                    "executors": executors,
                    "errors": framework.errors,
                })
            })
            .collect();
        json!({
            "id": agent.id.as_str(),
            "hostname": agent.info.as_ref().map(|i| i.hostname.clone()),
            "port": agent.info.as_ref().map(|i| i.port),
            "frameworks": frameworks,
            "errors": agent.errors,
        })
    });
    json!({
        "meta_dir": meta.root(),
        "recovered": true,
        "checkpointed_boot_id": state.checkpointed_boot_id,
        "rebooted": state.rebooted,
        "resources": state.resources.as_ref().map(|r| r.resources.iter().map(|x| json!({"name": x.name, "scalar": x.scalar, "role": x.role, "reservation": x.reservation})).collect::<Vec<_>>()),
        "agent": agent,
        "errors": state.errors,
        "warnings": state.warnings.iter().map(|w| json!({"path": w.path, "kind": warning_kind(&w.kind), "message": w.message})).collect::<Vec<_>>(),
    })
}
