//! The run's trace: every `tracing` event of the real code (INFO and above, from the
//! `revenant` crates), stamped with simulated time and the host it happened on. Ids in
//! events come from seeded randomness, so the same seed gives the same bytes.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// One recorded event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// Simulated time.
    pub time: Duration,
    /// The host (turmoil node) the event happened on; `sim` for the driver.
    pub host: String,
    /// The role: the last module of the event's target (`agent`, `master`, ...).
    pub role: String,
    /// The message.
    pub message: String,
    /// The other fields, in the order given.
    pub fields: Vec<(String, String)>,
    /// The typed decision the event records, parsed once from its role and message (not
    /// part of the printed line).
    pub decision: Option<crate::decision::Decision>,
}

impl TraceEvent {
    /// The value of a field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the event records `decision`.
    pub fn is(&self, decision: crate::decision::Decision) -> bool {
        self.decision == Some(decision)
    }

    /// The event as one line.
    pub fn line(&self) -> String {
        let mut line = format!(
            "{:>4}.{:03}s {} {}: {}",
            self.time.as_secs(),
            self.time.subsec_millis(),
            self.host,
            self.role,
            self.message
        );
        for (key, value) in &self.fields {
            let _ = write!(line, " {key}={value}");
        }
        line
    }
}

/// The span the simulator wraps each host's software in, so that the trace knows which
/// host an event came from. A root span: one opened inside another host's span (agent
/// `agent1/2` started by the `agent1` machine's supervisor) names its own host.
pub fn host_span(name: &str) -> tracing::Span {
    tracing::info_span!(target: "revenant_sim", parent: None, "host", name = name)
}

/// The host whose span the current code runs in (see [`host_span`]), if any: the
/// process a connection belongs to, for the timeline's message log.
pub fn current_host() -> Option<String> {
    let id = tracing::Span::current().id()?;
    tracing::dispatcher::get_default(|dispatch| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let span = registry.span(&id)?;
        span.scope()
            .find_map(|span| span.extensions().get::<NodeName>().map(|n| n.0.clone()))
    })
}

/// The shared buffer a [`Recorder`] writes to.
pub type TraceBuffer = Arc<Mutex<Vec<TraceEvent>>>;

/// A layer that records events into a buffer.
pub struct Recorder {
    buffer: TraceBuffer,
}

impl Recorder {
    /// A recorder writing into `buffer`.
    pub fn new(buffer: TraceBuffer) -> Recorder {
        Recorder { buffer }
    }
}

struct NodeName(String);

struct Fields {
    message: String,
    fields: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        self.push(field, text);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value.to_owned());
    }
}

impl Fields {
    fn push(&mut self, field: &Field, text: String) {
        if field.name() == "message" {
            self.message = text;
        } else {
            self.fields.push((field.name().to_owned(), text));
        }
    }
}

impl<S> Layer<S> for Recorder
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(
        &self,
        metadata: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        // turmoil opens a span per host per step and traces every step: ignoring its
        // callsites makes them no-ops, which is most of what a trace would cost.
        if metadata.target().starts_with("turmoil") {
            tracing::subscriber::Interest::never()
        } else {
            tracing::subscriber::Interest::always()
        }
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        // The simulator wraps each host's software in a `host` span (see `host_span`).
        if attrs.metadata().name() != "host" {
            return;
        }
        let mut fields = Fields {
            message: String::new(),
            fields: Vec::new(),
        };
        attrs.record(&mut fields);
        if let (Some(span), Some((_, name))) = (
            ctx.span(id),
            fields.fields.into_iter().find(|(k, _)| k == "name"),
        ) {
            span.extensions_mut().insert(NodeName(name));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        if *metadata.level() > Level::INFO {
            return;
        }
        let target = metadata.target();
        if !(target.starts_with("revenant") || target.starts_with("revenant_sim")) {
            return;
        }
        let mut fields = Fields {
            message: String::new(),
            fields: Vec::new(),
        };
        event.record(&mut fields);
        let host = ctx
            .event_scope(event)
            .and_then(|scope| {
                scope
                    .from_root()
                    .find_map(|span| span.extensions().get::<NodeName>().map(|n| n.0.clone()))
            })
            .unwrap_or_else(|| "sim".to_owned());
        let role = target.rsplit("::").next().unwrap_or(target).to_owned();
        // The master's rooms (src/master/*.rs) all speak as the master.
        let role = if target.starts_with("revenant::master::") {
            "master".to_owned()
        } else {
            role
        };
        let role = match role.as_str() {
            "status_updates" | "registration" => "agent".to_owned(),
            "revenant_sim" | "cluster" | "seams" => "sim".to_owned(),
            other => other.to_owned(),
        };
        let time = turmoil::sim_elapsed().unwrap_or_else(|| DRIVER_TIME.with(|t| t.get()));
        let decision = crate::decision::Decision::parse(&role, &fields.message);
        self.buffer.lock().expect("trace buffer").push(TraceEvent {
            time,
            host,
            role,
            message: fields.message,
            fields: fields.fields,
            decision,
        });
    }
}

pub use crate::clock::DRIVER_TIME;

