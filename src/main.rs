//! The `revenant` binary: `agent`, `master`, `executor` (launched by the agent),
//! `submit` (a one-task framework), `teardown` (tear a framework down) and `inspect`
//! (read-only recovery of a work directory).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

mod cli_query;
mod flag_checks;

use clap::{ArgAction, Parser, Subcommand};
use revenant::agent::{AgentConfig, RecoverMode};
use revenant::duration::parse_duration;
use revenant::os::{BootId, Env, FileSystem};
use revenant::proto::{CommandInfo, FrameworkInfo, Resource, StatusUpdate, TaskInfo};

#[derive(Parser)]
#[command(
    name = "revenant",
    version,
    about = "A Mesos-style node agent built for crash recovery"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

/// A parsed `--resources` value.
#[derive(Clone, Debug)]
struct ResourceList(Vec<Resource>);

/// `cpus:2;mem:1024;cpus(web):1` (docs/design.md D14).
fn resources(text: &str) -> Result<ResourceList, String> {
    revenant::resources::parse(text).map(ResourceList)
}

/// `--tls-cert`, `--tls-key`, `--tls-ca`: mutual TLS on every connection the role makes
/// or accepts (docs/security.md SEC7).
#[derive(clap::Args, Clone, Debug, Default)]
struct TlsArgs {
    /// This role's certificate chain (PEM), signed by the --tls-ca.
    #[arg(long = "tls-cert", alias = "tls_cert")]
    tls_cert: Option<PathBuf>,
    /// This role's private key (PEM).
    #[arg(long = "tls-key", alias = "tls_key")]
    tls_key: Option<PathBuf>,
    /// The CA certificate every peer's certificate must be signed by (PEM).
    #[arg(long = "tls-ca", alias = "tls_ca")]
    tls_ca: Option<PathBuf>,
}

impl TlsArgs {
    /// The TLS files, or `None` with the plaintext warning printed (SEC7).
    fn files(&self, logging: bool) -> Result<Option<revenant::tls::TlsFiles>, String> {
        let files = revenant::tls::TlsFiles::from_flags(
            self.tls_cert.clone(),
            self.tls_key.clone(),
            self.tls_ca.clone(),
        )?;
        if files.is_none() {
            if logging {
                tracing::warn!("{}", revenant::tls::PLAINTEXT_WARNING);
            } else {
                eprintln!("warning: {}", revenant::tls::PLAINTEXT_WARNING);
            }
        }
        Ok(files)
    }

