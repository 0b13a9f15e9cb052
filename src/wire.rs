//! The wire protocol: every connection carries `Envelope`s, each framed as a 4-byte
//! little-endian length followed by the protobuf bytes, at most [`FRAME_BYTES_MAX`].
//!
//! A malformed or oversized frame closes that one connection with a logged reason naming
//! the peer; it never takes the process down (docs/security.md SEC1-SEC6). A connection
//! is served by a reader and a writer task, both owned by the caller's `JoinSet`, so
//! dropping the role's future closes every socket it had (the simulator relies on this
//! to crash a process).

use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use tracing::{error, warn};

use crate::os::BoxStream;
use crate::proto::{envelope::Body, Envelope};

/// The largest frame accepted or sent.
pub const FRAME_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Envelopes queued for one connection's writer before the connection is dropped as
/// too slow.
pub const OUTBOX_ENVELOPES_MAX: usize = 4096;

/// A connection's read buffer.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Once the first byte of a frame (or of an HTTP request head) has arrived, the rest must
/// arrive within this long, or the connection is cut off (docs/security.md SEC3).
pub const FRAME_DEADLINE: Duration = Duration::from_secs(10);
/// The most connections a listening role keeps open before their peer has said who it is
/// (no registration yet); one more closes the oldest of them (docs/security.md SEC4).
pub const UNIDENTIFIED_CONNECTIONS_MAX: usize = 128;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The peer closed the connection.
    #[error("connection closed by peer")]
    Closed,
    /// An IO error.
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    /// A frame larger than the maximum.
    #[error("frame of {0} bytes exceeds the maximum of {FRAME_BYTES_MAX}")]
    Oversized(usize),
    /// A frame that is not an `Envelope`.
    #[error("malformed envelope: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// An envelope without a body.
    #[error("envelope without a body")]
    Empty,
    /// A peer that started a frame and did not finish it in time.
    #[error("{0}")]
    Stalled(&'static str),
    /// An HTTP request `hyper` could not read (malformed, or its head too large).
    #[error("bad HTTP request: {0}")]
    Http(String),
    /// An envelope to send that would not fit in a frame (docs/security.md SEC5).
    #[error("{kind} envelope of {bytes} bytes exceeds the frame maximum of {FRAME_BYTES_MAX}")]
    TooLarge {
        /// The envelope's kind.
        kind: &'static str,
        /// Its encoded size.
        bytes: usize,
    },
}

impl WireError {
    /// Whether the error is the peer's fault (bad or hostile input), as opposed to a
    /// connection that simply ended: these are logged as warnings naming the peer.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            WireError::Oversized(_)
                | WireError::Malformed(_)
                | WireError::Empty
                | WireError::Stalled(_)
                | WireError::Http(_)
        )
    }
}

/// Reads one envelope.
pub async fn read_envelope<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Body, WireError> {
    let mut length_bytes = [0u8; 4];
    match reader.read_exact(&mut length_bytes).await {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(WireError::Closed)
        }
        Err(error) => return Err(error.into()),
    }
    read_body(reader, u32::from_le_bytes(length_bytes)).await
}

/// Reads the body of a frame whose declared length is `length`. A length over the
/// maximum is refused before anything is allocated, and the buffer grows only with the
/// bytes that actually arrive, so a peer declaring a large frame and sending little
/// holds little memory (docs/security.md SEC1).
async fn read_body<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut R,
    length: u32,
) -> Result<Body, WireError> {
    let length = length as usize;
    if length > FRAME_BYTES_MAX {
        return Err(WireError::Oversized(length));
    }
    let mut data = Vec::with_capacity(length.min(READ_BUFFER_BYTES));
    (&mut *reader)
        .take(length as u64)
        .read_to_end(&mut data)
        .await?;
    if data.len() < length {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "early eof").into());
    }
    decode(&data)
}

