//! The task status update manager (docs/stream-rules.md), as a plain state machine: it
//! is handed `now` and says what to send; the agent does the IO. The agent's side of the
//! rule "checkpoint before telling anyone" is the call order:
//!
//! 1. [`StatusUpdateManager::classify`] says whether an update is new or a duplicate;
//! 2. for a new one the agent appends the UPDATE record (synced), then calls
//!    [`StatusUpdateManager::accept`], and only then acknowledges the executor;
//! 3. for an acknowledgement, [`StatusUpdateManager::check_ack`] validates it, the agent
//!    appends the ACK record, then calls [`StatusUpdateManager::acknowledged`].
//!
//! Under group commit ([`crate::agent::AgentConfig::status_update_batch`]) "synced"
//! means synced at the end of the agent's batch, and every message the batch sends is held
//! until then: the order above holds for what anyone outside the agent can see.
//!
//! Invariants: one update in flight per stream (the head of its queue); a stream whose
//! terminal update was acknowledged is closed; a stream that holds a terminal update takes
//! no later update of its task (docs/stream-rules.md S1); retries back off from
//! [`RETRY_INTERVAL_MIN`] doubling to [`RETRY_INTERVAL_MAX`], with no limit on count.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crate::checkpoint::recover::TaskState as RecoveredTask;
use crate::ids::{FrameworkId, TaskId, Uuid};
use crate::proto::StatusUpdate;

pub use crate::domain::intervals::{RETRY_INTERVAL_MAX, RETRY_INTERVAL_MIN};

pub use crate::domain::task_state::is_terminal;

/// A set of uuids, as a sorted vector sized to fit (docs/recovery-latency.md P72): a
/// stream holds a handful, and an agent holds a stream for every live task (a `BTreeSet` node costs 200 bytes even for
/// one uuid; 10,000 recovered tasks held 4 MB of them).
#[derive(Clone, Debug, Default)]
struct UuidSet(Vec<Uuid>);

impl UuidSet {
    fn contains(&self, uuid: &Uuid) -> bool {
        self.0.binary_search(uuid).is_ok()
    }

    /// Inserts `uuid`; false if it was there.
    fn insert(&mut self, uuid: Uuid) -> bool {
        match self.0.binary_search(&uuid) {
            Ok(_) => false,
            Err(index) => {
                if self.0.len() == self.0.capacity() {
                    // Double, but from one: no room for four before the first is in.
                    self.0.reserve_exact(self.0.len().max(1));
                }
                self.0.insert(index, uuid);
                true
            }
        }
    }
}

/// Appends `update` to `queue`, allocating room for exactly one when the queue has none
/// (a `VecDeque` of these would otherwise start with room for four, about 1 KB, for the
/// one update most streams hold).
fn push_update(queue: &mut VecDeque<StatusUpdate>, update: StatusUpdate) {
    if queue.capacity() == 0 {
        queue.reserve_exact(1);
    }
    queue.push_back(update);
}

/// The stream of one task's updates.
#[derive(Clone, Debug, Default)]
pub struct Stream {
    pending: VecDeque<StatusUpdate>,
    received: UuidSet,
    acknowledged: UuidSet,
    terminated: bool,
    /// A terminal update was received (acknowledged or not): later updates of the task
    /// are refused (docs/stream-rules.md S1).
    holds_terminal: bool,
    retry_at: Option<Instant>,
    retry_interval: Duration,
}

impl Stream {
    /// Updates not yet acknowledged, head first.
    pub fn pending(&self) -> impl Iterator<Item = &StatusUpdate> {
        self.pending.iter()
    }
    /// Whether the terminal update was acknowledged.
    pub fn terminated(&self) -> bool {
        self.terminated
    }
    /// Whether the stream received a terminal update (acknowledged or not).
    pub fn holds_terminal(&self) -> bool {
        self.holds_terminal
    }
}

/// Whether a status update carries a terminal state.
fn carries_terminal(update: &StatusUpdate) -> bool {
    update
        .status
        .as_ref()
        .is_some_and(|s| is_terminal(s.state()))
}

/// What [`StatusUpdateManager::classify`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Classified {
    /// Seen before (received or acknowledged): re-acknowledge the executor, write nothing.
    Duplicate,
    /// New: checkpoint it, then [`StatusUpdateManager::accept`] it.
    New,
    /// New, but the task's stream already holds a terminal update: refused, neither
    /// checkpointed nor forwarded; the executor is still acknowledged so that it stops
    /// resending it (docs/stream-rules.md S1).
    AfterTerminal,
}

