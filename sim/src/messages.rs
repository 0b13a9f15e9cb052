//! The message log a timeline draws its arrows from (docs/failing-runs.md F5): every
//! wire frame a simulated connection carries, recorded when it is written and when it
//! is delivered, with the process at each end.
//!
//! It is off unless a timeline asked for it ([`start`]), and it sits in the simulated
//! network seam, outside the code under test: recording reads bytes that pass anyway and
//! writes only to a thread-local log, so a run with it is the same run (same trace
//! bytes) as one without. A run is single-threaded, so the log is in the run's order.

use std::cell::RefCell;
use std::time::Duration;

use prost::Message as _;
use revenant::proto::{envelope::Body, Envelope};

/// One message: written by `from`, delivered to `to` (lane keys: a host, an agent
/// process's trace host, or `executor <id>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// When it was written (`None`: never written by its sender, a forged copy).
    pub sent: Option<Duration>,
    /// When it was delivered (`None`: lost, dropped by a fault or with its connection).
    pub received: Option<Duration>,
    /// The sender's lane.
    pub from: String,
    /// The receiver's lane (for a lost message, the other end's host).
    pub to: String,
    /// `wire::kind` of the message.
    pub kind: &'static str,
    /// The task it is about and, for a status update, the state (`task-003 TASK_RUNNING`).
    pub about: String,
    /// A second delivery of one write (a duplicating fault).
    pub duplicate: bool,
}

#[derive(Default)]
struct Log {
    sends: Vec<End>,
    receives: Vec<End>,
}

/// One end's record of a frame.
#[derive(Clone)]
struct End {
    time: Duration,
    /// This end's lane.
    lane: String,
    /// The other end's host (as the connection names it).
    peer_host: String,
    /// This end's host.
    local_host: String,
    hash: u64,
    kind: &'static str,
    about: String,
}

thread_local! {
    static LOG: RefCell<Option<Log>> = const { RefCell::new(None) };
}

/// Starts recording on this thread (forgetting anything recorded before).
pub fn start() {
    LOG.with(|log| *log.borrow_mut() = Some(Log::default()));
}

/// Whether recording is on.
pub fn recording() -> bool {
    LOG.with(|log| log.borrow().is_some())
}

/// Stops recording and pairs each delivery with the write it came from: the earliest
/// write not yet paired of the same bytes between the same two hosts. A write left
/// unpaired was lost; a delivery with no write is a copy a fault made (a duplicate
/// pairs with the write it copies, a forged copy with none).
pub fn finish() -> Vec<Message> {
    let Some(log) = LOG.with(|log| log.borrow_mut().take()) else {
        return Vec::new();
    };
    let mut paired = vec![false; log.sends.len()];
    let mut out = Vec::new();
    for receive in &log.receives {
        let matches = |send: &End| {
            send.hash == receive.hash
                && send.local_host == receive.peer_host
                && send.peer_host == receive.local_host
                && send.time <= receive.time
        };
        let open = log
            .sends
            .iter()
            .enumerate()
            .find(|(index, send)| !paired[*index] && matches(send));
        let (sent, from, duplicate) = match open {
            Some((index, send)) => {
                paired[index] = true;
                (Some(send.time), send.lane.clone(), false)
            }
            None => match log.sends.iter().rev().find(|send| matches(send)) {
                // A duplicate: the copy of an earlier write.
                Some(send) => (Some(send.time), send.lane.clone(), true),
                None => (None, receive.peer_host.clone(), false),
            },
        };
        out.push(Message {
            sent,
            received: Some(receive.time),
            from,
            to: receive.lane.clone(),
            kind: receive.kind,
            about: receive.about.clone(),
            duplicate,
        });
    }
    for (index, send) in log.sends.iter().enumerate() {
        if !paired[index] {
            out.push(Message {
                sent: Some(send.time),
                received: None,
                from: send.lane.clone(),
                to: send.peer_host.clone(),
                kind: send.kind,
                about: send.about.clone(),
                duplicate: false,
            });
        }
    }
    out.sort_by_key(|m| (m.sent.or(m.received), m.received));
    out
}

fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_else(|| crate::trace::DRIVER_TIME.with(|t| t.get()))
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// What a message is about, for its label.
fn about(body: &Body) -> String {
    let (task, state) = task_and_state(body);
    match (task, state) {
        (Some(task), Some(state)) => format!("{task} {state}"),
        (Some(task), None) => task,
        _ => String::new(),
    }
}

