//! The layout of a simulated cluster's hosts: names, ports, work directories, and the
//! principal the simulated transport hands the master for each host. The bottom of the
//! simulator: it imports nothing of it (docs/design.md D62).

use std::path::PathBuf;

/// The agent machine's host name.
pub const AGENT_HOST: &str = "agent1";

/// The framework's host name.
pub const FRAMEWORK_HOST: &str = "framework";

/// The agent's port.
pub const AGENT_PORT: u16 = 5051;

/// The masters' port.
pub const MASTER_PORT: u16 = 5050;

/// The agent's work directory on its machine.
pub const WORK_DIR: &str = "/var/lib/revenant";

/// The trace host of agent process `index` (1, 2, ...) of the agent machine: `agent1`
/// for the first, `agent1/2` for the second, ...
pub fn agent_trace_host(index: u32) -> String {
    if index <= 1 {
        AGENT_HOST.to_owned()
    } else {
        format!("{AGENT_HOST}/{index}")
    }
}

/// The agent process (1, 2, ...) a trace host names (`agent1` is 1, `agent1/2` is 2);
/// `None` for other hosts.
pub fn agent_of_host(host: &str) -> Option<u32> {
    let rest = host.strip_prefix(AGENT_HOST)?;
    if rest.is_empty() {
        return Some(1);
    }
    rest.strip_prefix('/')?.parse().ok()
}

/// The port of agent process `index`: 5051, 5052, ...
pub fn agent_port(index: u32) -> u16 {
    AGENT_PORT + index.max(1) as u16 - 1
}

/// The work directory of agent process `index`: [`WORK_DIR`] for the first,
/// `/var/lib/revenant-2` for the second, ...
pub fn agent_work_dir(index: u32) -> PathBuf {
    if index <= 1 {
        PathBuf::from(WORK_DIR)
    } else {
        PathBuf::from(format!("{WORK_DIR}-{index}"))
    }
}

/// The host of framework `index` (1, 2, ...): `framework`, `framework2`, ...
pub fn framework_host(index: u32) -> String {
    if index <= 1 {
        FRAMEWORK_HOST.to_owned()
    } else {
        format!("{FRAMEWORK_HOST}{index}")
    }
}

/// The trace host of the rogue framework: a framework host of its own.
pub const ROGUE_FRAMEWORK_HOST: &str = "rogue-framework";

/// The principal the rogue framework proved (SEC40): a principal the master knows, with
/// no rights beyond what [`ROGUE_ACLS`] leaves to everyone.
pub const ROGUE_PRINCIPAL: &str = "rogue";

/// The trace host of the rogue agent (docs/security.md SEC48): an agent host of its own.
pub const ROGUE_AGENT_HOST: &str = "rogue-agent";

/// The principal the rogue agent proved (SEC48): one the `register_agents` ACL of
/// `ROGUE_ACLS` refuses.
pub const ROGUE_AGENT_PRINCIPAL: &str = "rogue-agent";

/// The principal the simulated transport hands the master for a connection from
/// `peer_host` (docs/security.md SEC40, SEC48): the rogue framework's, the rogue
/// agent's, or none (the scenario's roles authenticate as nobody, as on a cluster
/// without TLS or credentials).
pub fn principal_of_host(peer_host: &str) -> Option<&'static str> {
    match peer_host {
        ROGUE_FRAMEWORK_HOST => Some(ROGUE_PRINCIPAL),
        ROGUE_AGENT_HOST => Some(ROGUE_AGENT_PRINCIPAL),
        _ => None,
    }
}
