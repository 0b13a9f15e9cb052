//! Targeted message drops (the `drop` fault kind): every simulated connection reads
//! through a frame-aware filter that decodes whole wire frames and discards the ones an
//! armed rule matches, as if the network had lost exactly that message. Production code
//! knows nothing of it: the filter sits in the simulated network seam ([`crate::seams`]).
//!
//! A rule names a message kind (`wire::kind`: `register_executor`, `status_update`,
//! ...), optionally the sending and receiving hosts, a task and (for status updates) a
//! state, and how many matching messages to drop. It matches on the receiving side, so a
//! message is dropped when it would have been delivered. Rules live in a thread-local
//! table that each run starts empty; a run is single-threaded, so the same seed drops
//! the same messages.

use std::cell::RefCell;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use prost::Message;
use revenant::os::BoxStream;
use revenant::proto::{envelope::Body, Envelope};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub use crate::scenario::fault_checks::{normalise_kind, MESSAGE_KINDS};

/// What a rule does to a message it matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Action {
    /// The message is lost.
    #[default]
    Drop,
    /// The message arrives twice, the copy right after it.
    Duplicate,
    /// A copy with a uuid its sender never made arrives just before the message
    /// (acknowledgements and status updates only: the others carry no uuid, and pass).
    Forge,
    /// Agent process `agent` (1, 2, ...) dies at the message, restarted after
    /// `restart_ms`: a message to an agent is lost (the agent died before reading it),
    /// any other is delivered (it died right after sending it). The death is asked of
    /// the simulator's driver ([`take_crash_requests`]), which kills the agent before
    /// its next step.
    CrashAgent {
        /// The agent process.
        agent: u32,
        /// Its restart delay, milliseconds.
        restart_ms: u64,
    },
    /// The message, and every later one on its connection (TCP keeps the order), is
    /// held back for `ms` milliseconds of simulated time.
    Delay {
        /// How long, milliseconds.
        ms: u64,
    },
}

/// One armed rule.
#[derive(Clone, Debug)]
pub struct DropRule {
    /// What it does to a matching message.
    pub action: Action,
    /// The message kind (`wire::kind`).
    pub kind: &'static str,
    /// The sending host, if it matters.
    pub from: Option<String>,
    /// The receiving host, if it matters.
    pub to: Option<String>,
    /// The task the message is about, if it matters.
    pub task: Option<String>,
    /// The state of a status update, if it matters (`TASK_RUNNING`, ...).
    pub state: Option<String>,
    /// Matching messages still to drop.
    pub remaining: u32,
}

