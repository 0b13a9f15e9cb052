//! `revenant master`: the master's flags and its start, on a lease in a work directory,
//! alone, or on ZooKeeper.

use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use revenant::os::Env;

use super::{block_on, duration, init_logging, TlsArgs};
use crate::flag_checks;

/// Runs a master on ZooKeeper (docs/zookeeper.md).
fn on_zookeeper(
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

#[derive(clap::Args)]
pub struct MasterArgs {
    #[command(flatten)]
    pub tls: TlsArgs,
    /// What each principal may do: a subset of Mesos's ACL JSON (docs/security.md
    /// SEC20); without it everything is allowed.
    #[arg(long)]
    pub acls: Option<PathBuf>,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:5050")]
    pub listen: String,
    /// Interval of the pings to agents.
    #[arg(long = "agent-ping-timeout", alias = "agent_ping_timeout", default_value = "15secs", value_parser = duration)]
    pub agent_ping_timeout: Duration,
    /// Missed pings before an agent is unreachable.
    #[arg(
        long = "max-agent-ping-timeouts",
        alias = "max_agent_ping_timeouts",
        default_value_t = 5
    )]
    pub max_agent_ping_timeouts: u32,
    /// How long agents have to re-register after a failover or disconnection.
    #[arg(long = "agent-reregister-timeout", alias = "agent_reregister_timeout", default_value = "10mins", value_parser = duration)]
    pub agent_reregister_timeout: Duration,
    /// Where the registry of admitted and removed agents lives. Masters given the
    /// same directory contend for leadership with a lease kept there; without it,
    /// this master leads alone and keeps its registry in memory.
    #[arg(long = "work-dir", alias = "work_dir")]
    pub work_dir: Option<PathBuf>,
    /// Length of the leader lease (with --work-dir).
    #[arg(long = "leader-lease", alias = "leader_lease", default_value = "10secs", value_parser = duration)]
    pub leader_lease: Duration,
    /// The address other parties reach this master at (default: --listen).
    #[arg(long)]
    pub advertise: Option<String>,
    /// Contend for leadership on ZooKeeper (`zk://host:2181,host:2181/path`) and keep
    /// the registry there (docs/zookeeper.md), instead of a lease in --work-dir.
    #[arg(long, conflicts_with = "work_dir")]
    pub zk: Option<String>,
    /// The ZooKeeper session timeout to ask for (with --zk).
    #[arg(long = "zk-session-timeout", alias = "zk_session_timeout", default_value = "10secs", value_parser = duration)]
    pub zk_session_timeout: Duration,
}

/// `revenant master`.
pub fn master(args: MasterArgs) -> ExitCode {
    let MasterArgs {
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
        acls,
    } = args;
    init_logging();
    let env = match tls.master_env(true) {
        Ok((env, _)) => env,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    // docs/security.md SEC20: a bad file stops the master, naming the file and field.
    let acls = match acls {
        None => revenant::security::acls::Acls::permissive(),
        Some(path) => match revenant::security::acls::Acls::load(env.fs.as_ref(), &path) {
            Ok(acls) => acls,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(2);
            }
        },
    };
    if let Some(zk) = zk {
        let config = revenant::master::MasterConfig {
            listen: listen.clone(),
            agent_ping_timeout,
            max_agent_ping_timeouts,
            agent_reregister_timeout,
            work_dir: None,
            acls,
            #[cfg(feature = "breakage")]
            breakage: Default::default(),
        };
        let address = advertise.unwrap_or(listen);
        return match on_zookeeper(env, &zk, zk_session_timeout, address, config) {
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
        acls,
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