/// Decodes one frame's body (the bytes after the length).
pub fn decode(data: &[u8]) -> Result<Body, WireError> {
    Envelope::decode(data)?.body.ok_or(WireError::Empty)
}

/// The size `body` takes on the wire, length prefix included.
pub fn framed_len(body: &Body) -> usize {
    // The envelope holds only the body's oneof, whose size includes its field key and
    // length.
    4 + body.encoded_len()
}

/// Whether `body` fits in one frame; `Err` names its kind and size (docs/security.md
/// SEC5). Senders check this where a message is made, so that the error reaches whoever
/// made it.
pub fn check_fits(body: &Body) -> Result<(), WireError> {
    let bytes = framed_len(body) - 4;
    if bytes > FRAME_BYTES_MAX {
        return Err(WireError::TooLarge {
            kind: kind(body),
            bytes,
        });
    }
    Ok(())
}

/// Frames one envelope; an envelope over the frame maximum is an error, never a panic.
pub fn encode(body: Body) -> Result<Vec<u8>, WireError> {
    check_fits(&body)?;
    let envelope = Envelope { body: Some(body) };
    let length = envelope.encoded_len();
    let mut out = Vec::with_capacity(4 + length);
    out.extend_from_slice(&(length as u32).to_le_bytes());
    envelope.encode(&mut out).map_err(std::io::Error::other)?;
    Ok(out)
}

/// Writes one envelope.
pub async fn write_envelope<W: tokio::io::AsyncWrite + Unpin>(
    writer: &mut W,
    body: Body,
) -> Result<(), WireError> {
    writer.write_all(&encode(body)?).await?;
    writer.flush().await?;
    Ok(())
}

/// Identifies a connection within one role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// What a connection's reader reports to its role.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // moved once from reader to role
pub enum Incoming {
    /// An envelope arrived.
    Message(ConnectionId, Body),
    /// An HTTP request for this path arrived (an operator's `/state` or `/metrics`),
    /// parsed by `hyper` (docs/design.md D15); answer with [`Outbox::respond`].
    Http(ConnectionId, String),
    /// The connection ended.
    Closed(ConnectionId, String),
}

/// What a connection's writer sends.
#[allow(clippy::large_enum_variant)] // moved once into the writer's queue
enum Outgoing {
    Envelope(Body),
    /// The answer to the connection's HTTP request.
    Response(crate::http::Response),
    /// The connection turned out to speak HTTP: the writer hands its half of the stream
    /// and its queue to the reader, which serves the request with `hyper`.
    HandOver(tokio::sync::oneshot::Sender<(WriteHalf, mpsc::Receiver<Outgoing>)>),
}

type WriteHalf = tokio::io::WriteHalf<BoxStream>;

impl fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outgoing::Envelope(body) => f.debug_tuple("Envelope").field(body).finish(),
            Outgoing::Response(response) => f.debug_tuple("Response").field(response).finish(),
            Outgoing::HandOver(_) => f.write_str("HandOver"),
        }
    }
}

/// The most bytes of an HTTP request head read (`hyper`'s smallest read buffer).
const HTTP_HEAD_BYTES_MAX: usize = 8 * 1024;

/// The sending side of a connection. Sending never blocks; a full outbox or a closed
/// connection makes `send` return false.
#[derive(Clone, Debug)]
pub struct Outbox {
    id: ConnectionId,
    sender: mpsc::Sender<Outgoing>,
    /// The connection's reader and writer tasks, for [`Outbox::close`].
    tasks: [tokio::task::AbortHandle; 2],
}

