//! What an agent did next on a connection after an executor registration reached it, for
//! the `refusal` oracle (docs/security.md SEC45, SEC47): recorded in the simulated
//! network seam at the agent's end of every local connection (`crate::shutdown_asks`'s
//! watch), outside the code under test.
//!
//! A registration (`RegisterExecutor` or `ReregisterExecutor`, the first on its
//! connection) counts as reached when the seam hands it to the agent's reader (after the
//! drop rules; a frame a `delay_message` holds back, when it is let through), so a
//! registration held in the network is not taken for one the agent left unanswered. Its
//! answer is the first of: the first frame the agent's end writes after it (only its
//! `Envelope` field number is read), the agent shutting its side down (its writer ending,
//! as when the connection's last outbox is dropped), or the agent's end let go of (a
//! `close` aborts the connection's reader and writer, and an agent that dies or exits
//! lets go of all its connections). Each agent incarnation's end is recorded as the
//! moment its task is let go of ([`IncarnationEnd`]), so the oracle can tell a
//! connection the agent closed from one its death closed; and the first moment the
//! agent's end saw the other end gone (its reader at the end of the stream or failing, a
//! write failing), after which the agent may find nothing left to answer on. Recording
//! draws nothing and writes no trace line, so the run is the same run.

use std::cell::RefCell;
use std::time::Duration;

use crate::run_record::{now, RunRecord};

/// `Envelope`'s field number of `shutdown_executor`.
pub const SHUTDOWN_EXECUTOR: u32 = 18;
/// `Envelope`'s field number of `executor_registered` (the first frame of D55's welcome,
/// to a registration and to a re-registration alike).
pub const EXECUTOR_REGISTERED: u32 = 16;

/// One registration that reached an agent's end of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// When it reached the agent's end (simulated time).
    pub reached: Duration,
    /// The agent process (1, 2, ...).
    pub agent: u32,
    /// The agent incarnation whose connection it is.
    pub incarnation: u64,
    /// The connection's number in the run (`crate::history::connection_watched`).
    pub connection: u64,
    /// The executor process at the other end (it connected from that port); `None`: a
    /// process of the machine that is no executor the process table started (the rogue
    /// party's, `crate::rogue`).
    pub pid: Option<u32>,
    /// A `ReregisterExecutor` (else a `RegisterExecutor`).
    pub reregistration: bool,
    /// The framework, executor and run (container) ids it names.
    pub framework: String,
    /// See [`Registration::framework`].
    pub executor: String,
    /// See [`Registration::framework`].
    pub run: String,
    /// What the agent's end did next, and when; `None`: nothing before the run ended.
    pub answer: Option<(Duration, Answer)>,
    /// When the agent's end first saw the other end gone, if it did.
    pub peer_gone: Option<Duration>,
}

/// What an agent's end did next after a registration reached it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// It wrote a frame: the `Envelope` field number of its body.
    Wrote(u32),
    /// It shut its side down without writing first (its writer ended).
    ShutDown,
    /// Its end was let go of without a frame: closed by the agent, or by the agent's
    /// death or exit (which [`Record::incarnation_ends`] tells apart).
    LetGo,
}

/// What one run recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Every registration that reached an agent's end, in order.
    pub registrations: Vec<Registration>,
    /// When each agent incarnation's task was let go of: (time, agent, incarnation).
    pub incarnation_ends: Vec<(Duration, u32, u64)>,
    /// When the run ended (the simulated time at [`take`]).
    pub end: Duration,
}

impl Record {
    /// When incarnation `incarnation` of agent process `agent` ended, if it did.
    pub fn ended(&self, agent: u32, incarnation: u64) -> Option<Duration> {
        self.incarnation_ends
            .iter()
            .find(|(_, a, i)| (*a, *i) == (agent, incarnation))
            .map(|(time, _, _)| *time)
    }
}

thread_local! {
    static CELL: RefCell<Record> = RefCell::new(Record::default());
}