/// Why an update or acknowledgement was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The update has no 16-byte uuid.
    #[error("status update without a uuid")]
    MissingUuid,
    /// An acknowledgement for a task with no stream.
    #[error("acknowledgement for unknown task {0}")]
    UnknownStream(TaskId),
    /// An acknowledgement while nothing is pending.
    #[error("unexpected acknowledgement {uuid} for task {task}: nothing pending")]
    NothingPending {
        /// The task.
        task: TaskId,
        /// The uuid acknowledged.
        uuid: Uuid,
    },
    /// An acknowledgement of an update already acknowledged.
    #[error("duplicate acknowledgement {uuid} for task {task}: already acknowledged")]
    Duplicate {
        /// The task.
        task: TaskId,
        /// The uuid acknowledged.
        uuid: Uuid,
    },
    /// An acknowledgement of something other than the update in flight.
    #[error("unexpected acknowledgement {uuid} for task {task}: not the update in flight")]
    NotHead {
        /// The task.
        task: TaskId,
        /// The uuid acknowledged.
        uuid: Uuid,
    },
}

impl StreamError {
    /// Why an acknowledgement was refused, in a word or two (for logs and traces,
    /// without the uuid).
    pub fn reason(&self) -> &'static str {
        match self {
            StreamError::MissingUuid => "no uuid",
            StreamError::UnknownStream(_) => "unknown task",
            StreamError::NothingPending { .. } => "nothing in flight",
            StreamError::Duplicate { .. } => "duplicate",
            StreamError::NotHead { .. } => "unexpected",
        }
    }
}

/// The streams of every task, keyed by framework and task.
#[derive(Debug, Default)]
pub struct StatusUpdateManager {
    streams: BTreeMap<(FrameworkId, TaskId), Stream>,
    paused: bool,
}

impl StatusUpdateManager {
    /// A paused manager (the agent pauses until it is registered).
    pub fn new() -> Self {
        Self {
            streams: BTreeMap::new(),
            paused: true,
        }
    }

    /// Every stream.
    pub fn streams(&self) -> &BTreeMap<(FrameworkId, TaskId), Stream> {
        &self.streams
    }

    /// Number of updates not yet acknowledged.
    pub fn pending_count(&self) -> usize {
        self.streams.values().map(|s| s.pending.len()).sum()
    }

    /// Rebuilds a stream from a recovered task: replays its records in file order.
    /// Returns the stream's head if it has one (to forward on resume).
    pub fn recover(&mut self, framework: &FrameworkId, task: &RecoveredTask) {
        if task.updates.is_empty() {
            return;
        }
        let mut stream = Stream::default();
        for update in &task.updates {
            let Some(uuid) = Uuid::from_bytes(&update.uuid) else {
                continue;
            };
            if !stream.received.insert(uuid) {
                continue;
            }
            if stream.holds_terminal {
                // Written by an agent that accepted updates after the terminal one
                // (before docs/stream-rules.md S1): never forwarded.
                continue;
            }
            if carries_terminal(update) {
                stream.holds_terminal = true;
            }
            if task.acks.contains(&uuid) {
                stream.acknowledged.insert(uuid);
                if update
                    .status
                    .as_ref()
                    .is_some_and(|s| is_terminal(s.state()))
                {
                    stream.terminated = true;
                }
            } else {
                push_update(&mut stream.pending, update.clone());
            }
        }
        if stream.terminated {
            // The terminal update was acknowledged: the stream is done.
            return;
        }
        self.streams
            .insert((framework.clone(), task.id.clone()), stream);
    }

    /// Says whether `update` is new.
    pub fn classify(
        &self,
        framework: &FrameworkId,
        update: &StatusUpdate,
    ) -> Result<Classified, StreamError> {
        let uuid = Uuid::from_bytes(&update.uuid).ok_or(StreamError::MissingUuid)?;
        let task = TaskId::new(
            update
                .status
                .as_ref()
                .map(|s| s.task_id.clone())
                .unwrap_or_default(),
        );
        match self.streams.get(&(framework.clone(), task)) {
            Some(stream)
                if stream.received.contains(&uuid) || stream.acknowledged.contains(&uuid) =>
            {
                Ok(Classified::Duplicate)
            }
            Some(stream) if stream.holds_terminal => Ok(Classified::AfterTerminal),
            _ => Ok(Classified::New),
        }
    }