impl Outbox {
    /// The connection.
    pub fn id(&self) -> ConnectionId {
        self.id
    }
    /// Closes the connection now: its reader and writer stop and the socket is dropped,
    /// so the peer sees it closed (used for a peer whose connection went silent).
    pub fn close(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
    /// Queues an envelope; false when the connection is gone or hopelessly behind, or
    /// when the envelope would not fit in a frame: that one is refused here, logged, and
    /// the connection and everything queued on it go on (docs/security.md SEC5).
    pub fn send(&self, body: Body) -> bool {
        if let Err(error) = check_fits(&body) {
            error!(connection = %self.id, %error, "message refused: it would not fit in a frame");
            return false;
        }
        self.sender.try_send(Outgoing::Envelope(body)).is_ok()
    }
    /// Answers an HTTP request; the connection closes after the answer.
    pub fn respond(&self, response: crate::http::Response) -> bool {
        self.sender.try_send(Outgoing::Response(response)).is_ok()
    }
}

/// Serves the one HTTP request of a connection with `hyper` (docs/design.md D15):
/// `answer` is given its path. The whole exchange, from the request's first byte, must
/// end within [`FRAME_DEADLINE`], so a request that starts and stalls is cut off
/// (docs/security.md SEC3).
pub async fn serve_http<S, F, A>(
    stream: S,
    clock: &dyn crate::os::Clock,
    answer: F,
) -> Result<(), WireError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    F: Fn(String) -> A,
    A: std::future::Future<Output = crate::http::Response>,
{
    let sleep = clock.sleep(FRAME_DEADLINE);
    tokio::select! {
        biased;
        result = crate::http::serve(stream, HTTP_HEAD_BYTES_MAX, answer) => {
            result.map_err(|error| {
                if error.is_parse() || error.is_parse_too_large() {
                    WireError::Http(error.to_string())
                } else {
                    WireError::Io(std::io::Error::other(error))
                }
            })
        }
        _ = sleep => Err(WireError::Stalled("an HTTP request started and did not end within the frame deadline")),
    }
}

/// The next event of a role's loop (executor, framework): what `inbox` delivers within
/// `wait`, or `None` when the wait ends first or the inbox is closed. A ready event wins
/// over an ended wait (`biased`: docs/design.md's determinism rules).
pub async fn next_event<E>(
    inbox: &mut mpsc::UnboundedReceiver<E>,
    clock: &dyn crate::os::Clock,
    wait: Duration,
) -> Option<E> {
    let sleep = clock.sleep(wait);
    tokio::select! {
        biased;
        event = inbox.recv() => event,
        _ = sleep => None,
    }
}

/// One connection as its role sees it: its id and who is at the other end (for logs).
#[derive(Clone)]
pub struct Link {
    /// The connection's id within its role.
    pub id: ConnectionId,
    /// The peer's address (or name), logged with every reason to cut the connection.
    pub peer: String,
    /// Time, for the frame deadline.
    pub clock: Rc<dyn crate::os::Clock>,
}

/// What [`read_next`] read.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // moved once
pub enum Read {
    /// An envelope.
    Envelope(Body),
    /// The connection speaks HTTP: its first four bytes, `GET `, were read; the rest of
    /// the request is for [`serve_http`].
    Http,
}

/// Reads the next frame (or, first on a connection, an HTTP request head). Waiting for
/// a frame to start has no deadline (the peer may be idle; pings find dead peers); once
/// a frame has started, it must end within [`FRAME_DEADLINE`] (docs/security.md SEC3).
pub async fn read_next<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut tokio::io::BufReader<R>,
    first: bool,
    clock: &dyn crate::os::Clock,
) -> Result<Read, WireError> {
    use tokio::io::AsyncBufReadExt;
    // Wait for the frame's first byte.
    let started = reader.fill_buf().await.map(|b| !b.is_empty());
    // As before the deadlines: a connection that ends (or fails) before its first
    // frame's length, or cleanly between frames, was closed by the peer.
    match started {
        Ok(true) => {}
        Ok(false) => return Err(WireError::Closed),
        Err(_) if first => return Err(WireError::Closed),
        Err(error) => return Err(error.into()),
    }
    // The fast path: the whole frame is already buffered, no timer needed.
    let buffered = reader.buffer();
    if buffered.len() >= 4 && !(first && &buffered[..4] == b"GET ") {
        let length = u32::from_le_bytes(buffered[..4].try_into().expect("four bytes")) as usize;
        if length > FRAME_BYTES_MAX {
            return Err(WireError::Oversized(length));
        }
        if buffered.len() >= 4 + length {
            let body = decode(&buffered[4..4 + length]);
            reader.consume(4 + length);
            return body.map(Read::Envelope);
        }
    }
    let sleep = clock.sleep(FRAME_DEADLINE);
    let rest = async {
        let mut prefix = [0u8; 4];
        match reader.read_exact(&mut prefix).await {
            Ok(_) => {}
            Err(error) if first || error.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(WireError::Closed)
            }
            Err(error) => return Err(error.into()),
        }
        if first && &prefix == b"GET " {
            // An operator's HTTP request: its first four bytes, read as a frame length,
            // would exceed the frame maximum anyway, so the two can never be confused.
            return Ok(Read::Http);
        }
        read_body(reader, u32::from_le_bytes(prefix))
            .await
            .map(Read::Envelope)
    };
    tokio::select! {
        biased;
        result = rest => result,
        _ = sleep => Err(WireError::Stalled("a frame started and did not end within the frame deadline")),
    }
}

