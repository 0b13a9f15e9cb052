//! The shutdown asks an agent wrote to its executors, for the `shutdown_grace` oracle
//! (docs/task-lifecycle.md L36): recorded in the simulated network seam as the agent's
//! end of an executor's connection writes them, outside the code under test.
//!
//! An executor process connects to its agent, and listens for a restarted agent's wake
//! (docs/recovery-rules.md R31), through a network seam that knows its pid
//! ([`crate::seams::SimNet::for_executor`]); the connection's local port and the wake
//! endpoint's port are kept here ([`connected`]), and the agent's end, accepting a
//! connection from such a port or connecting to such an endpoint on its own machine,
//! learns which executor process is at the other end ([`executor_at`]). A rogue local process connects through a seam that knows no pid,
//! so what the agent writes to it is not an ask to an executor. The agent's end then
//! frames what it writes, reading only each frame's length and first two body bytes (the
//! `ShutdownExecutor` field's key): no copy of the frames, no draw, no trace line, so the
//! run is the same run.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::run_record::RunRecord;

/// The key of `Envelope`'s `shutdown_executor` field (number 18, length-delimited), as
/// its varint encoding's two bytes.
const SHUTDOWN_EXECUTOR_KEY: [u8; 2] = [0x92, 0x01];
/// The key of `Envelope`'s `reconnect_executor` field (number 21, length-delimited), as
/// its varint encoding's two bytes: the asks of docs/recovery-rules.md R12, whose pace
/// R56 judges.
const RECONNECT_EXECUTOR_KEY: [u8; 2] = [0xaa, 0x01];
/// The key of `Envelope`'s `register_executor` field (number 15, length-delimited): one
/// byte.
const REGISTER_EXECUTOR_KEY: u8 = 0x7a;
/// The key of `Envelope`'s `reregister_executor` field (number 17, length-delimited), as
/// its varint encoding's two bytes.
const REREGISTER_EXECUTOR_KEY: [u8; 2] = [0x8a, 0x01];

thread_local! {
    static PORTS: RefCell<BTreeMap<u16, u32>> = const { RefCell::new(BTreeMap::new()) };
}

static RECORD: RunRecord<BTreeMap<u16, u32>> = RunRecord::new(&PORTS);

/// Starts a run with no executor connection known.
pub fn begin() {
    RECORD.begin();
}

/// A process connected from local port `port`: executor process `pid`, or (`None`)
/// another process.
pub fn connected(port: u16, pid: Option<u32>) {
    RECORD.with(|ports| match pid {
        Some(pid) => ports.insert(port, pid),
        None => ports.remove(&port),
    });
}

/// The executor process that connected from local port `port`, if one did.
pub fn executor_at(port: u16) -> Option<u32> {
    RECORD.with(|ports| ports.get(&port).copied())
}

/// The agent's end of an executor's connection: finds the `ShutdownExecutor` frames it
/// writes.
pub struct Watch {
    /// The agent process (1, 2, ...).
    agent: u32,
    /// The other end's port on the agent's machine: the executor process there is looked
    /// up when an ask is found (the accepting end runs before the connecting one has
    /// said who it is).
    port: u16,
    /// The current frame's first bytes (length, then up to two body bytes).
    head: Vec<u8>,
    /// Body bytes of the current frame still to pass over.
    skip: usize,
    /// Not the wire protocol: nothing more to find.
    off: bool,
    /// When the last executor registration reached this end, if the agent has written
    /// nothing since: the next frame it writes answers it.
    registration: Option<std::time::Duration>,
    /// The agent incarnation whose end this is, and this connection's number in the run
    /// (`crate::history::connection_watched`), for R56's reconnect asks.
    incarnation: u64,
    connection: u64,
    /// The first registration that reached this end, by its index in
    /// `crate::registration_answers`' record (docs/security.md SEC45, SEC47).
    registration_index: Option<usize>,
    /// Set while that registration awaits the agent's answer.
    awaiting: bool,
}

impl Watch {
    /// Agent process `agent`'s end of a connection to port `port` of its machine.
    pub fn new(agent: u32, port: u16) -> Watch {
        let (incarnation, connection) = crate::history::connection_watched(agent);
        Watch {
            incarnation,
            connection,
            agent,
            port,
            head: Vec::with_capacity(6),
            skip: 0,
            off: false,
            registration: None,
            registration_index: None,
            awaiting: false,
        }
    }

