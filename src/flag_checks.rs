//! Flags checked against each other when a master starts: combinations that make the
//! master remove agents that are alive and trying. Mesos refuses some outright (its master
//! will not start with an agent re-registration timeout under 10 minutes); here they are
//! warnings, so that a test cluster may shorten them on purpose, but never silent.
//! Scenarios of the simulator build their configuration directly and are not checked.

use std::time::Duration;

use revenant::agent::AgentConfig;
use revenant::domain::intervals::REGISTER_RETRY_INTERVAL_MAX;
use revenant::master::MasterConfig;

/// What is wrong with a master's flags, one sentence each (empty when nothing is).
pub fn master_warnings(config: &MasterConfig) -> Vec<String> {
    let mut warnings = Vec::new();
    let cap = REGISTER_RETRY_INTERVAL_MAX;
    if config.agent_reregister_timeout <= cap {
        warnings.push(format!(
            "--agent-reregister-timeout {} is no longer than the agents' registration back-off cap ({}): \
             after a failover an agent that is alive and retrying may be removed (its tasks reported \
             TASK_LOST) before its next attempt; use more than {}",
            show(config.agent_reregister_timeout),
            show(cap),
            show(cap)
        ));
    }
    let patience = config
        .agent_ping_timeout
        .saturating_mul(config.max_agent_ping_timeouts);
    let agent_patience =
        AgentConfig::new(Vec::new(), String::new(), std::path::PathBuf::new()).master_ping_timeout;
    if patience < agent_patience {
        warnings.push(format!(
            "--agent-ping-timeout {} x --max-agent-ping-timeouts {} = {} is shorter than the time an \
             agent waits for a silent master ({}): an agent cut off for between the two is removed \
             (its tasks reported TASK_LOST) while it still believes it is registered; use at least {} in all",
            show(config.agent_ping_timeout),
            config.max_agent_ping_timeouts,
            show(patience),
            show(agent_patience),
            show(agent_patience)
        ));
    }
    warnings
}

fn show(duration: Duration) -> String {
    format!("{}s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(reregister: u64, ping: u64, count: u32) -> MasterConfig {
        MasterConfig {
            agent_reregister_timeout: Duration::from_secs(reregister),
            agent_ping_timeout: Duration::from_secs(ping),
            max_agent_ping_timeouts: count,
            ..MasterConfig::new(String::new())
        }
    }

    #[test]
    fn the_defaults_are_consistent() {
        assert_eq!(
            master_warnings(&MasterConfig::new(String::new())),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_reregistration_timeout_within_the_backoff_cap_is_named() {
        let warnings = master_warnings(&config(60, 15, 5));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("--agent-reregister-timeout 60s is no longer than"));
    }

    #[test]
    fn pings_shorter_than_the_agents_patience_are_named() {
        let warnings = master_warnings(&config(600, 5, 3));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("= 15s is shorter than"),
            "{warnings:?}"
        );
    }
}
