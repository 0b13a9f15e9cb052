//! The framework roles: `revenant submit` (one task, followed to its end), `revenant
//! tasks` (read-only, from the leading master's `/state`) and `revenant teardown`.

use std::process::ExitCode;
use std::time::Duration;

use clap::ArgAction;
use revenant::proto::{CommandInfo, FrameworkInfo, StatusUpdate, TaskInfo};

use super::query as cli_query;
use super::{block_on, duration, leader_detector, masters, TlsArgs};

/// Asks the master, as an operator, to tear the framework down (docs/security.md SEC42):
/// it never registers as the framework, so its scheduler is not failed over, and the
/// `teardown_frameworks` ACL judges this client's principal.
struct TearDown {
    started: tokio::time::Instant,
    timeout: Duration,
    removed: Option<String>,
    /// The master refused the registration or the teardown (docs/security.md SEC23).
    refused: Option<String>,
}

impl revenant::framework::Workload for TearDown {
    fn registered(&mut self, _framework_id: &str) -> Vec<TaskInfo> {
        Vec::new()
    }
    fn update(&mut self, _update: &StatusUpdate) {}
    fn done(&self) -> bool {
        self.removed.is_some() || self.refused.is_some() || self.started.elapsed() >= self.timeout
    }
    fn refused(&mut self, message: &str) {
        self.refused = Some(message.to_owned());
    }
    fn teardown(&self) -> bool {
        true
    }
    fn operator(&self) -> bool {
        true
    }
    fn removed(&mut self, message: &str) {
        self.removed = Some(message.to_owned());
    }
}

/// Prints every update of one task and stops at a terminal one.
struct FollowOne {
    task: TaskInfo,
    submitted: bool,
    done: bool,
    seen: std::collections::BTreeSet<Vec<u8>>,
    framework_id: String,
    /// The master removed the framework (torn down) before the task's end was seen.
    removed: Option<String>,
    /// The master refused the registration or the task (docs/security.md SEC23).
    refused: Option<String>,
}

impl revenant::framework::Workload for FollowOne {
    fn registered(&mut self, framework_id: &str) -> Vec<TaskInfo> {
        out!("framework {framework_id} registered");
        self.framework_id = framework_id.to_owned();
        if self.submitted {
            return Vec::new();
        }
        self.submitted = true;
        vec![self.task.clone()]
    }
    fn update(&mut self, update: &StatusUpdate) {
        let status = update.status.clone().unwrap_or_default();
        if status.task_id != self.task.task_id {
            return;
        }
        if !update.uuid.is_empty() && !self.seen.insert(update.uuid.clone()) {
            return; // a retry of an update already shown
        }
        let mut line = format!("task {} {}", status.task_id, status.state().as_str_name());
        if status.reason != 0 {
            line.push_str(&format!(" reason {}", status.reason().as_str_name()));
        }
        if !status.message.is_empty() {
            line.push_str(&format!(" message {:?}", status.message));
        }
        out!("{line}");
        if status.reason() == revenant::proto::TaskReason::ReasonTaskUnauthorized {
            self.refused = Some(status.message.clone());
        }
        if revenant::domain::task_state::is_terminal(status.state()) {
            self.done = true;
        }
    }
    fn done(&self) -> bool {
        self.done || self.refused.is_some()
    }
    fn refused(&mut self, message: &str) {
        self.refused = Some(message.to_owned());
    }
    fn removed(&mut self, message: &str) {
        self.removed = Some(message.to_owned());
    }
}

#[derive(clap::Args)]
pub struct TasksArgs {
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Master address(es), comma-separated (`host:port,host:port`), or the masters'
    /// ZooKeeper group (`zk://host:2181,host:2181/path`).
    #[arg(long)]
    pub master: String,
    /// The framework whose tasks to list (as `submit` printed it).
    #[arg(long = "framework-id")]
    pub framework_id: String,
    /// How long to wait for each master's answer.
    #[arg(long, default_value = "2secs", value_parser = duration)]
    pub wait: Duration,
}

/// Runs `workload` as the framework `info` against the masters `--master` names,
/// following the leader (docs/zookeeper.md Z17), until the workload is done; a bad
/// `--master` is an error, with the exit code to leave with.
fn follow(
    env: revenant::os::Env,
    master: &str,
    info: FrameworkInfo,
    workload: &mut dyn revenant::framework::Workload,
) -> Result<(), ExitCode> {
    let masters = masters(master).map_err(|error| {
        eprintln!("error: --master: {error}");
        ExitCode::FAILURE
    })?;
    let leader = leader_detector(master).map_err(|error| {
        eprintln!("error: --master: {error}");
        ExitCode::FAILURE
    })?;
    block_on(revenant::framework::run_following(
        env, masters, leader, info, workload,
    ));
    Ok(())
}

