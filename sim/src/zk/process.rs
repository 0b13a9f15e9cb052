//! Processes on ZooKeeper: a master (its contender and fenced registry store, as
//! `revenant master --zk` runs them) and the leader detector of an agent or framework.

use super::*;

/// A master process on ZooKeeper (Z11): connects, then runs the master with the
/// contender and the fenced registry store of `revenant::coord`, as `revenant master
/// --zk` does. A master whose registry write failed exits (Z7); its supervisor starts
/// it again, as a new contender with a new session.
pub async fn master_process(
    env: revenant::os::Env,
    config: revenant::master::MasterConfig,
    session_timeout: Duration,
    host: String,
) -> std::io::Result<()> {
    use revenant::coord::{CoordRegistryStore, ZkContender};
    let Some(world) = world() else {
        return Err(std::io::Error::other("no ZooKeeper in this run"));
    };
    let url = world.url.clone();
    loop {
        let coord = Rc::new(SimZk::start(world.clone(), &host, session_timeout));
        // Z5: connect before listening (a supervisor would restart a master that gave
        // up, so waiting here is the same).
        let info = revenant::proto::MasterInfo {
            address: config.listen.clone(),
            incarnation: env.random.next_u64(),
        };
        let contender = ZkContender::new(coord.clone(), env.clock.clone(), &url, &info)
            .with_breakage(config.breakage);
        let registry = loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if !coord.session_alive() || coord.ensure_path(&url.members_path()).is_err() {
                continue;
            }
            // Read without a member node: nothing is claimed until elected (Z8).
            let store =
                CoordRegistryStore::new(coord.clone(), url.registry_path(), contender.member())
                    .with_breakage(config.breakage);
            if let Ok(registry) = revenant::registry::Registry::in_store(Box::new(store)) {
                break registry;
            }
        };
        let result = revenant::master::run_with_registry(
            env.clone(),
            config.clone(),
            Box::new(contender),
            registry,
        )
        .await;
        world.current.borrow_mut().remove(&host);
        match result {
            Ok(()) => return Ok(()),
            Err(error) => {
                info!(target: "revenant_sim", master = %host, %error, "master on ZooKeeper stopped; its supervisor starts it again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The ZooKeeper model of this run, if any (for the driver's faults).
pub fn current() -> Option<Rc<ZkWorld>> {
    world()
}

/// The session timeout an agent's or a framework's leader detector asks for (the real
/// binaries' default, `revenant::coord::real_zk::SESSION_TIMEOUT_DEFAULT`).
pub(super) const CLIENT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a detector handles what its watches reported.
pub(super) const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Aborts a task when dropped: the detector dies with the process it serves.
pub(super) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs a client process (an agent, a framework) on `host`: when this run has a
/// ZooKeeper, with a leader detector on a session of its own that follows the masters'
/// group, as the binaries given `--master zk://…` do (Z17); otherwise with none.
pub async fn following<F, Fut>(host: &str, run: F) -> Fut::Output
where
    F: FnOnce(Option<revenant::coord::follower::LeaderHandle>) -> Fut,
    Fut: Future,
{
    use revenant::coord::follower::{GroupFollower, LeaderHandle, LocalLeader};
    let Some(world) = world() else {
        return run(None).await;
    };
    let coord = Rc::new(SimZk::start_client(
        world.clone(),
        host,
        CLIENT_SESSION_TIMEOUT,
    ));
    let source = LocalLeader::default();
    let published = source.clone();
    let url = world.url.clone();
    let _detector = AbortOnDrop(tokio::task::spawn_local(
        async move {
            let mut follower = GroupFollower::new(coord, &url);
            loop {
                if published.take_reread() {
                    follower.reread();
                }
                published.publish(follower.maintain());
                tokio::time::sleep(FOLLOW_POLL).await;
            }
        }
        .instrument(tracing::Span::current()),
    ));
    run(Some(LeaderHandle(Rc::new(source)))).await
}