    /// Records a new update that has been checkpointed. Returns it if it should be
    /// forwarded now (it is the head and the manager is not paused).
    pub fn accept(
        &mut self,
        framework: &FrameworkId,
        update: StatusUpdate,
        now: Instant,
    ) -> Option<StatusUpdate> {
        let uuid = Uuid::from_bytes(&update.uuid).expect("classify checked the uuid");
        let task = TaskId::new(
            update
                .status
                .as_ref()
                .map(|s| s.task_id.clone())
                .unwrap_or_default(),
        );
        let stream = self.streams.entry((framework.clone(), task)).or_default();
        stream.received.insert(uuid);
        if carries_terminal(&update) {
            stream.holds_terminal = true;
        }
        push_update(&mut stream.pending, update);
        if stream.pending.len() == 1 && !self.paused {
            stream.retry_interval = RETRY_INTERVAL_MIN;
            stream.retry_at = Some(now + RETRY_INTERVAL_MIN);
            return stream.pending.front().cloned();
        }
        None
    }

    /// Validates an acknowledgement before its ACK record is written.
    pub fn check_ack(
        &self,
        framework: &FrameworkId,
        task: &TaskId,
        uuid: Uuid,
    ) -> Result<(), StreamError> {
        let stream = self
            .streams
            .get(&(framework.clone(), task.clone()))
            .ok_or_else(|| StreamError::UnknownStream(task.clone()))?;
        if stream.acknowledged.contains(&uuid) {
            crate::coverage::point!("agent_duplicate_ack_ignored");
            return Err(StreamError::Duplicate {
                task: task.clone(),
                uuid,
            });
        }
        let head = stream.pending.front().ok_or(StreamError::NothingPending {
            task: task.clone(),
            uuid,
        })?;
        if Uuid::from_bytes(&head.uuid) != Some(uuid) {
            crate::coverage::point!("agent_unexpected_ack_ignored");
            return Err(StreamError::NotHead {
                task: task.clone(),
                uuid,
            });
        }
        Ok(())
    }

    /// Applies a checkpointed acknowledgement. Returns the next update to forward (if
    /// any) and whether the stream ended (its terminal update was acknowledged).
    pub fn acknowledged(
        &mut self,
        framework: &FrameworkId,
        task: &TaskId,
        uuid: Uuid,
        now: Instant,
    ) -> (Option<StatusUpdate>, bool) {
        let key = (framework.clone(), task.clone());
        let stream = self
            .streams
            .get_mut(&key)
            .expect("check_ack found the stream");
        let head = stream.pending.pop_front().expect("check_ack found a head");
        debug_assert_eq!(Uuid::from_bytes(&head.uuid), Some(uuid));
        stream.acknowledged.insert(uuid);
        if head.status.as_ref().is_some_and(|s| is_terminal(s.state())) {
            stream.terminated = true;
            // Anything queued behind a terminal update is dropped (docs/task-lifecycle.md L9).
            self.streams.remove(&key);
            return (None, true);
        }
        stream.retry_at = None;
        match stream.pending.front() {
            Some(next) if !self.paused => {
                stream.retry_interval = RETRY_INTERVAL_MIN;
                stream.retry_at = Some(now + RETRY_INTERVAL_MIN);
                (Some(next.clone()), false)
            }
            _ => (None, false),
        }
    }

    /// Stops forwarding (the agent lost its master).
    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// Resumes forwarding: every stream's head is sent again.
    pub fn resume(&mut self, now: Instant) -> Vec<StatusUpdate> {
        self.paused = false;
        let mut out = Vec::new();
        for stream in self.streams.values_mut() {
            if let Some(head) = stream.pending.front() {
                stream.retry_interval = RETRY_INTERVAL_MIN;
                stream.retry_at = Some(now + RETRY_INTERVAL_MIN);
                out.push(head.clone());
            }
        }
        out
    }