    /// Whole frames handed to the agent's reader on this connection (in order): a
    /// registration among them is one the agent's next written frame answers.
    pub fn delivered(&mut self, mut frames: &[u8]) {
        while frames.len() >= 4 {
            let length = u32::from_le_bytes([frames[0], frames[1], frames[2], frames[3]]) as usize;
            let end = (4 + length).min(frames.len());
            let body = &frames[4..end];
            let registration = body.first() == Some(&REGISTER_EXECUTOR_KEY)
                || body.get(..2) == Some(&REREGISTER_EXECUTOR_KEY[..]);
            if registration {
                self.registration = Some(crate::history::now());
                if self.registration_index.is_none() {
                    self.first_registration(body);
                }
            }
            frames = &frames[end..];
        }
    }

    /// Bytes the agent wrote on the connection.
    pub fn wrote(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.off {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let (length, wanted) = match gather_head(&mut self.head, &mut bytes, false) {
                Head::More => return,
                Head::Off => {
                    self.off = true;
                    return;
                }
                Head::Whole { length, wanted } => (length, wanted),
            };
            // The first frame written after a registration reached this end answers it.
            let answering = self.registration.take();
            if let Some(field) = crate::registration_answers::field_of(&self.head[4..]) {
                self.answer(crate::registration_answers::Answer::Wrote(field));
            }
            if self.head[4..] == SHUTDOWN_EXECUTOR_KEY {
                // Not an executor's connection (a rogue process's): not an ask to one.
                if let Some(pid) = executor_at(self.port) {
                    crate::history::shutdown_asked(self.agent, pid, answering);
                }
            } else if self.head[4..] == RECONNECT_EXECUTOR_KEY {
                // docs/recovery-rules.md R56: asked on any local connection that said
                // nothing, whoever is at its other end.
                crate::history::reconnect_asked(self.agent, self.incarnation, self.connection);
            }
            self.skip = length - (wanted - 4);
            self.head.clear();
        }
    }
}

impl Watch {
    /// Records the connection's first registration (docs/security.md SEC45), `body` its
    /// frame's body: the ids it names, from its decoded envelope.
    fn first_registration(&mut self, body: &[u8]) {
        use prost::Message as _;
        use revenant::proto::{envelope::Body, Envelope};
        let named = match Envelope::decode(body).ok().and_then(|e| e.body) {
            Some(Body::RegisterExecutor(m)) => crate::registration_answers::Named {
                reregistration: false,
                framework: m.framework_id,
                executor: m.executor_id,
                run: m.container_id,
            },
            Some(Body::ReregisterExecutor(m)) => crate::registration_answers::Named {
                reregistration: true,
                framework: m.framework_id,
                executor: m.executor_id,
                run: m.container_id,
            },
            // Not a frame the agent decodes: it closes the connection.
            _ => crate::registration_answers::Named {
                reregistration: body.first() != Some(&REGISTER_EXECUTOR_KEY),
                framework: String::new(),
                executor: String::new(),
                run: String::new(),
            },
        };
        let index = crate::registration_answers::reached(
            (self.agent, self.incarnation, self.connection),
            executor_at(self.port),
            named,
        );
        self.registration_index = Some(index);
        self.awaiting = true;
    }

    /// The agent's end did `answer`: the first thing it did since the registration
    /// reached it answers it.
    fn answer(&mut self, answer: crate::registration_answers::Answer) {
        if std::mem::take(&mut self.awaiting) {
            if let Some(index) = self.registration_index {
                crate::registration_answers::answered(index, answer);
            }
        }
    }

    /// The agent shut its side of the connection down.
    pub fn shut_down(&mut self) {
        self.answer(crate::registration_answers::Answer::ShutDown);
    }

    /// The agent's end saw the other end gone (end of stream, a failed read or write).
    pub fn peer_gone(&mut self) {
        if let Some(index) = self.registration_index {
            crate::registration_answers::peer_gone(index);
        }
    }
}

impl Drop for Watch {
    /// The agent's end is let go of: closed by the agent, or by its death or exit.
    fn drop(&mut self) {
        self.answer(crate::registration_answers::Answer::LetGo);
    }
}

/// Where [`gather_head`] left a frame's head.
pub(crate) enum Head {
    /// More bytes are needed.
    More,
    /// Not the wire protocol (a length over the maximum, or text): nothing more to find.
    Off,
    /// The head is whole: the body's `length`, and `wanted`, the head's own length (the
    /// four length bytes and up to two body bytes, enough to tell a message's kind).
    Whole { length: usize, wanted: usize },
}

