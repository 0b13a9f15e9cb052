//! The client library of a simulated process: [`SimZk`], the coordination seam over the
//! simulated network, with its session task (pings, reconnection, the session state the
//! client believes in: docs/zookeeper.md Z4, Z12).

use super::*;

pub(super) struct ClientState {
    pub(super) session: Cell<u64>,
    pub(super) generation: Cell<u64>,
    pub(super) connected: Cell<bool>,
    /// When the last answered ping (or the hello) was sent.
    pub(super) confirmed: Cell<Option<Instant>>,
    pub(super) timeout: Cell<Duration>,
    pub(super) events: RefCell<Vec<CoordEvent>>,
    /// When the connection was last lost.
    pub(super) lost_at: Cell<Option<Instant>>,
    /// The connection broke under a request (Z22): the session task drops it and
    /// connects again.
    pub(super) broken: Cell<bool>,
}

impl ClientState {
    pub(super) fn lose(&self) {
        self.connected.set(false);
        self.lost_at.set(Some(Instant::now()));
    }

    /// Since when the client has not held a confirmed session (`None`: it holds one).
    pub(super) fn lost_since(&self) -> Option<Instant> {
        if self.session.get() == 0 || !self.connected.get() {
            return Some(self.lost_at.get().unwrap_or_else(Instant::now));
        }
        let stale = self.confirmed.get()? + self.timeout.get() * 2 / 3;
        (Instant::now() >= stale).then_some(stale)
    }

    /// The session's state as the client library knows it (Z4, Z12).
    pub(super) fn state(&self) -> SessionState {
        if self.session.get() == 0 || !self.connected.get() {
            return SessionState::Suspended;
        }
        let fresh = self
            .confirmed
            .get()
            .is_some_and(|at| Instant::now().duration_since(at) < self.timeout.get() * 2 / 3);
        if fresh {
            SessionState::Connected
        } else {
            SessionState::Suspended
        }
    }
}

/// One master process's ZooKeeper client: the coordination seam over the simulated
/// network. Its session task runs on the master's host and dies with it.
pub struct SimZk {
    world: Rc<ZkWorld>,
    host: String,
    state: Rc<ClientState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SimZk {
    fn drop(&mut self) {
        // The process is gone: no more pings; the server expires the session in time.
        self.task.abort();
    }
}

impl SimZk {
    /// Starts the client of master `host`, asking for `timeout`.
    pub fn start(world: Rc<ZkWorld>, host: &str, timeout: Duration) -> SimZk {
        SimZk::start_as(world, host, timeout, true)
    }

    /// Starts the client of a process that is not a master (an agent's or a framework's
    /// leader detector, Z17): the oracles do not count its session as a master's.
    pub fn start_client(world: Rc<ZkWorld>, host: &str, timeout: Duration) -> SimZk {
        SimZk::start_as(world, host, timeout, false)
    }

    pub(super) fn start_as(
        world: Rc<ZkWorld>,
        host: &str,
        timeout: Duration,
        master: bool,
    ) -> SimZk {
        let state = Rc::new(ClientState {
            session: Cell::new(0),
            generation: Cell::new(0),
            connected: Cell::new(false),
            confirmed: Cell::new(None),
            timeout: Cell::new(timeout),
            events: RefCell::new(Vec::new()),
            lost_at: Cell::new(None),
            broken: Cell::new(false),
        });
        let task = tokio::task::spawn_local(
            session_task(
                world.clone(),
                host.to_owned(),
                timeout,
                state.clone(),
                master,
            )
            .instrument(tracing::Span::current()),
        );
        SimZk {
            world,
            host: host.to_owned(),
            state,
            task,
        }
    }

    pub(super) fn usable(&self) -> Result<u64, CoordError> {
        let id = self.state.session.get();
        if !self.session_alive() || !self.world.tree.session_live(id) {
            return Err(CoordError::NoSession(ZK_URL.into()));
        }
        if !self.world.reachable(&self.host) {
            return Err(CoordError::Failed {
                ensemble: format!("{ZK_HOST}:{ZK_PORT}"),
                operation: "request",
                path: String::new(),
                message: "connection loss".into(),
            });
        }
        Ok(id)
    }

    pub(super) fn with<T>(
        &self,
        op: impl FnOnce(&revenant::coord::memory::MemorySession) -> Result<T, CoordError>,
    ) -> Result<T, CoordError> {
        let id = self.usable()?;
        op(&self.world.tree.attach(id))
    }

