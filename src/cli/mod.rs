//! The `revenant` binary's roles, one module each: [`agent`], [`master`], [`executor`],
//! [`framework`] (`submit`, `tasks`, `teardown`) and [`inspect`]; this module holds the
//! command line and what several roles share (flags, logging, the runtime, finding the
//! masters).

use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use revenant::duration::parse_duration;
use revenant::os::Env;
use revenant::proto::Resource;

/// Prints a line to stdout; a closed stdout (a pipe into `head`) is not an error.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub mod agent;
pub mod executor;
pub mod framework;
pub mod inspect;
pub mod master;
pub mod query;
pub mod real_query;

#[derive(Parser)]
#[command(
    name = "revenant",
    version,
    about = "A Mesos-style node agent built for crash recovery"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// A Mesos duration flag (`15mins`, `2secs`).
pub fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

/// A parsed `--resources` value.
#[derive(Clone, Debug)]
pub struct ResourceList(pub Vec<Resource>);

/// `cpus:2;mem:1024;cpus(web):1` (docs/design.md D14).
pub fn resources(text: &str) -> Result<ResourceList, String> {
    revenant::resources::parse(text).map(ResourceList)
}

/// `--tls-cert`, `--tls-key`, `--tls-ca`: mutual TLS on every connection the role makes
/// or accepts (docs/security.md SEC7).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TlsArgs {
    /// This role's certificate chain (PEM), signed by the --tls-ca.
    #[arg(long = "tls-cert", alias = "tls_cert")]
    tls_cert: Option<PathBuf>,
    /// This role's private key (PEM).
    #[arg(long = "tls-key", alias = "tls_key")]
    tls_key: Option<PathBuf>,
    /// The CA certificate every peer's certificate must be signed by (PEM).
    #[arg(long = "tls-ca", alias = "tls_ca")]
    tls_ca: Option<PathBuf>,
    /// For clusters without TLS: principals and secrets (JSON). The master accepts the
    /// ones listed; an agent or framework presents the one its file holds
    /// (docs/security.md SEC24).
    #[arg(long)]
    credentials: Option<PathBuf>,
}

impl TlsArgs {
    /// The TLS files, or `None` with the plaintext warning printed (SEC7).
    pub fn files(&self, logging: bool) -> Result<Option<revenant::tls::TlsFiles>, String> {
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
    pub fn env(&self, logging: bool) -> Result<(Env, Option<revenant::tls::TlsFiles>), String> {
        self.env_as(logging, false)
    }

    /// [`TlsArgs::env`] for a one-shot client command (`submit`, `teardown`): warnings
    /// on stderr; a bad flag or file is printed and the command exits 2.
    pub fn client_env(&self) -> Result<Env, ExitCode> {
        self.env(false).map(|(env, _)| env).map_err(|error| {
            eprintln!("error: {error}");
            ExitCode::from(2)
        })
    }

    /// [`TlsArgs::env`] for the master: its listener accepts the credentials listed.
    pub fn master_env(
        &self,
        logging: bool,
    ) -> Result<(Env, Option<revenant::tls::TlsFiles>), String> {
        self.env_as(logging, true)
    }

    /// The real environment with TLS and credentials as the flags ask (SEC7, SEC24);
    /// an error names the bad flag, file or field.
    fn env_as(
        &self,
        logging: bool,
        master: bool,
    ) -> Result<(Env, Option<revenant::tls::TlsFiles>), String> {
        use revenant::security::credentials::{self, CredentialSettings, Credentials};
        if self.credentials.is_some() && self.tls_cert.is_some() {
            // docs/security.md SEC24: with TLS the principal is the certificate's.
            return Err("--credentials is for clusters without TLS: with --tls-cert the principal is the certificate's".into());
        }
        let files = self.files(logging)?;
        let env = revenant::tls::secure(Env::real(), files.as_ref())?;
        let Some(path) = &self.credentials else {
            return Ok((env, files));
        };
        let list = Credentials::load(&revenant::os::real::RealFs::default(), path)?;
        let settings = if master {
            CredentialSettings {
                present: None,
                accept: Some(list),
            }
        } else {
            let one = list
                .single()
                .map_err(|error| format!("--credentials '{}': {error}", path.display()))?;
            CredentialSettings {
                present: Some(one),
                accept: None,
            }
        };
        Ok((credentials::secure(env, settings), files))
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Run an agent.
    Agent(agent::AgentArgs),
    /// Run a master.
    Master(master::MasterArgs),
    /// Run an executor (the agent launches this with its settings in the environment).
    Executor,
    /// Submit one command task as a framework and follow it to a terminal state.
    Submit(framework::SubmitArgs),
    /// List the tasks the master knows for a framework, with their latest states.
    Tasks(framework::TasksArgs),
    /// Tear a framework down: the master kills its tasks, lists it as completed, and
    /// shuts it down on its agents (an agent that is away hears it when it comes back).
    Teardown(framework::TeardownArgs),
    /// Recover a work directory's checkpoints read-only and report them.
    Inspect(inspect::InspectArgs),
}

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Warnings only, for the framework commands (`submit`, `teardown`): what the framework
/// library warns about, e.g. a refused authentication (docs/security.md SEC25), reaches
/// the operator on stderr.
pub fn init_warnings() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, future)
}

/// The masters a `--master` value names: addresses as given, or those the ZooKeeper
/// group lists, the leader first (docs/zookeeper.md Z9).
pub fn masters(value: &str) -> Result<Vec<String>, String> {
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
pub fn leader_detector(
    value: &str,
) -> Result<Option<revenant::coord::follower::LeaderHandle>, String> {
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
pub fn masters_waiting(value: &str) -> Result<Vec<String>, String> {
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