    /// The real environment, with TLS on its network when the flags ask for it; an
    /// error names the bad flag or file.
    fn env(&self, logging: bool) -> Result<(Env, Option<revenant::tls::TlsFiles>), String> {
        let files = self.files(logging)?;
        let env = revenant::tls::secure(Env::real(), files.as_ref())?;
        Ok((env, files))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run an agent.
    Agent {
        #[command(flatten)]
        tls: TlsArgs,
        /// Master address(es), comma-separated (`host:port,host:port`), or the masters'
        /// ZooKeeper group (`zk://host:2181,host:2181/path`).
        #[arg(long)]
        master: String,
        /// The work directory (checkpoints under `meta/`, sandboxes under `slaves/`).
        #[arg(long = "work-dir", alias = "work_dir")]
        work_dir: PathBuf,
        /// Where to listen for executors; also the agent's address to the master.
        #[arg(long, default_value = "127.0.0.1:5051")]
        listen: String,
        /// What to do with live executors after a restart: reconnect or cleanup.
        #[arg(long, default_value = "reconnect")]
        recover: String,
        /// Whether an unreadable checkpoint stops recovery.
        #[arg(long, default_value_t = true, action = ArgAction::Set)]
        strict: bool,
        /// How long executors wait for a restarted agent.
        #[arg(long = "recovery-timeout", alias = "recovery_timeout", default_value = "15mins", value_parser = duration)]
        recovery_timeout: Duration,
        /// How long a restarted agent waits for executors to re-register.
        #[arg(long = "executor-reregistration-timeout", alias = "executor_reregistration_timeout", default_value = "2secs", value_parser = duration)]
        executor_reregistration_timeout: Duration,
        /// How long a launched executor has to register before it is destroyed.
        #[arg(long = "executor-registration-timeout", alias = "executor_registration_timeout", default_value = "1mins", value_parser = duration)]
        executor_registration_timeout: Duration,
        /// Where to find the executor binary: the agent launches `<dir>/revenant executor`
        /// (default: this binary). Mesos' `--launcher_dir`.
        #[arg(long = "launcher-dir", alias = "launcher_dir")]
        launcher_dir: Option<std::path::PathBuf>,
        /// How long completed runs are kept.
        #[arg(long = "gc-delay", alias = "gc_delay", default_value = "1weeks", value_parser = duration)]
        gc_delay: Duration,
        /// How often disk usage is checked (to collect sooner as it fills).
        #[arg(long = "disk-watch-interval", alias = "disk_watch_interval", default_value = "1mins", value_parser = duration)]
        disk_watch_interval: Duration,
        /// The registration back-off factor.
        #[arg(long = "registration-backoff-factor", alias = "registration_backoff_factor", default_value = "1secs", value_parser = duration)]
        registration_backoff_factor: Duration,
        /// The agent's resources (`cpus:2;mem:1024`).
        #[arg(long, default_value = "cpus:2;mem:1024", value_parser = resources)]
        resources: ResourceList,
        /// Whether the agent checkpoints.
        #[arg(long, default_value_t = true, action = ArgAction::Set)]
        checkpoint: bool,
        /// Group commit: how many ready events (status updates, acknowledgements, ...)
        /// the agent handles as one batch whose checkpoint records are synced together
        /// before any of its messages go out; 1 syncs every record on its own.
        #[arg(long = "status-update-batch", alias = "status_update_batch", default_value_t = revenant::agent::STATUS_UPDATE_BATCH_DEFAULT as u64, value_parser = clap::value_parser!(u64).range(1..=65536))]
        status_update_batch: u64,
        /// Which changes of the agent's info (resources) a restart may bring:
        /// `equal` (none) or `additive` (resources may only grow).
        #[arg(
            long = "reconfiguration-policy",
            alias = "reconfiguration_policy",
            default_value = "equal"
        )]
        reconfiguration_policy: String,
        /// While recovering, how often to ask live executors again to re-register (unset:
        /// ask once).
        #[arg(long = "executor-reregistration-retry-interval", alias = "executor_reregistration_retry_interval", value_parser = duration)]
        executor_reregistration_retry_interval: Option<Duration>,
    },
    /// Run a master.
    Master {
        #[command(flatten)]
        tls: TlsArgs,
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:5050")]
        listen: String,
        /// Interval of the pings to agents.
        #[arg(long = "agent-ping-timeout", alias = "agent_ping_timeout", default_value = "15secs", value_parser = duration)]
        agent_ping_timeout: Duration,
        /// Missed pings before an agent is unreachable.
        #[arg(
            long = "max-agent-ping-timeouts",
            alias = "max_agent_ping_timeouts",
            default_value_t = 5
        )]
        max_agent_ping_timeouts: u32,
        /// How long agents have to re-register after a failover or disconnection.
        #[arg(long = "agent-reregister-timeout", alias = "agent_reregister_timeout", default_value = "10mins", value_parser = duration)]
        agent_reregister_timeout: Duration,
        /// Where the registry of admitted and removed agents lives. Masters given the
        /// same directory contend for leadership with a lease kept there; without it,
        /// this master leads alone and keeps its registry in memory.
        #[arg(long = "work-dir", alias = "work_dir")]
        work_dir: Option<PathBuf>,
        /// Length of the leader lease (with --work-dir).
        #[arg(long = "leader-lease", alias = "leader_lease", default_value = "10secs", value_parser = duration)]
        leader_lease: Duration,
        /// The address other parties reach this master at (default: --listen).
        #[arg(long)]
        advertise: Option<String>,
        /// Contend for leadership on ZooKeeper (`zk://host:2181,host:2181/path`) and keep
        /// the registry there (docs/zookeeper.md), instead of a lease in --work-dir.
        #[arg(long, conflicts_with = "work_dir")]
        zk: Option<String>,
        /// The ZooKeeper session timeout to ask for (with --zk).
        #[arg(long = "zk-session-timeout", alias = "zk_session_timeout", default_value = "10secs", value_parser = duration)]
        zk_session_timeout: Duration,
    },
    /// Run an executor (the agent launches this with its settings in the environment).
    Executor,
    /// Submit one command task as a framework and follow it to a terminal state.
    Submit {
        #[command(flatten)]
        tls: TlsArgs,
        /// Master address(es), comma-separated (`host:port,host:port`), or the masters'
        /// ZooKeeper group (`zk://host:2181,host:2181/path`).
        #[arg(long)]
        master: String,
        /// The shell command to run.
        #[arg(long)]
        command: String,
        /// The task id (default: a random one).
        #[arg(long = "task-id")]
        task_id: Option<String>,
        /// Whether the framework checkpoints (its tasks survive agent restarts).
        #[arg(long, default_value_t = true, action = ArgAction::Set)]
        checkpoint: bool,
        /// The framework id to re-register as (to follow a task after a restart).
        #[arg(long = "framework-id")]
        framework_id: Option<String>,
    },
    /// List the tasks the master knows for a framework, with their latest states.
    Tasks {
        #[command(flatten)]
        tls: TlsArgs,
        /// Master address(es), comma-separated (`host:port,host:port`), or the masters'
        /// ZooKeeper group (`zk://host:2181,host:2181/path`).
        #[arg(long)]
        master: String,
        /// The framework whose tasks to list (as `submit` printed it).
        #[arg(long = "framework-id")]
        framework_id: String,
        /// How long to wait for each master's answer.
        #[arg(long, default_value = "2secs", value_parser = duration)]
        wait: Duration,
    },
    /// Tear a framework down: the master kills its tasks, lists it as completed, and
    /// shuts it down on its agents (an agent that is away hears it when it comes back).
    Teardown {
        #[command(flatten)]
        tls: TlsArgs,
        /// Master address(es), comma-separated (`host:port,host:port`), or the masters'
        /// ZooKeeper group (`zk://host:2181,host:2181/path`).
        #[arg(long)]
        master: String,
        /// The framework to tear down (as `submit` printed it).
        #[arg(long = "framework-id")]
        framework_id: String,
        /// How long to wait for the master's confirmation.
        #[arg(long, default_value = "10secs", value_parser = duration)]
        timeout: Duration,
    },
    /// Recover a work directory's checkpoints read-only and report them.
    Inspect {
        /// The agent's work directory (the one holding `meta/`).
        #[arg(long = "work-dir", alias = "work_dir")]
        work_dir: PathBuf,
        /// Stop at the first unreadable or corrupt file, as the agent does with `--strict`.
        #[arg(long)]
        strict: bool,
        /// Print JSON instead of a report for a person.
        #[arg(long)]
        json: bool,
        /// Do not compare the checkpointed boot id with this machine's (show the agent
        /// state even if the machine rebooted since).
        #[arg(long)]
        ignore_boot_id: bool,
    },
}

