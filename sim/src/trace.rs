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
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
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
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &tracing::span::Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "node" {
            return;
        }
        let mut fields = Fields { message: String::new(), fields: Vec::new() };
        attrs.record(&mut fields);
        if let (Some(span), Some((_, name))) = (ctx.span(id), fields.fields.into_iter().find(|(k, _)| k == "name")) {
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
        let mut fields = Fields { message: String::new(), fields: Vec::new() };
        event.record(&mut fields);
        let host = ctx
            .event_scope(event)
            .and_then(|scope| {
                scope.from_root().find_map(|span| span.extensions().get::<NodeName>().map(|n| n.0.clone()))
            })
            .unwrap_or_else(|| "sim".to_owned());
        let role = target.rsplit("::").next().unwrap_or(target).to_owned();
        let role = match role.as_str() {
            "status_updates" | "registration" => "agent".to_owned(),
            "revenant_sim" | "cluster" => "sim".to_owned(),
            other => other.to_owned(),
        };
        let time = turmoil::sim_elapsed().unwrap_or_else(|| DRIVER_TIME.with(|t| t.get()));
        self.buffer.lock().expect("trace buffer").push(TraceEvent { time, host, role, message: fields.message, fields: fields.fields });
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