static RECORD: RunRecord<Record> = RunRecord::new(&CELL);

/// Starts a run with nothing recorded.
pub fn begin() {
    RECORD.begin();
}

/// What was recorded since [`begin`]; forgets it.
pub fn take() -> Record {
    let mut record = RECORD.take();
    record.end = now();
    record
}

/// The ids a registration names, and whether it is a re-registration.
pub struct Named {
    /// A `ReregisterExecutor`.
    pub reregistration: bool,
    /// Framework id.
    pub framework: String,
    /// Executor id.
    pub executor: String,
    /// Run (container) id.
    pub run: String,
}

/// A registration `named` reached the end of agent `agent`'s incarnation `incarnation`
/// of connection `connection`, from executor process `pid` (if one): its index, for
/// [`answered`] and [`peer_gone`].
pub fn reached(
    (agent, incarnation, connection): (u32, u64, u64),
    pid: Option<u32>,
    named: Named,
) -> usize {
    let reached = now();
    RECORD.with(|record| {
        record.registrations.push(Registration {
            reached,
            agent,
            incarnation,
            connection,
            pid,
            reregistration: named.reregistration,
            framework: named.framework,
            executor: named.executor,
            run: named.run,
            answer: None,
            peer_gone: None,
        });
        record.registrations.len() - 1
    })
}

/// The agent's end answered registration `index` with `answer` (the first answer counts).
pub fn answered(index: usize, answer: Answer) {
    let time = now();
    RECORD.with(|record| {
        if let Some(registration) = record.registrations.get_mut(index) {
            registration.answer.get_or_insert((time, answer));
        }
    });
}

/// The agent's end of registration `index`'s connection saw the other end gone (the
/// first time counts).
pub fn peer_gone(index: usize) {
    let time = now();
    RECORD.with(|record| {
        if let Some(registration) = record.registrations.get_mut(index) {
            registration.peer_gone.get_or_insert(time);
        }
    });
}

/// Held by an agent incarnation's task: records the incarnation's end when the task is
/// let go of (it returned, was aborted, or its machine lost power).
pub struct IncarnationEnd {
    agent: u32,
    incarnation: u64,
}

impl IncarnationEnd {
    /// For incarnation `incarnation` of agent process `agent`.
    pub fn new(agent: u32, incarnation: u64) -> IncarnationEnd {
        IncarnationEnd { agent, incarnation }
    }
}

impl Drop for IncarnationEnd {
    fn drop(&mut self) {
        let time = now();
        RECORD.with(|record| {
            record
                .incarnation_ends
                .push((time, self.agent, self.incarnation))
        });
    }
}

/// The `Envelope` field number a frame's first body bytes (its key, a varint) name, if
/// they are a length-delimited field's key.
pub fn field_of(head: &[u8]) -> Option<u32> {
    let (key, _) = match head {
        [b0, ..] if b0 & 0x80 == 0 => (u32::from(*b0), 1),
        [b0, b1, ..] if b1 & 0x80 == 0 => (u32::from(b0 & 0x7f) | (u32::from(*b1) << 7), 2),
        _ => return None,
    };
    (key & 7 == 2).then_some(key >> 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use revenant::proto::envelope::Body;

    #[test]
    fn field_numbers_of_written_frames() {
        for (body, field) in [
            (
                Body::ShutdownExecutor(Default::default()),
                SHUTDOWN_EXECUTOR,
            ),
            (
                Body::ExecutorRegistered(Default::default()),
                EXECUTOR_REGISTERED,
            ),
            (Body::RunTask(Default::default()), 5),
            (Body::ReconnectExecutor(Default::default()), 21),
            (Body::Acknowledgement(Default::default()), 8),
        ] {
            let bytes = revenant::wire::encode(body).expect("fits");
            assert_eq!(field_of(&bytes[4..]), Some(field));
        }
        assert_eq!(field_of(&[]), None);
        assert_eq!(field_of(&[0x80]), None);
    }
}