/// Prints a line to stdout; a closed stdout (a pipe into `head`) is not an error.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, future)
}

/// Registers as the framework (failing its scheduler over) and tears it down.
struct TearDown {
    started: tokio::time::Instant,
    timeout: Duration,
    removed: Option<String>,
}

impl revenant::framework::Workload for TearDown {
    fn registered(&mut self, _framework_id: &str) -> Vec<TaskInfo> {
        Vec::new()
    }
    fn update(&mut self, _update: &StatusUpdate) {}
    fn done(&self) -> bool {
        self.removed.is_some() || self.started.elapsed() >= self.timeout
    }
    fn teardown(&self) -> bool {
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
        if revenant::agent::status_updates::is_terminal(status.state()) {
            self.done = true;
        }
    }
    fn done(&self) -> bool {
        self.done
    }
    fn removed(&mut self, message: &str) {
        self.removed = Some(message.to_owned());
    }
}

/// The masters a `--master` value names: addresses as given, or those the ZooKeeper
/// group lists, the leader first (docs/zookeeper.md Z9).
fn masters(value: &str) -> Result<Vec<String>, String> {
    if !revenant::coord::ZkUrl::is_zk(value) {
        return Ok(value.split(',').map(str::to_owned).collect());
    }
    let url = revenant::coord::ZkUrl::parse(value)?;
    let coord = revenant::coord::real_zk::ZkCoordination::connect(
        &url,
        revenant::coord::real_zk::SESSION_TIMEOUT_DEFAULT,
        Duration::from_secs(10),
    )?;
    revenant::coord::contender::master_addresses(&coord, &url)
}