thread_local! {
    static RULES: RefCell<Vec<DropRule>> = const { RefCell::new(Vec::new()) };
    static CRASHES: RefCell<Vec<(u32, u64, &'static str)>> = const { RefCell::new(Vec::new()) };
}

/// Forgets every rule and crash request (each run starts with none).
pub fn clear() {
    RULES.with(|rules| rules.borrow_mut().clear());
    CRASHES.with(|crashes| crashes.borrow_mut().clear());
    FORGED.with(|forged| forged.set(0));
}

/// The agent deaths that [`Action::CrashAgent`] rules asked for since the last call, in
/// order: (agent, restart delay in milliseconds, message kind).
pub fn take_crash_requests() -> Vec<(u32, u64, &'static str)> {
    CRASHES.with(|crashes| std::mem::take(&mut *crashes.borrow_mut()))
}

/// Whether the agent (not an executor) reads a message of `kind` arriving at `local`
/// from `peer`: agents run on the `agent1` host beside their executors, so between the
/// two the kind tells which end reads it.
fn read_by_agent(kind: &str, local: &str, peer: &str) -> bool {
    local == "agent1"
        && (peer != "agent1"
            || ["register_executor", "reregister_executor", "status_update"].contains(&kind))
}

/// Arms a rule.
pub fn arm(rule: DropRule) {
    RULES.with(|rules| rules.borrow_mut().push(rule));
}

fn any_armed() -> bool {
    RULES.with(|rules| rules.borrow().iter().any(|r| r.remaining > 0))
}

/// The uuid a forged copy carries, the same in every run (a party's uuids are 16 seeded
/// random bytes: matching this is out of the question).
const FORGED_UUID: [u8; 16] = [0xf0; 16];

thread_local! {
    /// How many copies this run has forged so far.
    static FORGED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// `body` with its uuid replaced by a forged one, if it has one: [`FORGED_UUID`] for the
/// run's first forgery, then that with its last four bytes counting up, so that two
/// forgeries in one run never share a uuid (a forger, like any party, makes a new uuid
/// for each message; one uuid for two different updates is what the history oracle's
/// L13 forbids of the system, not of the fault).
fn forged(body: &Body) -> Option<Body> {
    let mut body = body.clone();
    let uuid = || {
        let n = FORGED.with(|f| {
            let n = f.get();
            f.set(n + 1);
            n
        });
        let mut uuid = FORGED_UUID;
        for (byte, count) in uuid[12..].iter_mut().zip(n.to_be_bytes()) {
            *byte ^= count;
        }
        uuid.to_vec()
    };
    match &mut body {
        Body::Acknowledgement(m) => m.uuid = uuid(),
        Body::StatusUpdate(m) => m.update.as_mut()?.uuid = uuid(),
        _ => return None,
    }
    Some(body)
}

/// The armed rule that takes this message (and counts it), if any: what it does.
fn take(body: &Body, from: &str, to: &str) -> Option<Action> {
    let kind = revenant::wire::kind(body);
    let (task, state) = crate::messages::task_and_state(body);
    RULES.with(|rules| {
        let mut rules = rules.borrow_mut();
        let rule = rules.iter_mut().find(|r| {
            r.remaining > 0
                && r.kind == kind
                && r.from.as_deref().is_none_or(|f| f == from)
                && r.to.as_deref().is_none_or(|t| t == to)
                && r.task.as_ref().is_none_or(|t| task.as_ref() == Some(t))
                && r.state.as_ref().is_none_or(|s| state.as_ref() == Some(s))
        })?;
        rule.remaining -= 1;
        let what = match rule.action {
            Action::Drop => "message dropped",
            Action::Duplicate => "message duplicated",
            Action::Forge => "forged copy of a message delivered first",
            Action::Delay { .. } => "message held back",
            Action::CrashAgent { agent, restart_ms } => {
                CRASHES.with(|crashes| crashes.borrow_mut().push((agent, restart_ms, kind)));
                if read_by_agent(kind, to, from) {
                    "agent dies as the message arrives (message lost)"
                } else {
                    "agent dies as the message passes"
                }
            }
        };
        tracing::info!(target: "revenant_sim", kind, from, to, task = task.as_deref().unwrap_or("-"), state = state.as_deref().unwrap_or("-"), "{what}");
        Some(rule.action)
    })
}

/// A stream whose incoming frames pass through the drop rules. Outgoing bytes pass
/// untouched (the peer's filter sees them).
pub struct FilteredStream {
    inner: BoxStream,
    /// This end's host.
    local: String,
    /// The other end's host.
    peer: String,
    /// Bytes read but not yet framed.
    raw: Vec<u8>,
    /// Bytes of whole frames let through, not yet handed to the reader.
    ready: Vec<u8>,
    ready_at: usize,
    /// Not the wire protocol (an HTTP request) or a bad frame: let everything through.
    passthrough: bool,
    /// The first bytes were seen (to recognise HTTP).
    started: bool,
    eof: bool,
    /// While a delayed message is held back: when it is released.
    hold: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whole frames held back behind it, in order.
    held: Vec<u8>,
    /// Bytes this end wrote, not yet framed, while the ZooKeeper oracles watch what
    /// masters send (`crate::zk`); `None` when nobody watches or not the wire protocol.
    written: Option<Vec<u8>>,
    /// The timeline's message log, when one is recording (`crate::messages`).
    tap: Option<crate::messages::Tap>,
    /// On an agent's end of an executor's connection: the shutdown asks it writes
    /// (`crate::shutdown_asks`).
    asks: Option<crate::shutdown_asks::Watch>,
    /// On a master's end of a connection from the agent machine: what it reads and
    /// writes (`crate::master_wire`, docs/recovery-rules.md R55).
    master_wire: Option<crate::master_wire::Watch>,
    /// The buffer each read from `inner` goes through, made at the first read and kept
    /// (docs/recovery-latency.md P40).
    chunk: Vec<u8>,
}

impl FilteredStream {
    /// Wraps `inner`, a connection from `peer` to `local`.
    pub fn new(inner: BoxStream, local: String, peer: String) -> FilteredStream {
        let master_wire = match local.starts_with("master") {
            true if peer == crate::hosts::AGENT_HOST => {
                Some(crate::master_wire::Watch::new(&local))
            }
            // docs/security.md SEC48: the rogue agent's connections, recorded apart.
            true if peer == crate::hosts::ROGUE_AGENT_HOST => {
                Some(crate::master_wire::Watch::from_rogue_agent(&local))
            }
            _ => None,
        };
        FilteredStream {
            inner,
            local,
            peer,
            raw: Vec::new(),
            ready: Vec::new(),
            ready_at: 0,
            passthrough: false,
            started: false,
            eof: false,
            hold: None,
            held: Vec::new(),
            written: None,
            tap: None,
            asks: None,
            master_wire,
            chunk: Vec::new(),
        }
        .watching_writes()
    }

    fn watching_writes(mut self) -> FilteredStream {
        if crate::zk::active() && self.local.starts_with("master") {
            self.written = Some(Vec::new());
        }
        self
    }

    /// Hands each whole frame this end wrote to the ZooKeeper oracles.
    fn wrote(&mut self, bytes: &[u8]) {
        let Some(written) = self.written.as_mut() else {
            return;
        };
        written.extend_from_slice(bytes);
        if written.len() >= 4
            && written[..4]
                .iter()
                .all(|b| b.is_ascii_uppercase() || *b == b' ')
        {
            // HTTP: not the wire protocol.
            self.written = None;
            return;
        }
        while written.len() >= 4 {
            let length =
                u32::from_le_bytes([written[0], written[1], written[2], written[3]]) as usize;
            if length > revenant::wire::FRAME_BYTES_MAX {
                self.written = None;
                return;
            }
            if written.len() < 4 + length {
                return;
            }
            let frame: Vec<u8> = written.drain(..4 + length).collect();
            crate::zk::observe_written(&self.local, &self.peer, &frame[4..]);
        }
    }

    /// Records this end's frames in the timeline's message log, if one is recording;
    /// `connected`: this end opened the connection; `process`: the process at this end,
    /// when its host runs several.
    pub fn tapped(mut self, connected: bool, process: Option<&str>) -> FilteredStream {
        self.tap = crate::messages::Tap::new(&self.local, &self.peer, connected, process);
        self
    }

    /// Watches the shutdown asks this end writes, if it is agent process `agent`'s end of
    /// a connection whose other end's port on the agent's machine is `port`
    /// (`(agent, port)`).
    pub fn watching_asks(mut self, asks: Option<(u32, u16)>) -> FilteredStream {
        self.asks = asks.map(|(agent, port)| crate::shutdown_asks::Watch::new(agent, port));
        self
    }

    /// Records whole frames handed to the reader in the timeline's message log, frame by
    /// frame (a duplicate twice, a forged copy first).
    fn tap_delivered(&mut self, frames: &[u8]) {
        if let Some(asks) = &mut self.asks {
            asks.delivered(frames);
        }
        if let Some(watch) = &mut self.master_wire {
            watch.delivered(frames);
        }
        let Some(tap) = &mut self.tap else {
            return;
        };
        let mut rest = frames;
        while rest.len() >= 4 {
            let length = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let end = (4 + length).min(rest.len());
            tap.received(&rest[..end]);
            rest = &rest[end..];
        }
    }

    /// Moves whole frames from `raw` to `ready`, dropping those a rule takes.
    fn frame(&mut self) {
        if !self.started && self.raw.len() >= 4 {
            self.started = true;
            let head = &self.raw[..4];
            if head.iter().all(|b| b.is_ascii_uppercase() || *b == b' ') {
                self.passthrough = true;
            }
        }
        while !self.passthrough && self.raw.len() >= 4 {
            let length =
                u32::from_le_bytes([self.raw[0], self.raw[1], self.raw[2], self.raw[3]]) as usize;
            if length > revenant::wire::FRAME_BYTES_MAX {
                self.passthrough = true;
                break;
            }
            if self.raw.len() < 4 + length {
                return;
            }
            // The frame leaves `raw` without a copy when it is all of it (the common
            // case: a frame is read whole before the next one starts).
            let frame: Vec<u8> = if self.raw.len() == 4 + length {
                std::mem::take(&mut self.raw)
            } else {
                let rest = self.raw.split_off(4 + length);
                std::mem::replace(&mut self.raw, rest)
            };
            let body = if any_armed() {
                Envelope::decode(&frame[4..]).ok().and_then(|e| e.body)
            } else {
                None
            };
            let action = body
                .as_ref()
                .and_then(|body| take(body, &self.peer, &self.local).map(|a| (body, a)));
            let mut out = Vec::new();
            // What the receiver gets is evidence of what its sender promised
            // (docs/task-lifecycle.md L22); a frame lost with an agent's death is not.
            let lost = match &action {
                Some((_, Action::Drop)) => true,
                Some((body, Action::CrashAgent { .. })) => {
                    read_by_agent(revenant::wire::kind(body), &self.local, &self.peer)
                }
                _ => false,
            };
            if !lost {
                crate::durability::observe(&frame, &self.local, &self.peer);
                crate::update_receipts::observe(&frame, &self.local, &self.peer);
                crate::reconcile_watch::observe(&frame, &self.local, &self.peer);
            }
            match action {
                None => out = frame,
                Some((body, Action::CrashAgent { .. })) => {
                    if !read_by_agent(revenant::wire::kind(body), &self.local, &self.peer) {
                        out.extend_from_slice(&frame);
                    }
                }
                Some((_, Action::Drop)) => {}
                Some((_, Action::Duplicate)) => {
                    out.extend_from_slice(&frame);
                    out.extend_from_slice(&frame);
                }
                Some((body, Action::Forge)) => {
                    if let Some(copy) = forged(body) {
                        // A forged copy too large for a frame is not delivered.
                        if let Ok(bytes) = revenant::wire::encode(copy) {
                            out.extend(bytes);
                        }
                    }
                    out.extend_from_slice(&frame);
                }
                Some((_, Action::Delay { ms })) => {
                    if self.hold.is_none() {
                        let release = std::time::Duration::from_millis(ms);
                        self.hold = Some(Box::pin(tokio::time::sleep(release)));
                    }
                    out.extend_from_slice(&frame);
                }
            }
            if self.hold.is_none() {
                // Held frames are recorded when they are let through (poll_read).
                self.tap_delivered(&out);
            }
            let queue = if self.hold.is_some() {
                &mut self.held
            } else {
                &mut self.ready
            };
            if queue.is_empty() {
                *queue = out;
            } else {
                queue.extend(out);
            }
        }
        if self.passthrough {
            if self.hold.is_some() {
                self.held.append(&mut self.raw);
            } else {
                self.ready.append(&mut self.raw);
            }
        }
    }
}

impl AsyncRead for FilteredStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.ready_at < this.ready.len() {
                let n = buf.remaining().min(this.ready.len() - this.ready_at);
                buf.put_slice(&this.ready[this.ready_at..this.ready_at + n]);
                this.ready_at += n;
                if this.ready_at == this.ready.len() {
                    this.ready.clear();
                    this.ready_at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if let Some(hold) = this.hold.as_mut() {
                match hold.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) => {
                        this.hold = None;
                        if !this.passthrough {
                            let held = std::mem::take(&mut this.held);
                            this.tap_delivered(&held);
                            this.held = held;
                        }
                        this.ready.append(&mut this.held);
                        continue;
                    }
                }
            }
            if this.eof {
                if this.raw.is_empty() {
                    if let Some(watch) = &mut this.master_wire {
                        watch.closed();
                    }
                    return Poll::Ready(Ok(()));
                }
                // A torn last frame: hand it over, the reader reports the short read.
                this.ready.append(&mut this.raw);
                continue;
            }
            if this.chunk.is_empty() {
                this.chunk = vec![0u8; 8192];
            }
            let mut chunk_buf = ReadBuf::new(&mut this.chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut chunk_buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(error)) => {
                    if let Some(watch) = &mut this.master_wire {
                        watch.closed();
                    }
                    if let Some(asks) = &mut this.asks {
                        asks.peer_gone();
                    }
                    return Poll::Ready(Err(error));
                }
                Poll::Ready(Ok(())) => {
                    let filled = chunk_buf.filled().len();
                    if filled == 0 {
                        this.eof = true;
                        if let Some(asks) = &mut this.asks {
                            asks.peer_gone();
                        }
                    } else {
                        this.raw.extend_from_slice(&this.chunk[..filled]);
                        this.frame();
                    }
                }
            }
        }
    }
}