/// Serves `stream`: a reader task handing each envelope to `inbox` (wrapped by `wrap`
/// into the role's own event type), and a writer task draining the returned outbox. Both
/// live in `tasks`, so they end with the role.
pub fn serve<E: 'static>(
    stream: BoxStream,
    link: Link,
    tasks: &mut JoinSet<()>,
    inbox: mpsc::UnboundedSender<E>,
    wrap: fn(Incoming) -> E,
) -> Outbox {
    let id = link.id;
    let (reader, mut writer) = tokio::io::split(stream);
    // Buffered: a frame's length and body, and the frames that arrived with it, come in
    // one read rather than two per frame.
    let mut reader = tokio::io::BufReader::with_capacity(READ_BUFFER_BYTES, reader);
    let (sender, mut receiver) = mpsc::channel::<Outgoing>(OUTBOX_ENVELOPES_MAX);
    let reader_inbox = inbox.clone();
    // Weak: the writer still ends when the role drops the last outbox.
    let hand_over = sender.downgrade();
    let reader_task = tasks.spawn_local(async move {
        let mut first = true;
        loop {
            let result = read_next(&mut reader, first, &*link.clock).await;
            first = false;
            match result {
                Ok(Read::Envelope(body)) => {
                    if reader_inbox
                        .send(wrap(Incoming::Message(id, body)))
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(Read::Http) => {
                    // The writer hands over its half and its queue; the request is
                    // served on the whole stream again, the bytes read so far first.
                    let (back, handed) = tokio::sync::oneshot::channel();
                    let handed_over = hand_over
                        .upgrade()
                        .is_some_and(|sender| sender.try_send(Outgoing::HandOver(back)).is_ok());
                    if !handed_over {
                        return;
                    }
                    let Ok((writer, responses)) = handed.await else {
                        return;
                    };
                    let mut read = b"GET ".to_vec();
                    read.extend_from_slice(reader.buffer());
                    let stream = crate::http::Rewind::new(read, reader.into_inner().unsplit(writer));
                    let responses = std::cell::RefCell::new(Some(responses));
                    let answer = |path: String| {
                        let asked = reader_inbox.send(wrap(Incoming::Http(id, path))).is_ok();
                        let responses = responses.borrow_mut().take();
                        async move {
                            let mut responses = responses.filter(|_| asked)?;
                            while let Some(outgoing) = responses.recv().await {
                                if let Outgoing::Response(response) = outgoing {
                                    return Some(response);
                                }
                            }
                            None
                        }
                    };
                    let answer = |path| {
                        let answer = answer(path);
                        async move {
                            answer.await.unwrap_or_else(|| {
                                crate::http::Response::new(503, "text/plain", "shutting down\n")
                            })
                        }
                    };
                    if let Err(error) = serve_http(stream, &*link.clock, answer).await {
                        if error.is_bad_input() {
                            warn!(connection = %id, peer = %link.peer, reason = %error, "closing a connection: bad input from the peer");
                        }
                    }
                    return;
                }
                Err(error) => {
                    if error.is_bad_input() {
                        // docs/security.md SEC2: the reason and the peer are logged.
                        warn!(connection = %id, peer = %link.peer, reason = %error, "closing a connection: bad input from the peer");
                    }
                    let _ = reader_inbox.send(wrap(Incoming::Closed(id, error.to_string())));
                    return;
                }
            }
        }
    });
    let writer_task = tasks.spawn_local(async move {
        while let Some(outgoing) = receiver.recv().await {
            let result = match outgoing {
                Outgoing::Envelope(body) => write_envelope(&mut writer, body).await,
                Outgoing::HandOver(back) => {
                    let _ = back.send((writer, receiver));
                    return;
                }
                // An answer with no request served (cannot happen): dropped.
                Outgoing::Response(_) => Ok(()),
            };
            if let Err(error) = result {
                let _ = inbox.send(wrap(Incoming::Closed(id, error.to_string())));
                return;
            }
        }
        let _ = writer.shutdown().await;
    });
    Outbox {
        id,
        sender,
        tasks: [reader_task, writer_task],
    }
}

/// Connects to `address`, giving up after `timeout` (the simulated network never times
/// a connection out by itself).
pub async fn connect(
    net: std::rc::Rc<dyn crate::os::Network>,
    clock: std::rc::Rc<dyn crate::os::Clock>,
    address: String,
    timeout: std::time::Duration,
) -> Result<BoxStream, String> {
    let deadline = clock.sleep(timeout);
    tokio::select! {
        biased;
        result = net.connect(&address) => result.map_err(|error| error.to_string()),
        _ = deadline => Err("connect timed out".to_owned()),
    }
}

/// A short name of an envelope's kind, for logs and traces.
pub fn kind(body: &Body) -> &'static str {
    match body {
        Body::RegisterAgent(_) => "register_agent",
        Body::ReregisterAgent(_) => "reregister_agent",
        Body::AgentRegistered(_) => "agent_registered",
        Body::AgentReregistered(_) => "agent_reregistered",
        Body::RunTask(_) => "run_task",
        Body::KillTask(_) => "kill_task",
        Body::StatusUpdate(_) => "status_update",
        Body::Acknowledgement(_) => "acknowledgement",
        Body::RegisterFramework(_) => "register_framework",
        Body::FrameworkRegistered(_) => "framework_registered",
        Body::SubmitTask(_) => "submit_task",
        Body::Reconcile(_) => "reconcile",
        Body::Ping(_) => "ping",
        Body::Pong(_) => "pong",
        Body::RegisterExecutor(_) => "register_executor",
        Body::ExecutorRegistered(_) => "executor_registered",
        Body::ReregisterExecutor(_) => "reregister_executor",
        Body::ShutdownExecutor(_) => "shutdown_executor",
        Body::ShutdownAgent(_) => "shutdown_agent",
        Body::NotLeader(_) => "not_leader",
        Body::UnregisterAgent(_) => "unregister_agent",
        Body::ReconnectExecutor(_) => "reconnect_executor",
        Body::WakeChallenge(_) => "wake_challenge",
        Body::WakeExecutor(_) => "wake_executor",
        Body::TeardownFramework(_) => "teardown_framework",
        Body::FrameworkRemoved(_) => "framework_removed",
        Body::ShutdownFramework(_) => "shutdown_framework",
        Body::ReserveResources(_) => "reserve_resources",
        Body::CheckpointResources(_) => "checkpoint_resources",
        Body::AgentRecovering(_) => "agent_recovering",
        Body::FrameworkError(_) => "framework_error",
    }
}

#[cfg(test)]
mod tests;
