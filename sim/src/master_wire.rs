//! What each master reads from and writes to the agents' connections, for the
//! `removed_agent` oracle (docs/recovery-rules.md R55): recorded in the simulated network
//! seam at the master's end of every connection from the agent machine, outside the code
//! under test. A frame counts as read when the seam hands it to the master's reader
//! (after the drop rules, a delayed frame when it is let through), as written when the
//! master's writer puts it on the connection (a partition may still lose it); the
//! connection's end is recorded when its reader is handed the end of the stream, when a
//! read or write fails, when the master shuts it down, or when the master lets go of it
//! (a closed connection, a master that stopped or crashed, the end of the run).
//!
//! Each master incarnation (each time a master process starts listening) is numbered,
//! so that what one incarnation knows is not taken for what the next one knows. Only
//! each frame's kind and the agent id it names are kept: written frames are read only as
//! far as their kind, and copied whole only when they name an agent (the master's
//! registration answers, a few bytes); read frames are decoded only when their kind
//! names an agent. Recording draws nothing and writes no trace line, so the run is the
//! same run.
//!
//! The connections from the rogue agent's host (docs/security.md SEC48) are recorded the
//! same way in a record of their own ([`take_both`]), for the `rogue_agent` oracle, so
//! that what the agent machine's connections recorded is unchanged.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use prost::Message as _;
use revenant::proto::{envelope::Body, Envelope};

use crate::run_record::{now, RunRecord};
use crate::shutdown_asks::{gather_head, Head};

/// One event at a master's end of a connection from the agent machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// When (simulated time).
    pub time: Duration,
    /// The connection (its index in [`Record::connections`]).
    pub connection: usize,
    /// What happened.
    pub what: What,
}

/// What happened at the master's end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum What {
    /// A frame was handed to the master's reader: its kind (`wire::kind`) and the agent
    /// id it names, if it names one.
    Read {
        /// `wire::kind` of the frame (`pong`, `status_update`, ...).
        kind: &'static str,
        /// The agent id the frame names (a re-registration's, a recovery notice's, an
        /// unregistration's, a status update's).
        agent: Option<String>,
    },
    /// The master wrote a frame: its kind and, for a registration answer, the agent id
    /// it gives.
    Wrote {
        /// `wire::kind` of the frame.
        kind: &'static str,
        /// The agent id of an `agent_registered` or `agent_reregistered`.
        agent: Option<String>,
    },
    /// The connection ended at the master's end.
    Closed,
}

/// One connection, at the master's end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// The master's host (`master1`, ...).
    pub master: String,
    /// The master's incarnation on that host (1, 2, ...): each start of a master process
    /// that listens is one.
    pub incarnation: u64,
}

/// What one run recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// The connections, in the order the masters accepted them.
    pub connections: Vec<Connection>,
    /// Every event, in the order it happened (one thread runs the whole simulation, so
    /// this order is the order of cause and effect).
    pub events: Vec<Event>,
    /// When the run ended (the simulated time at [`take`]).
    pub end: Duration,
}

#[derive(Default)]
struct State {
    record: Record,
    /// The rogue agent's connections (SEC48).
    rogue_agent: Record,
    /// Each master host's current incarnation.
    incarnations: BTreeMap<String, u64>,
}

thread_local! {
    static CELL: RefCell<State> = RefCell::new(State::default());
}

static RECORD: RunRecord<State> = RunRecord::new(&CELL);

/// Starts a run with nothing recorded.
pub fn begin() {
    RECORD.begin();
}

/// What was recorded since [`begin`]; forgets it.
pub fn take() -> Record {
    take_both().0
}

/// What was recorded since [`begin`] on the agent machine's connections and on the
/// rogue agent's (docs/security.md SEC48); forgets both.
pub fn take_both() -> (Record, Record) {
    let state = RECORD.take();
    let (mut record, mut rogue_agent) = (state.record, state.rogue_agent);
    record.end = now();
    rogue_agent.end = record.end;
    (record, rogue_agent)
}

/// A master process on `host` starts listening: a new incarnation.
pub fn master_listening(host: &str) {
    RECORD.with(|state| *state.incarnations.entry(host.to_owned()).or_insert(0) += 1);
}

