//! `revenant agent`: the agent's flags and its start.

use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::ArgAction;
use revenant::agent::{AgentConfig, RecoverMode};

use super::{
    block_on, duration, init_logging, leader_detector, masters_waiting, resources, ResourceList,
    TlsArgs,
};

#[derive(clap::Args)]
pub struct AgentArgs {
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Master address(es), comma-separated (`host:port,host:port`), or the masters'
    /// ZooKeeper group (`zk://host:2181,host:2181/path`).
    #[arg(long)]
    pub master: String,
    /// The work directory (checkpoints under `meta/`, sandboxes under `slaves/`).
    #[arg(long = "work-dir", alias = "work_dir")]
    pub work_dir: PathBuf,
    /// Where to listen for executors; also the agent's address to the master.
    #[arg(long, default_value = "127.0.0.1:5051")]
    pub listen: String,
    /// What to do with live executors after a restart: reconnect or cleanup.
    #[arg(long, default_value = "reconnect")]
    pub recover: String,
    /// Whether an unreadable checkpoint stops recovery.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub strict: bool,
    /// How long executors wait for a restarted agent.
    #[arg(long = "recovery-timeout", alias = "recovery_timeout", default_value = "15mins", value_parser = duration)]
    pub recovery_timeout: Duration,
    /// How long a restarted agent waits for executors to re-register.
    #[arg(long = "executor-reregistration-timeout", alias = "executor_reregistration_timeout", default_value = "2secs", value_parser = duration)]
    pub executor_reregistration_timeout: Duration,
    /// How long a launched executor has to register before it is destroyed.
    #[arg(long = "executor-registration-timeout", alias = "executor_registration_timeout", default_value = "1mins", value_parser = duration)]
    pub executor_registration_timeout: Duration,
    /// Where to find the executor binary: the agent launches `<dir>/revenant executor`
    /// (default: this binary). Mesos' `--launcher_dir`.
    #[arg(long = "launcher-dir", alias = "launcher_dir")]
    pub launcher_dir: Option<std::path::PathBuf>,
    /// How long completed runs are kept.
    #[arg(long = "gc-delay", alias = "gc_delay", default_value = "1weeks", value_parser = duration)]
    pub gc_delay: Duration,
    /// How often disk usage is checked (to collect sooner as it fills).
    #[arg(long = "disk-watch-interval", alias = "disk_watch_interval", default_value = "1mins", value_parser = duration)]
    pub disk_watch_interval: Duration,
    /// The registration back-off factor.
    #[arg(long = "registration-backoff-factor", alias = "registration_backoff_factor", default_value = "1secs", value_parser = duration)]
    pub registration_backoff_factor: Duration,
    /// The agent's resources (`cpus:2;mem:1024`).
    #[arg(long, default_value = "cpus:2;mem:1024", value_parser = resources)]
    pub resources: ResourceList,
    /// Whether the agent checkpoints.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub checkpoint: bool,
    /// Group commit: how many ready events (status updates, acknowledgements, ...)
    /// the agent handles as one batch whose checkpoint records are synced together
    /// before any of its messages go out; 1 syncs every record on its own.
    #[arg(long = "status-update-batch", alias = "status_update_batch", default_value_t = revenant::agent::STATUS_UPDATE_BATCH_DEFAULT as u64, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub status_update_batch: u64,
    /// Which changes of the agent's info (resources) a restart may bring:
    /// `equal` (none) or `additive` (resources may only grow).
    #[arg(
        long = "reconfiguration-policy",
        alias = "reconfiguration_policy",
        default_value = "equal"
    )]
    pub reconfiguration_policy: String,
    /// While recovering, how often to ask live executors again to re-register (unset:
    /// ask once).
    #[arg(long = "executor-reregistration-retry-interval", alias = "executor_reregistration_retry_interval", value_parser = duration)]
    pub executor_reregistration_retry_interval: Option<Duration>,
}

/// `revenant agent`.
pub fn agent(args: AgentArgs) -> ExitCode {
    let AgentArgs {
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
    } = args;
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
            eprintln!("error: --reconfiguration-policy must be equal or additive, not '{other}'");
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