/// One end of a connection, recording what it writes and what it delivers. Made by
/// [`Tap::new`] only while recording.
pub struct Tap {
    local_host: String,
    peer_host: String,
    /// This end's lane: the process that opened or accepted the connection, or the
    /// executor once its registration names it.
    lane: String,
    /// This end is an executor's (it connected to the agent on its own machine).
    executor_end: bool,
    /// Written bytes not yet framed.
    out_raw: Vec<u8>,
    /// Not the wire protocol (an HTTP request): nothing to record.
    passthrough: bool,
}

impl Tap {
    /// A tap for a connection between `local` and `peer` (hosts), opened by this end
    /// (`connected`) or accepted, by `process` if the seam knows it (else the host span
    /// the code runs in, else the host); `None` when not recording.
    pub fn new(local: &str, peer: &str, connected: bool, process: Option<&str>) -> Option<Tap> {
        if !recording() {
            return None;
        }
        let process = process
            .map(str::to_owned)
            .or_else(crate::trace::current_host)
            .unwrap_or_else(|| local.to_owned());
        Some(Tap {
            local_host: local.to_owned(),
            peer_host: peer.to_owned(),
            // A connection within one machine is an executor's to its agent: the end
            // that connected is the executor's.
            executor_end: connected && local == peer,
            lane: process,
            out_raw: Vec::new(),
            passthrough: false,
        })
    }

    fn record(&mut self, frame: &[u8], sent: bool) {
        let Ok(Envelope { body: Some(body) }) = Envelope::decode(&frame[4..]) else {
            return;
        };
        if let Body::RegisterExecutor(m) = &body {
            self.learn(sent, &m.executor_id);
        }
        if let Body::ReregisterExecutor(m) = &body {
            self.learn(sent, &m.executor_id);
        }
        let end = End {
            time: now(),
            lane: self.lane.clone(),
            peer_host: self.peer_host.clone(),
            local_host: self.local_host.clone(),
            hash: fnv(frame),
            kind: revenant::wire::kind(&body),
            about: about(&body),
        };
        LOG.with(|log| {
            if let Some(log) = log.borrow_mut().as_mut() {
                if sent {
                    log.sends.push(end);
                } else {
                    log.receives.push(end);
                }
            }
        });
    }

    /// An executor's registration names it: its end's lane becomes the executor's.
    fn learn(&mut self, sent: bool, executor: &str) {
        if sent && self.executor_end {
            self.lane = format!("executor {executor}");
        }
    }

    /// Bytes this end wrote.
    pub fn sent(&mut self, bytes: &[u8]) {
        if self.passthrough {
            return;
        }
        self.out_raw.extend_from_slice(bytes);
        while self.out_raw.len() >= 4 {
            let head = &self.out_raw[..4];
            let length = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
            if head.iter().all(|b| b.is_ascii_uppercase() || *b == b' ')
                || length > revenant::wire::FRAME_BYTES_MAX
            {
                self.passthrough = true;
                self.out_raw.clear();
                return;
            }
            if self.out_raw.len() < 4 + length {
                return;
            }
            let frame: Vec<u8> = self.out_raw.drain(..4 + length).collect();
            self.record(&frame, true);
        }
    }

    /// A whole frame delivered to this end's reader.
    pub fn received(&mut self, frame: &[u8]) {
        self.record(frame, false);
    }
}

/// What a rule can match in a message: its task and, for status updates, its state.
pub(crate) fn task_and_state(body: &Body) -> (Option<String>, Option<String>) {
    match body {
        Body::RunTask(m) => (m.task.as_ref().map(|t| t.task_id.clone()), None),
        Body::KillTask(m) => (Some(m.task_id.clone()), None),
        Body::Acknowledgement(m) => (Some(m.task_id.clone()), None),
        Body::SubmitTask(m) => (m.task.as_ref().map(|t| t.task_id.clone()), None),
        Body::StatusUpdate(m) => {
            let status = m.update.as_ref().and_then(|u| u.status.as_ref());
            (
                status.map(|s| s.task_id.clone()),
                status.map(|s| s.state().as_str_name().to_owned()),
            )
        }
        _ => (None, None),
    }
}
