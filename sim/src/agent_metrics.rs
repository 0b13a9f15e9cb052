//! What each agent incarnation's `/metrics` said once its recovery had read the disk, for
//! the `recovery_errors` oracle (docs/recovery-rules.md R43, R44). The agent leaves the
//! answer an operator would get over HTTP through `revenant::observe` (which sends no
//! message and logs nothing, so the run is the same run); the driver takes it after each
//! step and reads it as Prometheus text, as an operator's scraper would.
//!
//! Why not a request over the simulated network, as an operator would make it: a
//! request is a connection, frames and a served answer inside the run, which would
//! change every run's trace and timing (every snapshot and pinned seed), and it would
//! have to land after recovery and before the incarnation's end, which a crash can make
//! impossible. The tap gives the same text at a moment the simulator cannot miss.

use std::cell::RefCell;
use std::time::Duration;

use crate::run_record::RunRecord;

/// The counter the agent's `/metrics` reports recovery's errors under (docs/http.md).
pub const RECOVERY_ERRORS: &str = "revenant_agent_recovery_errors_total";

/// One answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// When the driver took it (the end of the step in which recovery read the disk).
    pub time: Duration,
    /// The agent process (1, 2, ...), from the address it listens on.
    pub agent: u32,
    /// The value of [`RECOVERY_ERRORS`]; `Err`: what was wrong with the text.
    pub recovery_errors: Result<f64, String>,
}

thread_local! {
    static CELL: RefCell<Vec<Report>> = const { RefCell::new(Vec::new()) };
}

static RECORD: RunRecord<Vec<Report>> = RunRecord::new(&CELL);

/// Starts a run with nothing reported, and asks the agents for their answers.
pub fn begin() {
    RECORD.begin();
    revenant::observe::want_agent_metrics(true);
}

/// Takes the answers the agents left, at simulated time `now`.
pub fn after_step(now: Duration) {
    for (listen, text) in revenant::observe::take_agent_metrics() {
        let port = listen
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok());
        let Some(agent) = (1..=64).find(|k| Some(crate::hosts::agent_port(*k)) == port) else {
            continue;
        };
        let report = Report {
            time: now,
            agent,
            recovery_errors: recovery_errors(&text),
        };
        RECORD.with(|record| record.push(report));
    }
}

/// The answers taken since [`begin`]; stops asking.
pub fn take() -> Vec<Report> {
    revenant::observe::want_agent_metrics(false);
    RECORD.take()
}

/// The value of [`RECOVERY_ERRORS`] in `/metrics` text.
pub fn recovery_errors(text: &str) -> Result<f64, String> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_owned())))
        .map_err(|error| format!("not Prometheus text: {error}"))?;
    scrape
        .samples
        .iter()
        .find(|s| s.metric == RECOVERY_ERRORS)
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Ok(v),
            _ => Err(format!("{RECOVERY_ERRORS} is not a number")),
        })
        .unwrap_or_else(|| Err(format!("no {RECOVERY_ERRORS} sample")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_agents_counter() {
        let text = revenant::http::metrics::AgentMetrics {
            recovery_errors: 3,
            ..Default::default()
        }
        .response()
        .body;
        assert_eq!(recovery_errors(&text), Ok(3.0));
        assert!(recovery_errors("# EOF\n").is_err());
    }
}
