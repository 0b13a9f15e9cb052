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
}

impl TraceEvent {
    /// The value of a field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
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
/// host an event came from.
pub fn host_span(name: &str) -> tracing::Span {
    tracing::info_span!(target: "revenant_sim", "host", name = name)
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
        let role = match role.as_str() {
            "status_updates" | "registration" => "agent".to_owned(),
            "revenant_sim" | "cluster" | "seams" => "sim".to_owned(),
            other => other.to_owned(),
        };
        let time = turmoil::sim_elapsed().unwrap_or_else(|| DRIVER_TIME.with(|t| t.get()));
        self.buffer.lock().expect("trace buffer").push(TraceEvent {
            time,
            host,
            role,
            message: fields.message,
            fields: fields.fields,
        });
    }
}

thread_local! {
    /// The driver's notion of simulated time, for events emitted outside any host.
    pub static DRIVER_TIME: std::cell::Cell<Duration> = const { std::cell::Cell::new(Duration::ZERO) };
}

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
    "executor run completed before the restart",
    "waiting for executors to re-register",
    "executor re-registered",
    "executor that never registered before the restart registered",
    "asking executors that have not re-registered to reconnect",
    "agent asked to reconnect",
    "duplicate status update",
    "executor did not re-register in time: destroying it",
    "task was launched during the agent restart",
    "recovery complete",
    "recover=cleanup",
    "registering with master",
    "registered with master",
    "re-registering with master",
    "re-registered with master",
    "master knows a task the agent does not",
    "status update accepted",
    "resending unacknowledged status update",
    "executor run completed",
    "executor process exited",
    "garbage collected",
    "master asked the agent to shut down",
    "agent registered",
    "agent retried its registration",
    "agent re-registered",
    "a new agent registered at the address of a known one",
    "task lost with its agent",
    "agent did not re-register within the timeout",
    "agent stopped answering pings",
    "removed agent tried to re-register",
    "reconciliation: task unknown to the master",
    "agent did not come back within the recovery timeout",
    "lost the agent",
];

/// Fields left out of the recovery trace: uuids and byte offsets change with unrelated
/// code; what was decided does not.
const NOISE_FIELDS: &[&str] = &["uuid", "meta", "checkpointed"];

/// The recovery trace of a run: decisions only, with random ids replaced by stable names
/// in order of first appearance (`agent-1`, `framework-1`, `run-1`), so that a snapshot
/// changes only when a decision does.
pub fn recovery_trace(events: &[TraceEvent]) -> String {
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
    let mut out = String::new();
    for event in events {
        if !DECISIONS.iter().any(|d| event.message.starts_with(d)) {
            continue;
        }
        let mut line = format!(
            "{:>4}.{:03}s {} {}: {}",
            event.time.as_secs(),
            event.time.subsec_millis(),
            event.host,
            event.role,
            rename(&event.message)
        );
        for (key, value) in &event.fields {
            if NOISE_FIELDS.contains(&key.as_str()) {
                continue;
            }
            let _ = write!(line, " {key}={}", rename(value));
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}