/// Moves bytes from `bytes` into `head` until it holds a frame's length and its body's
/// first two bytes (or the whole body, if shorter). With `text_is_off`, four bytes of
/// capitals and spaces (an HTTP request line) are not the wire protocol. Shared by the
/// wire taps here and in `crate::master_wire`.
pub(crate) fn gather_head(head: &mut Vec<u8>, bytes: &mut &[u8], text_is_off: bool) -> Head {
    if head.len() < 4 {
        let n = (4 - head.len()).min(bytes.len());
        head.extend_from_slice(&bytes[..n]);
        *bytes = &bytes[n..];
        if head.len() < 4 {
            return Head::More;
        }
        if text_is_off && head.iter().all(|b| b.is_ascii_uppercase() || *b == b' ') {
            return Head::Off;
        }
    }
    let length = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if length > revenant::wire::FRAME_BYTES_MAX {
        return Head::Off;
    }
    let wanted = 4 + length.min(2);
    if head.len() < wanted {
        let n = (wanted - head.len()).min(bytes.len());
        head.extend_from_slice(&bytes[..n]);
        *bytes = &bytes[n..];
        if head.len() < wanted {
            return Head::More;
        }
    }
    Head::Whole { length, wanted }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;
    use revenant::proto::{envelope::Body, Envelope, ShutdownExecutor};

    fn frame(body: Body) -> Vec<u8> {
        let bytes = Envelope { body: Some(body) }.encode_to_vec();
        let mut out = (bytes.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(&bytes);
        out
    }

    #[test]
    fn the_key_is_the_shutdown_executor_field() {
        let shutdown = frame(Body::ShutdownExecutor(ShutdownExecutor {
            reason: "framework shut down".into(),
        }));
        assert_eq!(shutdown[4..6], SHUTDOWN_EXECUTOR_KEY);
    }

    #[test]
    fn the_key_is_the_reconnect_executor_field() {
        let ask = frame(Body::ReconnectExecutor(Default::default()));
        assert_eq!(ask[4..6], RECONNECT_EXECUTOR_KEY);
        let named = frame(Body::ReconnectExecutor(
            revenant::proto::ReconnectExecutor {
                agent_id: "agent-1".into(),
            },
        ));
        assert_eq!(named[4..6], RECONNECT_EXECUTOR_KEY);
    }

    #[test]
    fn finds_reconnect_asks_per_connection() {
        crate::history::begin();
        crate::history::agent_started(1, 2, None);
        begin();
        let mut first = Watch::new(1, 49_202);
        let mut second = Watch::new(1, 49_203);
        let ask = frame(Body::ReconnectExecutor(Default::default()));
        for chunk in ask.chunks(1) {
            first.wrote(chunk);
        }
        second.wrote(&ask);
        first.wrote(&ask);
        let asks: Vec<(u64, u64)> = crate::history::take()
            .paced
            .iter()
            .filter_map(|p| match p.act {
                crate::history::Pace::ReconnectAsk { connection } => {
                    Some((p.incarnation, connection))
                }
                _ => None,
            })
            .collect();
        assert_eq!(asks, [(2, 1), (2, 2), (2, 1)]);
    }

    #[test]
    fn finds_asks_across_split_writes() {
        crate::history::begin();
        crate::history::agent_started(1, 1, None);
        let mut bytes = frame(Body::ShutdownExecutor(ShutdownExecutor {
            reason: "x".into(),
        }));
        bytes.extend(frame(Body::ReconnectExecutor(Default::default())));
        bytes.extend(frame(Body::ShutdownExecutor(ShutdownExecutor::default())));
        begin();
        connected(49_200, Some(7));
        let mut watch = Watch::new(1, 49_200);
        for chunk in bytes.chunks(3) {
            watch.wrote(chunk);
        }
        let history = crate::history::take();
        assert_eq!(history.shutdown_asks.len(), 2);
        assert!(history
            .shutdown_asks
            .iter()
            .all(|a| a.pid == 7 && a.agent == 1 && a.answering.is_none()));
    }

    #[test]
    fn an_ask_written_first_after_a_registration_answers_it() {
        use revenant::proto::{ExecutorRegistered, RegisterExecutor, ReregisterExecutor};
        crate::history::begin();
        crate::history::agent_started(1, 1, None);
        begin();
        connected(49_201, Some(8));
        let mut watch = Watch::new(1, 49_201);
        let shutdown = || {
            frame(Body::ShutdownExecutor(ShutdownExecutor {
                reason: "refused".into(),
            }))
        };
        // A registration, then the agent's refusal: an answer.
        watch.delivered(&frame(Body::RegisterExecutor(RegisterExecutor::default())));
        watch.wrote(&shutdown());
        // Nothing delivered since: an ask that answers nothing.
        watch.wrote(&shutdown());
        // A re-registration answered by an acknowledgement, then an ask: not an answer.
        watch.delivered(&frame(Body::ReregisterExecutor(
            ReregisterExecutor::default(),
        )));
        watch.wrote(&frame(Body::ExecutorRegistered(
            ExecutorRegistered::default(),
        )));
        watch.wrote(&shutdown());
        let answering: Vec<bool> = crate::history::take()
            .shutdown_asks
            .iter()
            .map(|a| a.answering.is_some())
            .collect();
        assert_eq!(answering, [true, false, false]);
    }
}
