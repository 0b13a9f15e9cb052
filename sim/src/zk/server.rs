//! The ZooKeeper host's software: it listens, serves sessions over simulated TCP and
//! expires the ones it has not heard from for their whole timeout (docs/zookeeper.md
//! Z11-Z13).

use super::*;

/// The ZooKeeper host's software: listens, serves sessions, expires them.
pub fn server_host(world: Rc<ZkWorld>) -> impl Future<Output = turmoil::Result> {
    let span = crate::trace::host_span(ZK_HOST);
    async move {
        // A restarted server gives every session a whole timeout again, as a new
        // ZooKeeper leader does (Z13).
        let now = Instant::now();
        for session in world.sessions.borrow_mut().values_mut() {
            session.last_heard = now;
        }
        world.up.set(true);
        info!(target: "revenant_sim", "zookeeper serving");
        let listener = turmoil::net::TcpListener::bind(("0.0.0.0", ZK_PORT)).await?;
        let ticker = world.clone();
        tokio::task::spawn_local(async move {
            loop {
                tokio::time::sleep(SERVER_TICK).await;
                ticker.expire_due();
                ticker.check_registry(false);
            }
        });
        let mut connections = 0u64;
        loop {
            let (stream, peer) = listener.accept().await?;
            connections += 1;
            let host = turmoil::reverse_lookup(peer.ip()).unwrap_or_else(|| peer.ip().to_string());
            tokio::task::spawn_local(serve(world.clone(), stream, host, connections));
        }
    }
    .instrument(span)
}

pub(super) async fn serve(
    world: Rc<ZkWorld>,
    stream: turmoil::net::TcpStream,
    host: String,
    connection: u64,
) {
    let (reader, mut writer) = tokio::io::split(stream);
    let mut lines = BufReader::new(reader).lines();
    let mut session = 0u64;
    loop {
        let line = tokio::select! {
            biased;
            line = lines.next_line() => line,
            _ = tokio::time::sleep(SERVER_TICK) => {
                // The server closes the connection of a session it ended (Z12).
                if session != 0 && !world.tree.session_live(session) {
                    let _ = writer.write_all(b"expired\n").await;
                    return;
                }
                // Watch notifications, from the connection now serving the session.
                let serving = world.sessions.borrow().get(&session).is_some_and(|s| s.connection == connection);
                if session != 0 && serving {
                    let mut out = String::new();
                    for event in world.tree.take_events(session) {
                        match event {
                            CoordEvent::NodeChanged(path) => out.push_str(&format!("watch {path}\n")),
                            CoordEvent::ChildrenChanged(path) => out.push_str(&format!("children {path}\n")),
                            CoordEvent::Session(_) => {}
                        }
                    }
                    if !out.is_empty() && writer.write_all(out.as_bytes()).await.is_err() {
                        return;
                    }
                }
                continue;
            }
        };
        let Ok(Some(line)) = line else {
            return;
        };
        let mut words = line.split_whitespace();
        let reply = match words.next() {
            Some("hello") => {
                let asked: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                let timeout_ms: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(10_000);
                let timeout = Duration::from_millis(timeout_ms).clamp(TIMEOUT_MIN, TIMEOUT_MAX);
                if asked != 0 && !world.tree.session_live(asked) {
                    "expired\n".to_owned()
                } else {
                    session = if asked == 0 {
                        world.tree.open_session()
                    } else {
                        asked
                    };
                    let mut sessions = world.sessions.borrow_mut();
                    let entry = sessions.entry(session).or_insert(ServerSession {
                        host: host.clone(),
                        timeout,
                        last_heard: Instant::now(),
                        connection,
                    });
                    entry.last_heard = Instant::now();
                    entry.connection = connection;
                    format!("session {session} {}\n", entry.timeout.as_millis())
                }
            }
            Some("ping") => {
                if session != 0 && world.tree.session_live(session) {
                    if let Some(s) = world.sessions.borrow_mut().get_mut(&session) {
                        s.last_heard = Instant::now();
                    }
                    "pong\n".to_owned()
                } else {
                    "expired\n".to_owned()
                }
            }
            _ => return,
        };
        if writer.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}
