//! `/metrics`, written by `prometheus-client` in the OpenMetrics text format (docs/http.md).
//! Each answer is encoded from a registry built for it from the role's state, so no
//! counter lives outside the role.

use std::collections::BTreeMap;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Response;

/// The `Content-Type` of `/metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the agent's `/metrics` reports.
#[derive(Clone, Debug, Default)]
pub struct AgentMetrics {
    /// Damaged checkpoints counted by recovery (`revenant_agent_recovery_errors_total`).
    pub recovery_errors: u64,
    /// Updates not yet acknowledged (`revenant_agent_updates_pending`).
    pub updates_pending: usize,
    /// Executors known (`revenant_agent_executors`).
    pub executors: usize,
    /// Tasks by state (`revenant_agent_tasks{state=...}`).
    pub tasks_by_state: BTreeMap<String, usize>,
    /// Registrations and re-registrations (`revenant_agent_registrations_total`).
    pub registrations: u64,
    /// Whether the agent recovers (`revenant_agent_recovering`, 0 or 1).
    pub recovering: bool,
}

/// What the master's `/metrics` reports.
#[derive(Clone, Debug, Default)]
pub struct MasterMetrics {
    /// Agents by phase (`revenant_master_agents{phase=...}`).
    pub agents_by_phase: BTreeMap<String, usize>,
    /// Active frameworks (`revenant_master_frameworks`).
    pub frameworks: usize,
    /// Completed frameworks (`revenant_master_completed_frameworks`).
    pub completed_frameworks: usize,
    /// Tasks on agents by state (`revenant_master_tasks{state=...}`).
    pub tasks_by_state: BTreeMap<String, usize>,
    /// Tasks not yet placed (`revenant_master_pending_tasks`).
    pub pending_tasks: usize,
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: usize) {
    let metric = Gauge::<i64>::default();
    metric.set(i64::try_from(value).unwrap_or(i64::MAX));
    registry.register(name, help, metric);
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let metric = Counter::<u64>::default();
    metric.inc_by(value);
    registry.register(name, help, metric);
}

fn by_label(
    registry: &mut Registry,
    name: &str,
    help: &str,
    label: &str,
    values: &BTreeMap<String, usize>,
) {
    let family = Family::<Vec<(String, String)>, Gauge<i64>>::default();
    for (value, count) in values {
        family
            .get_or_create(&vec![(label.to_owned(), value.clone())])
            .set(i64::try_from(*count).unwrap_or(i64::MAX));
    }
    registry.register(name, help, family);
}

fn encode(registry: &Registry) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, registry) {
        Ok(()) => Response::new(200, CONTENT_TYPE, text),
        Err(error) => Response::new(500, "text/plain", format!("{error}\n")),
    }
}

impl AgentMetrics {
    /// The `/metrics` answer.
    pub fn response(&self) -> Response {
        let mut registry = Registry::default();
        counter(
            &mut registry,
            "revenant_agent_recovery_errors",
            "Damaged checkpoints recovery counted (non-strict recovery)",
            self.recovery_errors,
        );
        gauge(
            &mut registry,
            "revenant_agent_updates_pending",
            "Status updates not yet acknowledged by their framework",
            self.updates_pending,
        );
        gauge(
            &mut registry,
            "revenant_agent_executors",
            "Executors the agent knows",
            self.executors,
        );
        by_label(
            &mut registry,
            "revenant_agent_tasks",
            "Tasks by latest state",
            "state",
            &self.tasks_by_state,
        );
        counter(
            &mut registry,
            "revenant_agent_registrations",
            "Registrations and re-registrations with a master",
            self.registrations,
        );
        gauge(
            &mut registry,
            "revenant_agent_recovering",
            "1 while the agent recovers, else 0",
            usize::from(self.recovering),
        );
        encode(&registry)
    }
}

impl MasterMetrics {
    /// The `/metrics` answer.
    pub fn response(&self) -> Response {
        let mut registry = Registry::default();
        by_label(
            &mut registry,
            "revenant_master_agents",
            "Agents by phase",
            "phase",
            &self.agents_by_phase,
        );
        gauge(
            &mut registry,
            "revenant_master_frameworks",
            "Active frameworks",
            self.frameworks,
        );
        gauge(
            &mut registry,
            "revenant_master_completed_frameworks",
            "Frameworks torn down or removed",
            self.completed_frameworks,
        );
        by_label(
            &mut registry,
            "revenant_master_tasks",
            "Tasks on agents by latest state",
            "state",
            &self.tasks_by_state,
        );
        gauge(
            &mut registry,
            "revenant_master_pending_tasks",
            "Tasks submitted and not yet placed",
            self.pending_tasks,
        );
        encode(&registry)
    }
}