fn push(connection: usize, rogue_agent: bool, what: What) {
    let time = now();
    RECORD.with(|state| {
        let record = if rogue_agent {
            &mut state.rogue_agent
        } else {
            &mut state.record
        };
        record.events.push(Event {
            time,
            connection,
            what,
        })
    });
}

/// The key bytes of `Envelope`'s fields the oracle reads (length-delimited, as varints):
/// the kind a frame's first one or two body bytes name.
fn kind_of(head: &[u8]) -> &'static str {
    match head {
        [0x0a, ..] => "register_agent",
        [0x12, ..] => "reregister_agent",
        [0x1a, ..] => "agent_registered",
        [0x22, ..] => "agent_reregistered",
        [0x3a, ..] => "status_update",
        [0x6a, ..] => "ping",
        [0x72, ..] => "pong",
        [0x9a, 0x01, ..] => "shutdown_agent",
        [0xa2, 0x01, ..] => "not_leader",
        [0xb2, 0x01, ..] => "unregister_agent",
        [0xe2, 0x01, ..] => "agent_recovering",
        _ => "other",
    }
}

/// The agent id a frame names, for the kinds that name one.
fn agent_named(body: &Body) -> Option<String> {
    let id = match body {
        Body::ReregisterAgent(m) => m.info.as_ref().map(|i| i.id.clone())?,
        Body::AgentRecovering(m) => m.agent_id.clone(),
        Body::UnregisterAgent(m) => m.agent_id.clone(),
        Body::StatusUpdate(m) => m.update.as_ref().map(|u| u.agent_id.clone())?,
        Body::AgentRegistered(m) => m.agent_id.clone(),
        Body::AgentReregistered(m) => m.agent_id.clone(),
        _ => return None,
    };
    (!id.is_empty()).then_some(id)
}

/// Whether a frame of `kind` names an agent (and is decoded for it).
fn names_an_agent(kind: &str) -> bool {
    matches!(
        kind,
        "reregister_agent"
            | "agent_recovering"
            | "unregister_agent"
            | "status_update"
            | "agent_registered"
            | "agent_reregistered"
    )
}

/// A master's end of a connection from the agent machine: records what it reads and
/// writes, and its end (also when it is dropped).
pub struct Watch {
    connection: usize,
    /// A connection from the rogue agent's host, recorded apart (SEC48).
    rogue_agent: bool,
    /// The current written frame's first bytes (length, then up to two body bytes).
    head: Vec<u8>,
    /// The current written frame's body, kept whole when it names an agent.
    body: Option<Vec<u8>>,
    /// Body bytes of the current written frame still to come.
    rest: usize,
    /// Not the wire protocol (an HTTP request): nothing more to record.
    off: bool,
    closed: bool,
}

impl Watch {
    /// The end of master `master` (its host) of a new connection from the agent machine.
    pub fn new(master: &str) -> Watch {
        Watch::from_host(master, false)
    }

    /// The end of master `master` of a new connection from the rogue agent's host
    /// (docs/security.md SEC48), recorded apart.
    pub fn from_rogue_agent(master: &str) -> Watch {
        Watch::from_host(master, true)
    }

    fn from_host(master: &str, rogue_agent: bool) -> Watch {
        let connection = RECORD.with(|state| {
            let incarnation = state.incarnations.get(master).copied().unwrap_or(0);
            let record = if rogue_agent {
                &mut state.rogue_agent
            } else {
                &mut state.record
            };
            record.connections.push(Connection {
                master: master.to_owned(),
                incarnation,
            });
            record.connections.len() - 1
        });
        Watch {
            connection,
            rogue_agent,
            head: Vec::with_capacity(6),
            body: None,
            rest: 0,
            off: false,
            closed: false,
        }
    }

    /// Whole frames handed to the master's reader, in order.
    pub fn delivered(&mut self, mut frames: &[u8]) {
        while frames.len() >= 4 && !self.closed {
            let length = u32::from_le_bytes([frames[0], frames[1], frames[2], frames[3]]) as usize;
            let end = (4 + length).min(frames.len());
            let body = &frames[4..end];
            let kind = kind_of(body);
            let agent = if names_an_agent(kind) {
                Envelope::decode(body)
                    .ok()
                    .and_then(|e| e.body)
                    .and_then(|b| agent_named(&b))
            } else {
                None
            };
            push(
                self.connection,
                self.rogue_agent,
                What::Read { kind, agent },
            );
            frames = &frames[end..];
        }
    }