/// With a `zk://` value, a leader detector on a session of its own that follows the
/// group's leader as it changes (docs/zookeeper.md Z17); `None` for a list of addresses.
fn leader_detector(value: &str) -> Result<Option<revenant::coord::follower::LeaderHandle>, String> {
    if !revenant::coord::ZkUrl::is_zk(value) {
        return Ok(None);
    }
    let url = revenant::coord::ZkUrl::parse(value)?;
    let source = revenant::coord::real_zk::spawn_follower(
        &url,
        revenant::coord::real_zk::SESSION_TIMEOUT_DEFAULT,
    )?;
    Ok(Some(revenant::coord::follower::LeaderHandle(Rc::new(
        source,
    ))))
}

/// [`masters`] for an agent, which waits for masters to appear rather than giving up.
fn masters_waiting(value: &str) -> Result<Vec<String>, String> {
    loop {
        match masters(value) {
            Ok(found) => return Ok(found),
            Err(error) if error.starts_with("malformed") => return Err(error),
            Err(error) => {
                eprintln!("waiting for masters: {error}");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// Runs a master on ZooKeeper (docs/zookeeper.md).
fn master_on_zookeeper(
    env: Env,
    zk: &str,
    session_timeout: Duration,
    address: String,
    config: revenant::master::MasterConfig,
) -> Result<(), String> {
    use revenant::coord::{CoordRegistryStore, Coordination, ZkContender, ZkUrl};
    let url = ZkUrl::parse(zk)?;
    let coord = Rc::new(revenant::coord::real_zk::ZkCoordination::connect(
        &url,
        session_timeout,
        session_timeout.max(Duration::from_secs(5)),
    )?);
    coord
        .ensure_path(&url.path)
        .map_err(|error| format!("cannot create {url}: {error}"))?;
    let info = revenant::proto::MasterInfo {
        address,
        incarnation: env.random.next_u64(),
    };
    let contender = ZkContender::new(coord.clone(), env.clock.clone(), &url, &info);
    let store = CoordRegistryStore::new(coord.clone(), url.registry_path(), contender.member());
    let registry = revenant::registry::Registry::in_store(Box::new(store))
        .map_err(|error| error.to_string())?;
    block_on(revenant::master::run_with_registry(
        env,
        config,
        Box::new(contender),
        registry,
    ))
    .map_err(|error| error.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Agent {
            master,
            work_dir,
            listen,
            recover,
            strict,
            recovery_timeout,
            executor_reregistration_timeout,
            executor_registration_timeout,
            launcher_dir,
            gc_delay,
            disk_watch_interval,
            registration_backoff_factor,
            resources,
            checkpoint,
            status_update_batch,
            reconfiguration_policy,
            executor_reregistration_retry_interval,
            tls,
        } => {
            init_logging();
            let (env, tls_files) = match tls.env(true) {
                Ok(secured) => secured,
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(2);
                }
            };
            let recover = match recover.as_str() {
                "reconnect" => RecoverMode::Reconnect,
                "cleanup" => RecoverMode::Cleanup,
                other => {
                    eprintln!("error: --recover must be reconnect or cleanup, not '{other}'");
                    return ExitCode::from(2);
                }
            };
            if executor_reregistration_timeout > Duration::from_secs(15) {
                eprintln!("error: --executor-reregistration-timeout must be at most 15secs");
                return ExitCode::from(2);
            }
            let executable = match &launcher_dir {
                Some(dir) => {
                    let executable = dir.join("revenant");
                    if !executable.is_file() {
                        eprintln!(
                            "error: --launcher-dir '{}' holds no 'revenant' executable to launch executors with",
                            dir.display()
                        );
                        return ExitCode::from(2);
                    }
                    executable.display().to_string()
                }
                None => std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| "revenant".into()),
            };
            let masters = match masters_waiting(&master) {
                Ok(masters) => masters,
                Err(error) => {
                    eprintln!("error: --master: {error}");
                    return ExitCode::from(2);
                }
            };
            let mut config = AgentConfig::new(masters, listen, work_dir);
            config.leader = match leader_detector(&master) {
                Ok(leader) => leader,
                Err(error) => {
                    eprintln!("error: --master: {error}");
                    return ExitCode::from(2);
                }
            };
            config.recover = recover;
            config.strict = strict;
            config.recovery_timeout = recovery_timeout;
            config.executor_reregistration_timeout = executor_reregistration_timeout;
            config.executor_registration_timeout = executor_registration_timeout;
            config.gc_delay = gc_delay;
            config.disk_watch_interval = disk_watch_interval;
            config.registration_backoff_factor = registration_backoff_factor;
            config.resources = resources.0;
            config.checkpoint = checkpoint;
            config.status_update_batch = status_update_batch as usize;
            config.executor_reregistration_retry_interval = executor_reregistration_retry_interval;
            config.reconfiguration_policy = match reconfiguration_policy.as_str() {
                "equal" => revenant::agent::ReconfigurationPolicy::Equal,
                "additive" => revenant::agent::ReconfigurationPolicy::Additive,
                other => {
                    eprintln!(
                        "error: --reconfiguration-policy must be equal or additive, not '{other}'"
                    );
                    return ExitCode::from(2);
                }
            };
            config.executor_command = vec![executable, "executor".into()];
            if let Some(files) = &tls_files {
                // docs/security.md SEC12: the executors connect with the agent's identity.
                config.executor_environment.extend(files.environment());
            }
            // SIGUSR1: leave the cluster (unregister, kill the executors, exit).
            let leave = Rc::new(tokio::sync::Notify::new());
            config.unregister = Some(leave.clone());
            let agent = async move {
                use tokio::signal::unix::{signal, SignalKind};
                if let Ok(mut usr1) = signal(SignalKind::user_defined1()) {
                    tokio::task::spawn_local(async move {
                        while usr1.recv().await.is_some() {
                            leave.notify_one();
                        }
                    });
                }
                revenant::agent::run(env, config).await
            };
            match block_on(agent) {
                Ok(exit) => {
                    eprintln!("agent exited: {exit:?}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Master {
            listen,
            agent_ping_timeout,
            max_agent_ping_timeouts,
            agent_reregister_timeout,
            work_dir,
            leader_lease,
            advertise,
            zk,
            zk_session_timeout,
            tls,
        } => {
            init_logging();
            let env = match tls.env(true) {
                Ok((env, _)) => env,
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(2);
                }
            };
            if let Some(zk) = zk {
                let config = revenant::master::MasterConfig {
                    listen: listen.clone(),
                    agent_ping_timeout,
                    max_agent_ping_timeouts,
                    agent_reregister_timeout,
                    work_dir: None,
                    #[cfg(feature = "breakage")]
                    breakage: Default::default(),
                };
                let address = advertise.unwrap_or(listen);
                return match master_on_zookeeper(env, &zk, zk_session_timeout, address, config) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(error) => {
                        eprintln!("error: {error}");
                        ExitCode::FAILURE
                    }
                };
            }
            let detector: Box<dyn revenant::master::Detector> = match &work_dir {
                Some(dir) => Box::new(revenant::master::LeaseContender::new(
                    env.fs.clone(),
                    env.clock.clone(),
                    dir,
                    advertise.unwrap_or_else(|| listen.clone()),
                    env.random.next_u64(),
                    leader_lease,
                )),
                None => Box::new(revenant::master::Standalone),
            };
            let config = revenant::master::MasterConfig {
                listen,
                agent_ping_timeout,
                max_agent_ping_timeouts,
                agent_reregister_timeout,
                work_dir,
                #[cfg(feature = "breakage")]
                breakage: Default::default(),
            };
            for warning in flag_checks::master_warnings(&config) {
                tracing::warn!("{warning}");
            }
            match block_on(revenant::master::run(env, config, detector)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Executor => {
            init_logging();
            let variables: BTreeMap<String, String> = std::env::vars().collect();
            let settings = match revenant::executor::ExecutorSettings::from_environment(&variables)
            {
                Ok(settings) => settings,
                Err(error) => {
                    eprintln!("error: {error} (the executor is launched by the agent)");
                    return ExitCode::from(2);
                }
            };
            // docs/security.md SEC12: TLS when the agent handed its files over.
            let env = match revenant::tls::TlsFiles::from_environment(&variables)
                .and_then(|files| revenant::tls::secure(Env::real(), files.as_ref()))
            {
                Ok(env) => env,
                Err(error) => {
                    eprintln!("error: {error} (the executor is launched by the agent)");
                    return ExitCode::from(2);
                }
            };
            let exit = block_on(revenant::executor::run(
                env,
                settings,
                Rc::new(revenant::executor::ShellRunner),
            ));
            eprintln!("executor exited: {exit:?}");
            ExitCode::SUCCESS
        }
        Command::Tasks {
            master,
            framework_id,
            wait,
            tls,
        } => {
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
        Command::Teardown {
            master,
            framework_id,
            timeout,
            tls,
        } => {
            let env = match tls.env(false) {
                Ok((env, _)) => env,
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(2);
                }
            };
            if framework_id.trim().is_empty() {
                eprintln!("error: --framework-id must name a framework");
                return ExitCode::FAILURE;
            }
            let info = FrameworkInfo {
                id: framework_id.clone(),
                name: "revenant-teardown".into(),
                checkpoint: true,
                ..Default::default()
            };
            let mut workload = TearDown {
                started: revenant::os::Clock::now(&revenant::os::real::SystemClock),
                timeout,
                removed: None,
            };
            let masters = match masters(&master) {
                Ok(masters) => masters,
                Err(error) => {
                    eprintln!("error: --master: {error}");
                    return ExitCode::FAILURE;
                }
            };
            let leader = match leader_detector(&master) {
                Ok(leader) => leader,
                Err(error) => {
                    eprintln!("error: --master: {error}");
                    return ExitCode::FAILURE;
                }
            };
            block_on(revenant::framework::run_following(
                env,
                masters,
                leader,
                info,
                &mut workload,
            ));
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
        Command::Submit {
            master,
            command,
            task_id,
            checkpoint,
            framework_id,
            tls,
        } => {
            let env = match tls.env(false) {
                Ok((env, _)) => env,
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(2);
                }
            };
            let task_id =
                task_id.unwrap_or_else(|| format!("task-{:08x}", env.random.next_u64() as u32));
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
            };
            let mut workload = FollowOne {
                task,
                submitted: false,
                done: false,
                seen: Default::default(),
                framework_id: String::new(),
                removed: None,
            };
            let masters = match masters(&master) {
                Ok(masters) => masters,
                Err(error) => {
                    eprintln!("error: --master: {error}");
                    return ExitCode::FAILURE;
                }
            };
            let leader = match leader_detector(&master) {
                Ok(leader) => leader,
                Err(error) => {
                    eprintln!("error: --master: {error}");
                    return ExitCode::FAILURE;
                }
            };
            block_on(revenant::framework::run_following(
                env,
                masters,
                leader,
                info,
                &mut workload,
            ));
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
        Command::Inspect {
            work_dir,
            strict,
            json,
            ignore_boot_id,
        } => {
            let fs = revenant::os::real::RealFs::default();
            let boot_id = if ignore_boot_id {
                None
            } else {
                revenant::os::real::ProcBootId.boot_id().ok()
            };
            if !fs.is_dir(&work_dir) {
                eprintln!(
                    "error: work directory '{}' does not exist",
                    work_dir.display()
                );
                return ExitCode::from(2);
            }
            match revenant::inspect::inspect(&fs, &work_dir, strict, boot_id) {
                Ok(state) => {
                    if json {
                        let value = revenant::inspect::render_json(&work_dir, state.as_ref());
                        out!("{}", serde_json::to_string_pretty(&value).expect("json"));
                    } else {
                        let text = revenant::inspect::render_text(&work_dir, state.as_ref());
                        let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
                    }
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    eprintln!("(strict recovery stopped; without --strict the file is counted as an error and the rest is shown)");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