impl AsyncWrite for FilteredStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &written {
            let n = *n;
            this.wrote(&buf[..n]);
            if let Some(asks) = &mut this.asks {
                asks.wrote(&buf[..n]);
            }
            if let Some(tap) = &mut this.tap {
                tap.sent(&buf[..n]);
            }
            if let Some(watch) = &mut this.master_wire {
                watch.wrote(&buf[..n]);
            }
        }
        if let (Poll::Ready(Err(_)), Some(watch)) = (&written, &mut this.master_wire) {
            watch.closed();
        }
        if let (Poll::Ready(Err(_)), Some(asks)) = (&written, &mut this.asks) {
            asks.peer_gone();
        }
        written
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(watch) = &mut self.master_wire {
            watch.closed();
        }
        if let Some(asks) = &mut self.asks {
            asks.shut_down();
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use revenant::proto::{Ping, Pong};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Frames written into one end of a pipe come out of the filtered other end, less
    /// the one an armed rule takes; the rule then counts down and lets the next through.
    #[test]
    fn drops_exactly_the_matching_frames() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            clear();
            arm(DropRule {
                action: Action::Drop,
                kind: "ping",
                from: Some("master1".into()),
                to: Some("agent1".into()),
                task: None,
                state: None,
                remaining: 1,
            });
            let (mut writer, reader) = tokio::io::duplex(1 << 16);
            let mut filtered =
                FilteredStream::new(Box::new(reader), "agent1".into(), "master1".into());
            let mut bytes = Vec::new();
            bytes.extend(revenant::wire::encode(Body::Ping(Ping { sequence: 1 })).unwrap());
            bytes.extend(revenant::wire::encode(Body::Pong(Pong { sequence: 2 })).unwrap());
            bytes.extend(revenant::wire::encode(Body::Ping(Ping { sequence: 3 })).unwrap());
            // Torn across writes, as TCP may deliver it.
            let (head, tail) = bytes.split_at(5);
            writer.write_all(head).await.unwrap();
            writer.write_all(tail).await.unwrap();
            drop(writer);
            let mut got = Vec::new();
            while let Ok(body) = revenant::wire::read_envelope(&mut filtered).await {
                got.push(body);
            }
            assert_eq!(
                got,
                vec![
                    Body::Pong(Pong { sequence: 2 }),
                    Body::Ping(Ping { sequence: 3 })
                ]
            );
            let mut rest = Vec::new();
            filtered.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
            clear();
        });
    }

    /// A duplicate rule hands the matching frame over twice; a forge rule puts a copy
    /// with the forged uuid ahead of it; frames that match no rule pass once.
    #[test]
    fn duplicates_and_forges_the_matching_frames() {
        use revenant::proto::Acknowledgement;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            clear();
            let ack = |task: &str| {
                Body::Acknowledgement(Acknowledgement {
                    task_id: task.into(),
                    uuid: vec![7; 16],
                    ..Default::default()
                })
            };
            for (action, task) in [(Action::Duplicate, "t1"), (Action::Forge, "t2")] {
                arm(DropRule {
                    action,
                    kind: "acknowledgement",
                    from: None,
                    to: None,
                    task: Some(task.into()),
                    state: None,
                    remaining: 1,
                });
            }
            let (mut writer, reader) = tokio::io::duplex(1 << 16);
            let mut filtered =
                FilteredStream::new(Box::new(reader), "agent1".into(), "master1".into());
            for body in [ack("t1"), ack("t2"), ack("t1"), ack("t2")] {
                writer
                    .write_all(&revenant::wire::encode(body).unwrap())
                    .await
                    .unwrap();
            }
            drop(writer);
            let mut got = Vec::new();
            while let Ok(body) = revenant::wire::read_envelope(&mut filtered).await {
                got.push(body);
            }
            let forged = Body::Acknowledgement(Acknowledgement {
                task_id: "t2".into(),
                uuid: FORGED_UUID.to_vec(),
                ..Default::default()
            });
            assert_eq!(
                got,
                vec![
                    ack("t1"),
                    ack("t1"),
                    forged,
                    ack("t2"),
                    ack("t1"),
                    ack("t2")
                ]
            );
            clear();
        });
    }

    #[test]
    fn kinds_are_normalised() {
        assert_eq!(
            normalise_kind("RegisterExecutor"),
            Some("register_executor")
        );
        assert_eq!(normalise_kind("status_update"), Some("status_update"));
        assert_eq!(normalise_kind("StatusUpdates"), None);
    }
}