    /// Bytes the master wrote on the connection.
    pub fn wrote(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.off && !self.closed {
            if self.rest > 0 {
                let n = self.rest.min(bytes.len());
                if let Some(body) = &mut self.body {
                    body.extend_from_slice(&bytes[..n]);
                }
                self.rest -= n;
                bytes = &bytes[n..];
                if self.rest == 0 {
                    self.finish_frame();
                }
                continue;
            }
            let (length, wanted) = match gather_head(&mut self.head, &mut bytes, true) {
                Head::More => return,
                Head::Off => {
                    self.off = true;
                    return;
                }
                Head::Whole { length, wanted } => (length, wanted),
            };
            if names_an_agent(kind_of(&self.head[4..])) {
                self.body = Some(self.head[4..].to_vec());
            }
            self.rest = length - (wanted - 4);
            if self.rest == 0 {
                self.finish_frame();
            }
        }
    }

    fn finish_frame(&mut self) {
        let kind = kind_of(&self.head[4..]);
        let agent = self
            .body
            .take()
            .and_then(|body| Envelope::decode(body.as_slice()).ok())
            .and_then(|e| e.body)
            .and_then(|b| agent_named(&b));
        push(
            self.connection,
            self.rogue_agent,
            What::Wrote { kind, agent },
        );
        self.head.clear();
    }

    /// The connection ended at the master's end (recorded once).
    pub fn closed(&mut self) {
        if !self.closed {
            self.closed = true;
            push(self.connection, self.rogue_agent, What::Closed);
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.closed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use revenant::proto::{AgentRegistered, Pong, ShutdownAgent, UnregisterAgent};

    fn frame(body: Body) -> Vec<u8> {
        revenant::wire::encode(body).expect("fits")
    }

    #[test]
    fn the_keys_name_the_kinds() {
        for body in [
            Body::Pong(Pong { sequence: 3 }),
            Body::ShutdownAgent(ShutdownAgent { reason: "x".into() }),
            Body::UnregisterAgent(UnregisterAgent {
                agent_id: "a".into(),
            }),
            Body::AgentRegistered(AgentRegistered {
                agent_id: "a".into(),
                ..Default::default()
            }),
            Body::NotLeader(Default::default()),
            Body::Ping(Default::default()),
            Body::AgentRecovering(Default::default()),
            Body::ReregisterAgent(Default::default()),
            Body::RegisterAgent(Default::default()),
            Body::StatusUpdate(Default::default()),
            Body::AgentReregistered(Default::default()),
        ] {
            let bytes = frame(body.clone());
            assert_eq!(kind_of(&bytes[4..]), revenant::wire::kind(&body));
        }
    }

    #[test]
    fn records_reads_writes_and_the_end_across_split_writes() {
        begin();
        master_listening("master1");
        let mut watch = Watch::new("master1");
        let mut written = frame(Body::AgentRegistered(AgentRegistered {
            agent_id: "agent-7".into(),
            ..Default::default()
        }));
        written.extend(frame(Body::ShutdownAgent(ShutdownAgent {
            reason: "removed".into(),
        })));
        for chunk in written.chunks(3) {
            watch.wrote(chunk);
        }
        let mut read = frame(Body::Pong(Pong { sequence: 1 }));
        read.extend(frame(Body::UnregisterAgent(UnregisterAgent {
            agent_id: "agent-7".into(),
        })));
        watch.delivered(&read);
        drop(watch);
        let record = take();
        assert_eq!(record.connections[0].incarnation, 1);
        let what: Vec<What> = record.events.into_iter().map(|e| e.what).collect();
        assert_eq!(
            what,
            [
                What::Wrote {
                    kind: "agent_registered",
                    agent: Some("agent-7".into())
                },
                What::Wrote {
                    kind: "shutdown_agent",
                    agent: None
                },
                What::Read {
                    kind: "pong",
                    agent: None
                },
                What::Read {
                    kind: "unregister_agent",
                    agent: Some("agent-7".into())
                },
                What::Closed,
            ]
        );
    }
}