/// `revenant tasks`.
pub fn tasks(args: TasksArgs) -> ExitCode {
    let TasksArgs {
        master,
        framework_id,
        wait,
        tls,
    } = args;
    let identity = match tls.files(false).and_then(|files| {
        files
            .map(|files| revenant::tls::TlsIdentity::load(&files))
            .transpose()
    }) {
        Ok(identity) => identity,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    // Read-only: the leading master's /state, never a registration (which would
    // fail the framework's running scheduler over).
    let masters = match masters(&master) {
        Ok(masters) => masters,
        Err(error) => {
            eprintln!("error: --master: {error}");
            return ExitCode::FAILURE;
        }
    };
    match cli_query::framework_tasks(&masters, &framework_id, wait, identity.as_ref()) {
        Ok(None) => {
            out!("framework {framework_id}: not known to the master");
            ExitCode::SUCCESS
        }
        Ok(Some(tasks)) => {
            if tasks.is_empty() {
                out!("framework {framework_id}: no tasks known to the master");
            }
            for (task, state) in &tasks {
                out!("task {task} {state}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

#[derive(clap::Args)]
pub struct TeardownArgs {
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Master address(es), comma-separated (`host:port,host:port`), or the masters'
    /// ZooKeeper group (`zk://host:2181,host:2181/path`).
    #[arg(long)]
    pub master: String,
    /// The framework to tear down (as `submit` printed it).
    #[arg(long = "framework-id")]
    pub framework_id: String,
    /// How long to wait for the master's confirmation.
    #[arg(long, default_value = "10secs", value_parser = duration)]
    pub timeout: Duration,
}

/// `revenant teardown`.
pub fn teardown(args: TeardownArgs) -> ExitCode {
    super::init_warnings();
    let env = match args.tls.client_env() {
        Ok(env) => env,
        Err(code) => return code,
    };
    let TeardownArgs {
        master,
        framework_id,
        timeout,
        ..
    } = args;
    if framework_id.trim().is_empty() {
        eprintln!("error: --framework-id must name a framework");
        return ExitCode::FAILURE;
    }
    let info = FrameworkInfo {
        id: framework_id.clone(),
        name: "revenant-teardown".into(),
        ..Default::default()
    };
    let mut workload = TearDown {
        started: revenant::os::Clock::now(&revenant::os::real::SystemClock),
        timeout,
        removed: None,
        refused: None,
    };
    if let Err(code) = follow(env, &master, info, &mut workload) {
        return code;
    }
    if let Some(refusal) = &workload.refused {
        eprintln!("error: the master refused: {refusal}");
        return ExitCode::FAILURE;
    }
    match workload.removed {
        Some(message) => {
            out!("framework {framework_id}: {message}");
            ExitCode::SUCCESS
        }
        None => {
            eprintln!(
                "error: no master confirmed the teardown of framework {framework_id} within {timeout:?}"
            );
            ExitCode::FAILURE
        }
    }
}

#[derive(clap::Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Master address(es), comma-separated (`host:port,host:port`), or the masters'
    /// ZooKeeper group (`zk://host:2181,host:2181/path`).
    #[arg(long)]
    pub master: String,
    /// The shell command to run.
    #[arg(long)]
    pub command: String,
    /// The task id (default: a random one).
    #[arg(long = "task-id")]
    pub task_id: Option<String>,
    /// Whether the framework checkpoints (its tasks survive agent restarts).
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub checkpoint: bool,
    /// The framework id to re-register as (to follow a task after a restart).
    #[arg(long = "framework-id")]
    pub framework_id: Option<String>,
    /// The role to register the framework with (default `*`); the master's
    /// `register_frameworks` ACL decides whether this principal may (docs/security.md
    /// SEC22).
    #[arg(long)]
    pub role: Option<String>,
}

/// `revenant submit`.
pub fn submit(args: SubmitArgs) -> ExitCode {
    super::init_warnings();
    let SubmitArgs {
        master,
        command,
        task_id,
        checkpoint,
        framework_id,
        tls,
        role,
    } = args;
    let env = match tls.client_env() {
        Ok(env) => env,
        Err(code) => return code,
    };
    let task_id = task_id.unwrap_or_else(|| format!("task-{:08x}", env.random.next_u64() as u32));
    let task = TaskInfo {
        task_id: task_id.clone(),
        name: task_id,
        command: Some(CommandInfo {
            value: command,
            ..Default::default()
        }),
        ..Default::default()
    };
    let info = FrameworkInfo {
        id: framework_id.unwrap_or_default(),
        name: "revenant-submit".into(),
        user: std::env::var("USER").unwrap_or_default(),
        checkpoint,
        failover_timeout_seconds: 3600.0,
        role: role.unwrap_or_default(),
        ..Default::default()
    };
    let mut workload = FollowOne {
        task,
        submitted: false,
        done: false,
        seen: Default::default(),
        framework_id: String::new(),
        removed: None,
        refused: None,
    };
    if let Err(code) = follow(env, &master, info, &mut workload) {
        return code;
    }
    if let Some(refusal) = &workload.refused {
        eprintln!("error: the master refused: {refusal}");
        return ExitCode::FAILURE;
    }
    match (&workload.removed, workload.done) {
        // The task's fate: a framework the master removed has its tasks killed
        // (docs/lifecycle-rules.md); this scheduler will hear nothing more of it.
        (Some(message), false) => {
            out!(
                "task {} killed: framework {} was removed by the master ({message})",
                workload.task.task_id,
                workload.framework_id
            );
            eprintln!(
                "error: the framework was removed before task {} ended",
                workload.task.task_id
            );
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    }
}
