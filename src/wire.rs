//! The wire protocol: every connection carries `Envelope`s, each framed as a 4-byte
//! little-endian length followed by the protobuf bytes, at most [`FRAME_BYTES_MAX`].
//!
//! A malformed or oversized frame closes that one connection with a logged reason; it
//! never takes the process down. A connection is served by a reader and a writer task,
//! both owned by the caller's `JoinSet`, so dropping the role's future closes every
//! socket it had (the simulator relies on this to crash a process).

use std::fmt;

use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::os::BoxStream;
use crate::proto::{envelope::Body, Envelope};

/// The largest frame accepted or sent.
pub const FRAME_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Envelopes queued for one connection's writer before the connection is dropped as
/// too slow.
pub const OUTBOX_ENVELOPES_MAX: usize = 4096;

/// A connection's read buffer.
const READ_BUFFER_BYTES: usize = 64 * 1024;

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
    let length = u32::from_le_bytes(length_bytes) as usize;
    if length > FRAME_BYTES_MAX {
        return Err(WireError::Oversized(length));
    }
    let mut data = vec![0u8; length];
    reader.read_exact(&mut data).await?;
    Envelope::decode(data.as_slice())?
        .body
        .ok_or(WireError::Empty)
}

/// Frames one envelope.
pub fn encode(body: Body) -> Vec<u8> {
    let envelope = Envelope { body: Some(body) };
    let length = envelope.encoded_len();
    assert!(
        length <= FRAME_BYTES_MAX,
        "envelope of {length} bytes exceeds the frame maximum"
    );
    let mut out = Vec::with_capacity(4 + length);
    out.extend_from_slice(&(length as u32).to_le_bytes());
    envelope.encode(&mut out).expect("vec has room");
    out
}

/// Writes one envelope.
pub async fn write_envelope<W: tokio::io::AsyncWrite + Unpin>(
    writer: &mut W,
    body: Body,
) -> Result<(), WireError> {
    writer.write_all(&encode(body)).await?;
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
    /// An HTTP `GET` for this path arrived (an operator's `/state` or `/metrics`); answer
    /// with [`Outbox::respond`].
    Http(ConnectionId, String),
    /// The connection ended.
    Closed(ConnectionId, String),
}

/// What a connection's writer sends.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // moved once into the writer's queue
enum Outgoing {
    Envelope(Body),
    /// Raw bytes (an HTTP response), after which the connection is closed.
    Final(Vec<u8>),
}

/// The longest HTTP request head read.
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
    /// Queues an envelope; false when the connection is gone or hopelessly behind.
    pub fn send(&self, body: Body) -> bool {
        self.sender.try_send(Outgoing::Envelope(body)).is_ok()
    }
    /// Answers an HTTP request and closes the connection.
    pub fn respond(&self, status: u16, content_type: &str, body: &str) -> bool {
        let reason = match status {
            200 => "OK",
            404 => "Not Found",
            503 => "Service Unavailable",
            _ => "Error",
        };
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        self.sender
            .try_send(Outgoing::Final(response.into_bytes()))
            .is_ok()
    }
}

/// Reads the rest of an HTTP request head whose first four bytes were `GET `; returns
/// the path.
async fn read_http_path<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<String, WireError> {
    let mut head = b"GET ".to_vec();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && !head.ends_with(b"\n\n") {
        if head.len() >= HTTP_HEAD_BYTES_MAX {
            return Err(WireError::Oversized(head.len()));
        }
        if reader.read(&mut byte).await? == 0 {
            return Err(WireError::Closed);
        }
        head.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&head);
    Ok(line.split_whitespace().nth(1).unwrap_or("/").to_owned())
}

/// Serves `stream`: a reader task handing each envelope to `inbox` (wrapped by `wrap`
/// into the role's own event type), and a writer task draining the returned outbox. Both
/// live in `tasks`, so they end with the role.
pub fn serve<E: 'static>(
    stream: BoxStream,
    id: ConnectionId,
    tasks: &mut JoinSet<()>,
    inbox: mpsc::UnboundedSender<E>,
    wrap: fn(Incoming) -> E,
) -> Outbox {
    let (reader, mut writer) = tokio::io::split(stream);
    // Buffered: a frame's length and body, and the frames that arrived with it, come in
    // one read rather than two per frame.
    let mut reader = tokio::io::BufReader::with_capacity(READ_BUFFER_BYTES, reader);
    let (sender, mut receiver) = mpsc::channel::<Outgoing>(OUTBOX_ENVELOPES_MAX);
    let reader_inbox = inbox.clone();
    let reader_task = tasks.spawn_local(async move {
        // A connection that starts with `GET ` is an operator's HTTP request: its first
        // four bytes, read as a frame length, would exceed the frame maximum anyway, so
        // the two can never be confused.
        let mut first = [0u8; 4];
        match reader.read_exact(&mut first).await {
            Ok(_) if &first == b"GET " => {
                let incoming = match read_http_path(&mut reader).await {
                    Ok(path) => Incoming::Http(id, path),
                    Err(error) => Incoming::Closed(id, error.to_string()),
                };
                let _ = reader_inbox.send(wrap(incoming));
                return;
            }
            Ok(_) => {}
            Err(_) => {
                let _ =
                    reader_inbox.send(wrap(Incoming::Closed(id, WireError::Closed.to_string())));
                return;
            }
        }
        let mut prefix = Some(first);
        loop {
            let result = match prefix.take() {
                Some(first) => read_envelope(&mut (&first[..]).chain(&mut reader)).await,
                None => read_envelope(&mut reader).await,
            };
            match result {
                Ok(body) => {
                    if reader_inbox
                        .send(wrap(Incoming::Message(id, body)))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(error) => {
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
                Outgoing::Final(bytes) => {
                    let _ = writer.write_all(&bytes).await;
                    break;
                }
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
        Body::TeardownFramework(_) => "teardown_framework",
        Body::FrameworkRemoved(_) => "framework_removed",
        Body::ShutdownFramework(_) => "shutdown_framework",
        Body::ReserveResources(_) => "reserve_resources",
        Body::CheckpointResources(_) => "checkpoint_resources",
        Body::AgentRecovering(_) => "agent_recovering",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Ping;

    #[tokio::test]
    async fn round_trip_and_limits() {
        let bytes = encode(Body::Ping(Ping { sequence: 7 }));
        let mut reader = bytes.as_slice();
        let body = read_envelope(&mut reader).await.unwrap();
        assert!(matches!(body, Body::Ping(Ping { sequence: 7 })));

        let oversized = ((FRAME_BYTES_MAX + 1) as u32).to_le_bytes();
        let mut reader = &oversized[..];
        assert!(matches!(
            read_envelope(&mut reader).await,
            Err(WireError::Oversized(_))
        ));

        let mut garbage = 3u32.to_le_bytes().to_vec();
        garbage.extend_from_slice(&[0xff, 0xff, 0xff]);
        let mut reader = garbage.as_slice();
        assert!(matches!(
            read_envelope(&mut reader).await,
            Err(WireError::Malformed(_))
        ));
    }
}