    /// A write: as [`SimZk::with`], but when its answer is to be lost (Z22) the server
    /// applies it and the client hears only that its connection broke.
    pub(super) fn write<T>(
        &self,
        operation: &'static str,
        path: &str,
        op: impl FnOnce(&revenant::coord::memory::MemorySession) -> Result<T, CoordError>,
    ) -> Result<T, CoordError> {
        let result = self.with(op)?;
        let due = match self.world.lose_reply.borrow().get(&self.host) {
            Some(only) => only.as_deref().is_none_or(|only| only == operation),
            None => false,
        };
        if !due {
            return Ok(result);
        }
        self.world.lose_reply.borrow_mut().remove(&self.host);
        info!(target: "revenant_sim", master = %self.host, operation, path, "zookeeper applied a write whose answer was lost");
        self.state.lose();
        self.state.broken.set(true);
        push(&self.state, CoordEvent::Session(SessionState::Suspended));
        Err(CoordError::Failed {
            ensemble: format!("{ZK_HOST}:{ZK_PORT}"),
            operation,
            path: path.to_owned(),
            message: "connection loss".into(),
        })
    }
}

pub(super) fn push(state: &ClientState, event: CoordEvent) {
    state.events.borrow_mut().push(event);
}

pub(super) async fn session_task(
    world: Rc<ZkWorld>,
    host: String,
    timeout: Duration,
    state: Rc<ClientState>,
    master: bool,
) {
    loop {
        let connect = turmoil::net::TcpStream::connect((ZK_HOST, ZK_PORT));
        let stream = match tokio::time::timeout(Duration::from_secs(1), connect).await {
            Ok(Ok(stream)) => stream,
            _ => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let (reader, mut writer) = tokio::io::split(stream);
        let mut lines = BufReader::new(reader).lines();
        let hello_at = Instant::now();
        let hello = format!("hello {} {}\n", state.session.get(), timeout.as_millis());
        if writer.write_all(hello.as_bytes()).await.is_err() {
            continue;
        }
        let answer = tokio::time::timeout(timeout * 2 / 3, lines.next_line()).await;
        let Ok(Ok(Some(answer))) = answer else {
            continue;
        };
        let mut words = answer.split_whitespace();
        match words.next() {
            Some("session") => {
                let id: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                if let Some(ms) = words.next().and_then(|w| w.parse().ok()) {
                    state.timeout.set(Duration::from_millis(ms));
                }
                if id != state.session.get() {
                    state.session.set(id);
                    state.generation.set(state.generation.get() + 1);
                    info!(target: "revenant_sim", session = id, "zookeeper client: new session");
                }
                if master {
                    world
                        .current
                        .borrow_mut()
                        .insert(host.clone(), (id, state.clone()));
                }
                state.confirmed.set(Some(hello_at));
                state.broken.set(false);
                state.connected.set(true);
                push(&state, CoordEvent::Session(SessionState::Connected));
            }
            Some("expired") => {
                info!(target: "revenant_sim", session = state.session.get(), "zookeeper client: session expired");
                state.session.set(0);
                state.lose();
                push(&state, CoordEvent::Session(SessionState::Expired));
                continue;
            }
            _ => continue,
        }
        let session_timeout = state.timeout.get();
        let interval = session_timeout / 4;
        let patience = session_timeout * 2 / 3;
        let mut sent: VecDeque<Instant> = VecDeque::new();
        let mut next_ping = Instant::now() + interval;
        loop {
            if state.broken.replace(false) {
                break;
            }
            let confirmed = state.confirmed.get().unwrap_or(hello_at);
            let deadline = confirmed + patience;
            if Instant::now() >= deadline {
                // No answer within two thirds of the timeout: the connection is lost
                // as far as this client knows (Z4, Z12); try again.
                info!(target: "revenant_sim", session = state.session.get(), "zookeeper client: connection lost");
                state.lose();
                push(&state, CoordEvent::Session(SessionState::Suspended));
                break;
            }
            let line = tokio::select! {
                biased;
                line = lines.next_line() => Some(line),
                _ = tokio::time::sleep_until(next_ping.min(deadline)) => None,
            };
            match line {
                None => {
                    if Instant::now() >= next_ping {
                        sent.push_back(Instant::now());
                        next_ping += interval;
                        if writer.write_all(b"ping\n").await.is_err() {
                            state.lose();
                            push(&state, CoordEvent::Session(SessionState::Suspended));
                            break;
                        }
                    }
                }
                Some(Ok(Some(line))) => {
                    if line == "pong" {
                        if let Some(at) = sent.pop_front() {
                            state.confirmed.set(Some(at));
                        }
                    } else if line == "expired" {
                        info!(target: "revenant_sim", session = state.session.get(), "zookeeper client: session expired");
                        state.session.set(0);
                        state.lose();
                        push(&state, CoordEvent::Session(SessionState::Expired));
                        break;
                    } else if let Some(path) = line.strip_prefix("watch ") {
                        push(&state, CoordEvent::NodeChanged(path.to_owned()));
                    } else if let Some(path) = line.strip_prefix("children ") {
                        push(&state, CoordEvent::ChildrenChanged(path.to_owned()));
                    }
                }
                Some(_) => {
                    state.lose();
                    push(&state, CoordEvent::Session(SessionState::Suspended));
                    break;
                }
            }
        }
    }
}

impl Coordination for SimZk {
    fn session_state(&self) -> SessionState {
        self.state.state()
    }

    fn session_generation(&self) -> u64 {
        self.state.generation.get()
    }

    fn session_timeout(&self) -> Duration {
        self.state.timeout.get()
    }

    fn poll_events(&self) -> Vec<CoordEvent> {
        std::mem::take(&mut *self.state.events.borrow_mut())
    }

    fn ensure_path(&self, path: &str) -> Result<(), CoordError> {
        self.with(|s| s.ensure_path(path))
    }

    fn join(&self, group: &str, data: &[u8]) -> Result<Member, CoordError> {
        self.write("join", group, |s| s.join(group, data))
    }

    fn children(&self, path: &str) -> Result<Vec<String>, CoordError> {
        self.with(|s| s.children(path))
    }

    fn watch_node(&self, path: &str) -> Result<bool, CoordError> {
        self.with(|s| s.watch_node(path))
    }

    fn watch_children(&self, path: &str) -> Result<Vec<String>, CoordError> {
        self.with(|s| s.watch_children(path))
    }

    fn get(&self, path: &str) -> Result<Option<(Vec<u8>, i32)>, CoordError> {
        self.with(|s| s.get(path))
    }

    fn create(&self, path: &str, data: &[u8]) -> Result<i32, CoordError> {
        self.write("create", path, |s| s.create(path, data))
    }

    fn set(
        &self,
        path: &str,
        data: &[u8],
        version: i32,
        fence: Option<&str>,
    ) -> Result<i32, CoordError> {
        self.write("set", path, |s| s.set(path, data, version, fence))
    }
}