    /// Heads whose retry time has come; each is re-armed with a doubled interval.
    pub fn due_retries(&mut self, now: Instant) -> Vec<StatusUpdate> {
        if self.paused {
            return Vec::new();
        }
        let mut out = Vec::new();
        for stream in self.streams.values_mut() {
            match (stream.retry_at, stream.pending.front()) {
                (Some(at), Some(head)) if at <= now => {
                    stream.retry_interval = (stream.retry_interval * 2).min(RETRY_INTERVAL_MAX);
                    stream.retry_at = Some(now + stream.retry_interval);
                    out.push(head.clone());
                }
                _ => {}
            }
        }
        out
    }

    /// The earliest retry time, for the agent's timer.
    pub fn next_retry(&self) -> Option<Instant> {
        self.streams.values().filter_map(|s| s.retry_at).min()
    }

    /// Drops every stream of a framework (the framework was removed).
    pub fn remove_framework(&mut self, framework: &FrameworkId) {
        self.streams.retain(|(f, _), _| f != framework);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{TaskState, TaskStatus};

    fn update(task: &str, state: TaskState, n: u8) -> StatusUpdate {
        StatusUpdate {
            framework_id: "f".into(),
            uuid: vec![n; 16],
            status: Some(TaskStatus {
                task_id: task.into(),
                state: state as i32,
                uuid: vec![n; 16],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn start() -> Instant {
        // Any fixed point will do: the manager only compares instants it was handed.
        #[allow(clippy::disallowed_methods)]
        Instant::from_std(std::time::Instant::now())
    }

    /// docs/recovery-latency.md P72: room for one uuid when a stream holds one, then
    /// doubling; a uuid already held takes no room.
    #[test]
    fn a_stream_uuid_set_grows_from_room_for_one() {
        let uuid = |n: u8| Uuid::from_bytes(&[n; 16]).expect("16 bytes");
        let mut set = UuidSet::default();
        let mut room = Vec::new();
        for n in 0..5 {
            assert!(set.insert(uuid(n)));
            room.push(set.0.capacity());
        }
        assert_eq!(room, [1, 2, 4, 4, 8]);
        assert!(!set.insert(uuid(0)));
        assert_eq!(set.0.capacity(), 8);
        assert!((0..5).all(|n| set.contains(&uuid(n))));
    }

    /// docs/recovery-latency.md P72: a stream's queue of pending updates starts with room
    /// for the one update most streams hold, not a `VecDeque`'s first four.
    #[test]
    fn a_stream_queue_starts_with_room_for_one() {
        let mut queue = VecDeque::new();
        push_update(&mut queue, update("t", TaskState::TaskRunning, 1));
        assert_eq!(queue.capacity(), 1);
        push_update(&mut queue, update("t", TaskState::TaskFinished, 2));
        assert_eq!(queue.len(), 2);
        assert!(queue.capacity() >= 2);
    }

    #[test]
    fn one_in_flight_and_ack_sends_next() {
        let f = FrameworkId::new("f");
        let t = TaskId::new("t");
        let now = start();
        let mut m = StatusUpdateManager::new();
        assert!(m.resume(now).is_empty());
        let first = update("t", TaskState::TaskStarting, 1);
        let second = update("t", TaskState::TaskRunning, 2);
        assert_eq!(m.classify(&f, &first), Ok(Classified::New));
        assert_eq!(m.accept(&f, first.clone(), now), Some(first.clone()));
        assert_eq!(
            m.accept(&f, second.clone(), now),
            None,
            "only the head is in flight"
        );
        assert_eq!(m.classify(&f, &first), Ok(Classified::Duplicate));
        assert!(matches!(
            m.check_ack(&f, &t, Uuid([2; 16])),
            Err(StreamError::NotHead { .. })
        ));
        m.check_ack(&f, &t, Uuid([1; 16])).unwrap();
        assert_eq!(
            m.acknowledged(&f, &t, Uuid([1; 16]), now),
            (Some(second), false)
        );
        assert!(matches!(
            m.check_ack(&f, &t, Uuid([1; 16])),
            Err(StreamError::Duplicate { .. })
        ));
    }

    #[test]
    fn retries_back_off_to_the_maximum() {
        let f = FrameworkId::new("f");
        let mut now = start();
        let mut m = StatusUpdateManager::new();
        m.resume(now);
        m.accept(&f, update("t", TaskState::TaskRunning, 1), now);
        let mut intervals = Vec::new();
        let mut last = now;
        for _ in 0..9 {
            let next = m.next_retry().unwrap();
            intervals.push((next - last).as_secs());
            last = next;
            now = next;
            assert_eq!(m.due_retries(now).len(), 1);
        }
        assert_eq!(intervals, vec![10, 20, 40, 80, 160, 320, 600, 600, 600]);
    }

    #[test]
    fn paused_manager_forwards_nothing_until_resumed() {
        let f = FrameworkId::new("f");
        let now = start();
        let mut m = StatusUpdateManager::new();
        let first = update("t", TaskState::TaskRunning, 1);
        assert_eq!(m.accept(&f, first.clone(), now), None);
        assert!(m.due_retries(now + RETRY_INTERVAL_MAX).is_empty());
        assert_eq!(m.resume(now), vec![first]);
    }

    #[test]
    fn terminal_ack_closes_the_stream() {
        let f = FrameworkId::new("f");
        let t = TaskId::new("t");
        let now = start();
        let mut m = StatusUpdateManager::new();
        m.resume(now);
        m.accept(&f, update("t", TaskState::TaskFinished, 1), now);
        m.check_ack(&f, &t, Uuid([1; 16])).unwrap();
        assert_eq!(m.acknowledged(&f, &t, Uuid([1; 16]), now), (None, true));
        assert!(m.streams().is_empty());
        assert_eq!(m.pending_count(), 0);
    }

    #[test]
    fn updates_after_a_terminal_update_are_refused() {
        let f = FrameworkId::new("f");
        let t = TaskId::new("t");
        let now = start();
        let mut m = StatusUpdateManager::new();
        m.resume(now);
        let running = update("t", TaskState::TaskRunning, 1);
        let forged = update("t", TaskState::TaskFinished, 2);
        let real = update("t", TaskState::TaskFinished, 3);
        let starting = update("t", TaskState::TaskStarting, 4);
        m.accept(&f, running.clone(), now);
        m.accept(&f, forged.clone(), now);
        // Not acknowledged yet, and already a later update of the task is refused,
        // terminal or not; a duplicate of an accepted one is still a duplicate.
        assert_eq!(m.classify(&f, &real), Ok(Classified::AfterTerminal));
        assert_eq!(m.classify(&f, &starting), Ok(Classified::AfterTerminal));
        assert_eq!(m.classify(&f, &running), Ok(Classified::Duplicate));
        assert_eq!(m.classify(&f, &forged), Ok(Classified::Duplicate));
        m.check_ack(&f, &t, Uuid([1; 16])).unwrap();
        assert_eq!(
            m.acknowledged(&f, &t, Uuid([1; 16]), now),
            (Some(forged), false)
        );
        assert_eq!(m.classify(&f, &real), Ok(Classified::AfterTerminal));

        // Replayed from records an older agent wrote: what follows the terminal update
        // is never queued.
        let mut task = RecoveredTask {
            id: t.clone(),
            ..Default::default()
        };
        task.updates = vec![
            update("t", TaskState::TaskFinished, 2),
            update("t", TaskState::TaskFinished, 3),
        ];
        let mut m = StatusUpdateManager::new();
        m.recover(&f, &task);
        let resent = m.resume(now);
        assert_eq!(resent.len(), 1);
        assert_eq!(resent[0].uuid, vec![2; 16]);
        assert_eq!(m.pending_count(), 1);
        assert_eq!(m.classify(&f, &starting), Ok(Classified::AfterTerminal));
    }

    #[test]
    fn recovery_replays_records() {
        let f = FrameworkId::new("f");
        let mut task = RecoveredTask {
            id: TaskId::new("t"),
            ..Default::default()
        };
        task.updates = vec![
            update("t", TaskState::TaskStarting, 1),
            update("t", TaskState::TaskRunning, 2),
        ];
        task.acks.insert(Uuid([1; 16]));
        let mut m = StatusUpdateManager::new();
        m.recover(&f, &task);
        let now = start();
        let resent = m.resume(now);
        assert_eq!(resent.len(), 1);
        assert_eq!(resent[0].uuid, vec![2; 16]);

        task.updates.push(update("t", TaskState::TaskFinished, 3));
        task.acks.insert(Uuid([2; 16]));
        task.acks.insert(Uuid([3; 16]));
        let mut m = StatusUpdateManager::new();
        m.recover(&f, &task);
        assert!(
            m.streams().is_empty(),
            "an acknowledged terminal update ends the stream"
        );
    }
}
