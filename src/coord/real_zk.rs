//! The coordination seam on a real ZooKeeper ensemble, through the `zookeeper-client`
//! crate.
//!
//! The client is asynchronous and the seam is not, so the client lives on a thread of
//! its own with its own single-threaded runtime; each call of the seam sends it the
//! operation and waits for the answer (at most [`OPERATION_TIMEOUT`]). This is real-world
//! code only: the simulator implements the seam without threads. A session manager on
//! that thread connects, keeps the session confirmed (a read every third of the session
//! timeout) and, when the session ends, starts a new one (docs/zookeeper.md Z3, Z4).
#![allow(clippy::disallowed_methods)] // real-world only: wall time and a thread of its own

use std::future::Future;
use std::pin::Pin;
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{info, warn};
use zookeeper_client as zkc;

use super::{CoordError, CoordEvent, Coordination, Member, SessionState, ZkUrl, MEMBER_PREFIX};

/// How long one operation may take before the caller gives up on it.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// The session timeout masters ask for unless told otherwise.
pub const SESSION_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce(zkc::Client) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Raw {
    Connecting,
    Connected,
    Disconnected,
}

struct Shared {
    raw: Raw,
    confirmed_at: Option<Instant>,
    generation: u64,
    timeout: Duration,
    events: Vec<CoordEvent>,
    last_error: Option<String>,
}

/// One ZooKeeper session at a time (a new one after each expiry), on its own thread.
pub struct ZkCoordination {
    url: ZkUrl,
    shared: Arc<Mutex<Shared>>,
    jobs: mpsc::UnboundedSender<Job>,
}