/// The FNV-1a hash of the trace's lines: part of a run's result.
pub fn hash(events: &[TraceEvent]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for event in events {
        for byte in event.line().bytes().chain(std::iter::once(b'\n')) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// Messages of the recovery trace: the decisions a reviewer reads, not every packet.
const DECISIONS: &[&str] = &[
    "fault injected",
    "message dropped",
    "message duplicated",
    "forged copy of a message delivered first",
    "acknowledgement ignored",
    "agent process starting",
    "agent process ended",
    "agent machine boots",
    "master restarts",
    "partition healed",
    "recovering state",
    "no checkpointed state: first start",
    "recovery warning",
    "errors counted during non-strict recovery",
    "machine rebooted",
    "recovered agent",
    "agent resources changed compatibly",
    "recovered checkpointed resources",
    "checkpointed resources",
    "recovered task",
    "skipping",
    "executor alive: waiting for it to re-register",
    "executor process is gone",
    "executor was never launched",
    "destroying an orphan executor process",
    "executor process hangs before registering",
    "executor run completed before the restart",
    "waiting for executors to re-register",
    "executor re-registered",
    "executor that never registered before the restart registered",
    "asking executors that have not re-registered to reconnect",
    "first frame on an executor connection is not a registration",
    "agent asked to reconnect",
    "duplicate status update",
    "executor did not re-register in time: destroying it",
    "executor did not register in time: destroying it",
    "unregistered executor has no task left: destroying it",
    "task was launched during the agent restart",
    "recovery complete",
    "recover=cleanup",
    "registering with master",
    "registered with master",
    "re-registering with master",
    "re-registered with master",
    "master knows a task the agent does not",
    "status update accepted",
    "status update after the task's terminal update",
    "resending unacknowledged status update",
    "executor run completed",
    "executor process exited",
    "garbage collected",
    "master asked the agent to shut down",
    "agent registered",
    "agent retried its registration",
    "tasks placed on the agent before it knew its id",
    "agent re-registered",
    "elected leading master: waiting",
    "framework failed over",
    "scheduler fails over",
    "asked to leave the cluster",
    "agent unregistered",
    "the master did not answer the unregistration",
    "no longer the leading master",
    "a new agent registered at the address of a known one",
    "task lost with its agent",
    "agent did not re-register within the timeout",
    "agent stopped answering pings",
    "removed agent tried to re-register",
    "agent refused by the ACLs",
    "stale registration ignored",
    "stale re-registration ignored",
    "stale recovery notice ignored",
    "telling the master the agent is recovering",
    "agent is recovering",
    "recovering agent disconnected",
    "removed agent says it is recovering",
    "unknown agent says it is recovering",
    "status update from a removed agent",
    "status update on a connection the agent is not registered on",
    "message from a removed agent",
    "reconciliation: task unknown to the master",
    "agent did not come back within the recovery timeout",
    "lost the agent",
    "tearing the framework down",
    "framework torn down",
    "framework removed by the master",
    "framework did not fail over within its failover timeout",
    "framework asks the master to reconcile",
    "framework heard a reconciliation answer",
    "a removed framework tried to register",
    "agent reported a torn-down framework",
    "status update of a torn-down framework",
    "shutting down framework",
    "shutdown of a framework the agent does not run",
    "asking executor to shut down",
    "executor did not exit within the shutdown grace period",
    "executor of a framework being shut down terminated",
    "framework shut down: all its executors are gone",
    "status update of a framework being shut down",
    "run_task for a framework being shut down",
    "reserved resources",
    "reservation refused",
    "re-sending the master's view",
];

/// Fields left out of the recovery trace: uuids and byte offsets change with unrelated
/// code; what was decided does not.
const NOISE_FIELDS: &[&str] = &["uuid", "meta", "checkpointed"];

/// One decision of a recovery trace, ids renamed.
struct Decision {
    time: Duration,
    host: String,
    role: String,
    message: String,
    fields: Vec<(String, String)>,
}

impl Decision {
    fn head(&self) -> String {
        format!(
            "{:>4}.{:03}s {} {}: {}",
            self.time.as_secs(),
            self.time.subsec_millis(),
            self.host,
            self.role,
            self.message
        )
    }

    fn line(&self) -> String {
        let mut line = self.head();
        for (key, value) in &self.fields {
            let _ = write!(line, " {key}={value}");
        }
        line
    }
}

/// The decisions of a run, with random ids replaced by stable names in order of first
/// appearance (`agent-1`, `framework-1`, `run-1`).
fn decisions(events: &[TraceEvent]) -> Vec<Decision> {
    let mut names: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    let mut counters: std::collections::BTreeMap<&'static str, usize> =
        std::collections::BTreeMap::new();
    let mut rename = |text: &str| -> String {
        let mut out = String::new();
        // Replace whole tokens that look like generated ids.
        let mut token = String::new();
        let flush =
            |token: &mut String,
             out: &mut String,
             names: &mut std::collections::BTreeMap<String, String>,
             counters: &mut std::collections::BTreeMap<&'static str, usize>| {
                if token.is_empty() {
                    return;
                }
                let kind = if token.starts_with("agent-") && token.len() == 14 {
                    Some("agent")
                } else if token.starts_with("framework-") && token.len() == 18 {
                    Some("framework")
                } else if token.len() == 16 && token.chars().all(|c| c.is_ascii_hexdigit()) {
                    Some("run")
                } else {
                    None
                };
                match kind {
                    Some(kind) => {
                        let name = names.entry(token.clone()).or_insert_with(|| {
                            let counter = counters.entry(kind).or_insert(0);
                            *counter += 1;
                            format!("{kind}-{counter}")
                        });
                        out.push_str(name);
                    }
                    None => out.push_str(token),
                }
                token.clear();
            };
        for c in text.chars() {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                token.push(c);
            } else {
                flush(&mut token, &mut out, &mut names, &mut counters);
                out.push(c);
            }
        }
        flush(&mut token, &mut out, &mut names, &mut counters);
        out
    };
    let mut out = Vec::new();
    for event in events {
        if !DECISIONS.iter().any(|d| event.message.starts_with(d)) {
            continue;
        }
        let message = rename(&event.message);
        let fields = event
            .fields
            .iter()
            .filter(|(key, _)| !NOISE_FIELDS.contains(&key.as_str()))
            .map(|(key, value)| (key.clone(), rename(value)))
            .collect();
        out.push(Decision {
            time: event.time,
            host: event.host.clone(),
            role: event.role.clone(),
            message,
            fields,
        });
    }
    out
}