impl ZkCoordination {
    /// Starts the session thread and waits up to `connect_timeout` for a first session;
    /// the error names the ensemble and why it could not be reached.
    pub fn connect(
        url: &ZkUrl,
        session_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<ZkCoordination, String> {
        let shared = Arc::new(Mutex::new(Shared {
            raw: Raw::Connecting,
            confirmed_at: None,
            generation: 0,
            timeout: session_timeout,
            events: Vec::new(),
            last_error: None,
        }));
        let (jobs, receiver) = mpsc::unbounded_channel::<Job>();
        let thread_shared = shared.clone();
        let hosts = url.connect_string();
        std::thread::Builder::new()
            .name("zookeeper".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime for the ZooKeeper client");
                let local = tokio::task::LocalSet::new();
                local.block_on(
                    &runtime,
                    session_thread(hosts, session_timeout, thread_shared, receiver),
                );
            })
            .map_err(|error| format!("cannot start the ZooKeeper client thread: {error}"))?;
        let coordination = ZkCoordination {
            url: url.clone(),
            shared,
            jobs,
        };
        let deadline = Instant::now() + connect_timeout;
        loop {
            {
                let shared = coordination.lock();
                if shared.raw == Raw::Connected {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(format!(
                        "cannot reach ZooKeeper at {} within {:?}: {}",
                        coordination.url.connect_string(),
                        connect_timeout,
                        shared
                            .last_error
                            .clone()
                            .unwrap_or_else(|| "no answer".into())
                    ));
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(coordination)
    }

    /// The URL this session was opened for.
    pub fn url(&self) -> &ZkUrl {
        &self.url
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn failed(&self, operation: &'static str, path: &str, error: zkc::Error) -> CoordError {
        match error {
            zkc::Error::NoNode => CoordError::NoNode(path.to_owned()),
            zkc::Error::NodeExists => CoordError::NodeExists(path.to_owned()),
            zkc::Error::BadVersion => CoordError::BadVersion(path.to_owned()),
            zkc::Error::SessionExpired | zkc::Error::ClientClosed => {
                CoordError::NoSession(self.url.connect_string())
            }
            other => CoordError::Failed {
                ensemble: self.url.connect_string(),
                operation,
                path: path.to_owned(),
                message: other.to_string(),
            },
        }
    }

    /// Runs `work` on the session thread and waits for its answer.
    fn call<T, F, Fut>(&self, operation: &'static str, path: &str, work: F) -> Result<T, CoordError>
    where
        T: Send + 'static,
        F: FnOnce(zkc::Client) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, zkc::Error>> + 'static,
    {
        if self.lock().raw != Raw::Connected {
            return Err(CoordError::NoSession(self.url.connect_string()));
        }
        let (reply, answer) = std_mpsc::channel();
        let shared = self.shared.clone();
        let job: Job = Box::new(move |client| {
            Box::pin(async move {
                let result = work(client).await;
                if result.is_ok() {
                    let mut shared = shared.lock().unwrap_or_else(|p| p.into_inner());
                    shared.confirmed_at = Some(Instant::now());
                }
                let _ = reply.send(result);
            })
        });
        if self.jobs.send(job).is_err() {
            return Err(CoordError::NoSession(self.url.connect_string()));
        }
        match answer.recv_timeout(OPERATION_TIMEOUT) {
            Ok(result) => result.map_err(|error| self.failed(operation, path, error)),
            // The session ended before the operation ran.
            Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                Err(CoordError::NoSession(self.url.connect_string()))
            }
            Err(std_mpsc::RecvTimeoutError::Timeout) => Err(CoordError::Failed {
                ensemble: self.url.connect_string(),
                operation,
                path: path.to_owned(),
                message: format!("no answer within {OPERATION_TIMEOUT:?}"),
            }),
        }
    }

    fn push_event(shared: &Arc<Mutex<Shared>>, event: CoordEvent) {
        shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .events
            .push(event);
    }
}

fn acls() -> zkc::CreateOptions<'static> {
    zkc::CreateMode::Persistent.with_acls(zkc::Acls::anyone_all())
}

impl Coordination for ZkCoordination {
    fn session_state(&self) -> SessionState {
        let shared = self.lock();
        match shared.raw {
            Raw::Connected
                if shared
                    .confirmed_at
                    .is_some_and(|at| at.elapsed() < shared.timeout * 2 / 3) =>
            {
                SessionState::Connected
            }
            _ => SessionState::Suspended,
        }
    }

    fn session_generation(&self) -> u64 {
        self.lock().generation
    }

    fn session_timeout(&self) -> Duration {
        self.lock().timeout
    }

    fn poll_events(&self) -> Vec<CoordEvent> {
        std::mem::take(&mut self.lock().events)
    }

    fn ensure_path(&self, path: &str) -> Result<(), CoordError> {
        let owned = path.to_owned();
        self.call("create", path, move |client| async move {
            client.mkdir(&owned, &acls()).await
        })
    }

    fn join(&self, group: &str, data: &[u8]) -> Result<Member, CoordError> {
        let prefix = format!("{group}/{MEMBER_PREFIX}");
        let data = data.to_vec();
        let owned = prefix.clone();
        let sequence = self.call("join", group, move |client| async move {
            let options = zkc::CreateMode::EphemeralSequential.with_acls(zkc::Acls::anyone_all());
            client
                .create(&owned, &data, &options)
                .await
                .map(|(_, sequence)| sequence)
        })?;
        Ok(Member {
            path: format!("{prefix}{sequence}"),
            sequence: sequence.into_i64().max(0) as u64,
        })
    }

    fn children(&self, path: &str) -> Result<Vec<String>, CoordError> {
        let owned = path.to_owned();
        self.call("list", path, move |client| async move {
            client.list_children(&owned).await
        })
    }

    fn watch_node(&self, path: &str) -> Result<bool, CoordError> {
        let owned = path.to_owned();
        let shared = self.shared.clone();
        self.call("watch", path, move |client| async move {
            let (stat, watcher) = client.check_and_watch_stat(&owned).await?;
            tokio::task::spawn_local(async move {
                let event = watcher.changed().await;
                if event.event_type != zkc::EventType::Session {
                    ZkCoordination::push_event(&shared, CoordEvent::NodeChanged(owned));
                }
            });
            Ok(stat.is_some())
        })
    }

    fn watch_children(&self, path: &str) -> Result<Vec<String>, CoordError> {
        let owned = path.to_owned();
        let shared = self.shared.clone();
        self.call("watch children", path, move |client| async move {
            let (children, watcher) = client.list_and_watch_children(&owned).await?;
            tokio::task::spawn_local(async move {
                let event = watcher.changed().await;
                // A session event (expiry) is reported by the session manager itself.
                if event.event_type != zkc::EventType::Session {
                    ZkCoordination::push_event(&shared, CoordEvent::ChildrenChanged(owned));
                }
            });
            Ok(children)
        })
    }

    fn get(&self, path: &str) -> Result<Option<(Vec<u8>, i32)>, CoordError> {
        let owned = path.to_owned();
        self.call("get", path, move |client| async move {
            match client.get_data(&owned).await {
                Ok((data, stat)) => Ok(Some((data, stat.version))),
                Err(zkc::Error::NoNode) => Ok(None),
                Err(error) => Err(error),
            }
        })
    }

    fn create(&self, path: &str, data: &[u8]) -> Result<i32, CoordError> {
        let owned = path.to_owned();
        let data = data.to_vec();
        self.call("create", path, move |client| async move {
            client.create(&owned, &data, &acls()).await.map(|_| 0)
        })
    }

    fn set(
        &self,
        path: &str,
        data: &[u8],
        version: i32,
        fence: Option<&str>,
    ) -> Result<i32, CoordError> {
        let owned = path.to_owned();
        let data = data.to_vec();
        let fence = fence.map(str::to_owned);
        let fence_for_error = fence.clone();
        let result = self.call("set", path, move |client| async move {
            let mut writer = client.new_multi_writer();
            if let Some(fence) = &fence {
                writer.add_check_version(fence, -1)?;
            }
            writer.add_set_data(&owned, &data, Some(version))?;
            match writer.commit().await {
                Ok(results) => match results.into_iter().last() {
                    Some(zkc::MultiWriteResult::SetData { stat }) => Ok(stat.version),
                    _ => Err(zkc::Error::UnexpectedError("no set-data result".into())),
                },
                // The fence (index 0) gone: this session no longer holds its member node.
                Err(zkc::MultiWriteError::OperationFailed {
                    index: 0,
                    source: zkc::Error::NoNode,
                }) if fence.is_some() => Err(zkc::Error::SessionExpired),
                Err(error) => Err(error.into()),
            }
        });
        match (result, fence_for_error) {
            (Err(CoordError::NoSession(_)), Some(fence)) => Err(CoordError::NoSession(format!(
                "{} (member node '{fence}' is gone)",
                self.url.connect_string()
            ))),
            (result, _) => result,
        }
    }
}

/// The session thread: runs jobs against the current session and keeps a session open.
async fn session_thread(
    hosts: String,
    requested_timeout: Duration,
    shared: Arc<Mutex<Shared>>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
) {
    let current: std::rc::Rc<std::cell::RefCell<Option<zkc::Client>>> = Default::default();
    let manager_current = current.clone();
    let manager_shared = shared.clone();
    tokio::task::spawn_local(async move {
        session_manager(hosts, requested_timeout, manager_shared, manager_current).await
    });
    while let Some(job) = jobs.recv().await {
        let client = current.borrow().clone();
        match client {
            Some(client) => {
                tokio::task::spawn_local(job(client));
            }
            None => drop(job), // the caller sees its answer channel closed
        }
    }
}

fn set_raw(shared: &Arc<Mutex<Shared>>, raw: Raw, event: Option<SessionState>) {
    let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
    guard.raw = raw;
    if raw == Raw::Connected {
        guard.confirmed_at = Some(Instant::now());
    }
    if let Some(state) = event {
        guard.events.push(CoordEvent::Session(state));
    }
}

async fn session_manager(
    hosts: String,
    requested_timeout: Duration,
    shared: Arc<Mutex<Shared>>,
    current: std::rc::Rc<std::cell::RefCell<Option<zkc::Client>>>,
) {
    loop {
        let connector = zkc::Client::connector()
            .with_session_timeout(requested_timeout)
            .with_connection_timeout(requested_timeout / 3);
        let client = match connector.connect(&hosts).await {
            Ok(client) => client,
            Err(error) => {
                warn!(%hosts, %error, "cannot connect to ZooKeeper; retrying");
                shared.lock().unwrap_or_else(|p| p.into_inner()).last_error =
                    Some(error.to_string());
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let timeout = client.session_timeout();
        info!(%hosts, session = %client.session_id(), timeout_ms = timeout.as_millis() as u64, "ZooKeeper session opened");
        {
            let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
            guard.generation += 1;
            guard.timeout = timeout;
        }
        *current.borrow_mut() = Some(client.clone());
        set_raw(&shared, Raw::Connected, Some(SessionState::Connected));
        let mut watcher = client.state_watcher();
        let mut heartbeat = tokio::time::interval(timeout / 4);
        loop {
            tokio::select! {
                biased;
                state = watcher.changed() => match state {
                    zkc::SessionState::SyncConnected | zkc::SessionState::ConnectedReadOnly => {
                        info!("ZooKeeper session reconnected");
                        set_raw(&shared, Raw::Connected, Some(SessionState::Connected));
                    }
                    zkc::SessionState::Disconnected => {
                        warn!("ZooKeeper connection lost: session suspended");
                        set_raw(&shared, Raw::Disconnected, Some(SessionState::Suspended));
                    }
                    terminal => {
                        warn!(state = ?terminal, "ZooKeeper session ended: opening a new one");
                        break;
                    }
                },
                _ = heartbeat.tick() => {
                    let client = client.clone();
                    let shared = shared.clone();
                    tokio::task::spawn_local(async move {
                        if client.check_stat("/").await.is_ok() {
                            shared.lock().unwrap_or_else(|p| p.into_inner()).confirmed_at = Some(Instant::now());
                        }
                    });
                }
            }
        }
        *current.borrow_mut() = None;
        set_raw(&shared, Raw::Connecting, Some(SessionState::Expired));
        // The expired session may still hold the connection: close it for good.
        drop(client);
    }
}

/// Follows the masters' group of `url` on a thread of its own with a session of its
/// own (docs/zookeeper.md Z17): the agent, a framework or a CLI command reads the leader
/// from the returned source without blocking on ZooKeeper. The thread waits for
/// ZooKeeper as long as it takes and lives as long as the process.
pub fn spawn_follower(
    url: &ZkUrl,
    session_timeout: Duration,
) -> Result<super::follower::SharedLeader, String> {
    let source = super::follower::SharedLeader::default();
    let published = source.clone();
    let url = url.clone();
    std::thread::Builder::new()
        .name("zookeeper-follower".into())
        .spawn(move || {
            let coord = loop {
                match ZkCoordination::connect(&url, session_timeout, session_timeout) {
                    Ok(coord) => break std::rc::Rc::new(coord),
                    Err(error) => {
                        warn!(%error, "leader detector: cannot reach ZooKeeper; retrying");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            };
            let mut follower = super::follower::GroupFollower::new(coord, &url);
            loop {
                if published.take_reread() {
                    follower.reread();
                }
                published.publish(follower.maintain());
                std::thread::sleep(FOLLOW_POLL);
            }
        })
        .map_err(|error| format!("cannot start the leader detector thread: {error}"))?;
    Ok(source)
}

/// How often the follower thread handles what its watches reported.
const FOLLOW_POLL: Duration = Duration::from_millis(20);