/// The recovery trace of a run: decisions only, with random ids replaced by stable names
/// in order of first appearance (`agent-1`, `framework-1`, `run-1`), so that a snapshot
/// changes only when a decision does.
pub fn recovery_trace(events: &[TraceEvent]) -> String {
    let mut out = String::new();
    for decision in decisions(events) {
        out.push_str(&decision.line());
        out.push('\n');
    }
    out
}

/// Per-task routine of runs with many tasks, left out of [`recovery_summary`]: an
/// executor's normal end (and, see there, updates that only report a task's progress).
const ROUTINE: &[&str] = &[
    "executor process exited",
    "executor run completed",
    "lost the agent",
];

/// The recovery trace of a run with many tasks (swarm and regression scenarios), short
/// enough to review: per-task routine ([`ROUTINE`]) left out, and the decisions one host
/// made at one instant about many tasks or executors folded into one line per kind,
/// `(xN)`, keeping only the fields they share.
pub fn recovery_summary(events: &[TraceEvent]) -> String {
    let kept: Vec<Decision> = decisions(events)
        .into_iter()
        .filter(|d| !ROUTINE.iter().any(|r| d.message.starts_with(r)))
        .filter(|d| {
            // A task's own progress is routine; a loss, failure or kill is a decision.
            !(d.message.starts_with("status update accepted")
                && d.fields.iter().any(|(k, v)| {
                    k == "state"
                        && matches!(
                            v.as_str(),
                            "TASK_STARTING" | "TASK_RUNNING" | "TASK_FINISHED"
                        )
                }))
        })
        .collect();
    let mut out = String::new();
    let mut index = 0;
    while index < kept.len() {
        let first = &kept[index];
        let mut end = index;
        while end < kept.len()
            && kept[end].time == first.time
            && kept[end].host == first.host
            && kept[end].role == first.role
        {
            end += 1;
        }
        // One instant of one host: group by message, in order of first appearance.
        let group = &kept[index..end];
        let mut order: Vec<&str> = Vec::new();
        for decision in group {
            if !order.contains(&decision.message.as_str()) {
                order.push(&decision.message);
            }
        }
        for message in order {
            let same: Vec<&Decision> = group.iter().filter(|d| d.message == message).collect();
            if same.len() == 1 {
                out.push_str(&same[0].line());
            } else {
                let mut line = format!("{} (x{})", same[0].head(), same.len());
                for (key, value) in &same[0].fields {
                    if same
                        .iter()
                        .all(|d| d.fields.contains(&(key.clone(), value.clone())))
                    {
                        let _ = write!(line, " {key}={value}");
                    }
                }
                out.push_str(&line);
            }
            out.push('\n');
        }
        index = end;
    }
    out
}

/// Whether a scenario's snapshot is the [`recovery_summary`] (scenarios with many tasks
/// and drawn faults: swarm and regression ones) rather than the full [`recovery_trace`].
pub fn summarised(scenario: &crate::scenario::Scenario) -> bool {
    scenario.swarm.is_some() || !scenario.pinned_seeds.is_empty()
}

/// The seed a scenario's snapshot runs: a regression scenario's first pinned seed (the
/// one that once failed), seed 0 otherwise.
pub fn snapshot_seed(scenario: &crate::scenario::Scenario) -> u64 {
    scenario.pinned_seeds.first().copied().unwrap_or(0)
}

/// The trace a scenario's snapshot holds (see [`summarised`]).
pub fn snapshot_trace(scenario: &crate::scenario::Scenario, events: &[TraceEvent]) -> String {
    if summarised(scenario) {
        recovery_summary(events)
    } else {
        recovery_trace(events)
    }
}
