//! Read-only queries of the leading master for the operator's CLI (`revenant tasks`):
//! one plain HTTP `GET /state`, never a registration, so a query cannot disturb the
//! framework it asks about (registering as the framework would fail its scheduler over).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::time::Duration;

use revenant::http::state::MasterState;

/// `GET path` on `address`, with `hyper` (docs/design.md D15), over mutual TLS when
/// `tls` is given (docs/security.md SEC8); the status code and the body, or what went
/// wrong.
fn get(
    address: &str,
    path: &str,
    timeout: Duration,
    tls: Option<&revenant::tls::TlsIdentity>,
) -> Result<(u16, String), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("starting the runtime: {error}"))?;
    runtime.block_on(async {
        let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address))
            .await
            .map_err(|_| format!("master {address}: no connection within {timeout:?}"))?
            .map_err(|error| format!("master {address}: {error}"))?;
        let answer = match tls {
            None => tokio::time::timeout(timeout, revenant::http::get(stream, address, path)).await,
            Some(identity) => {
                let name = revenant::tls::server_name(address)?;
                let connector = tokio_rustls::TlsConnector::from(identity.client_config());
                let stream = tokio::time::timeout(timeout, connector.connect(name, stream))
                    .await
                    .map_err(|_| format!("master {address}: no TLS handshake within {timeout:?}"))?
                    .map_err(|error| format!("master {address}: TLS handshake: {error}"))?;
                tokio::time::timeout(timeout, revenant::http::get(stream, address, path)).await
            }
        };
        answer
            .map_err(|_| format!("master {address}: no answer within {timeout:?}"))?
            .map_err(|error| format!("master {address}: {error}"))
    })
}

/// The leading master's `/state`: each address in turn; a master that does not lead
/// names the leader, which is asked next.
fn leader_state(
    masters: &[String],
    timeout: Duration,
    tls: Option<&revenant::tls::TlsIdentity>,
) -> Result<MasterState, String> {
    let mut errors = Vec::new();
    let mut queue: Vec<String> = masters.to_vec();
    let mut asked = Vec::new();
    while let Some(address) = queue.first().cloned() {
        queue.remove(0);
        if asked.contains(&address) {
            continue;
        }
        asked.push(address.clone());
        match get(&address, "/state", timeout, tls) {
            Ok((200, body)) => {
                let state: MasterState = serde_json::from_str(&body).map_err(|error| {
                    format!("master {address}: /state is not a master's state: {error}")
                })?;
                if state.leading {
                    return Ok(state);
                }
                if state.leader.is_empty() {
                    errors.push(format!(
                        "master {address} does not lead and knows no leader"
                    ));
                } else {
                    queue.insert(0, state.leader);
                }
            }
            Ok((status, _)) => errors.push(format!("master {address}: /state answered {status}")),
            Err(error) => errors.push(error),
        }
    }
    Err(format!("no leading master answered: {}", errors.join("; ")))
}

/// The tasks the leading master knows for `framework_id`, by task id, with their latest
/// states: on its agents (removed agents left out) and, for a torn-down framework, as it
/// recorded them. `None` when the master knows no such framework and no task of it.
pub fn framework_tasks(
    masters: &[String],
    framework_id: &str,
    timeout: Duration,
    tls: Option<&revenant::tls::TlsIdentity>,
) -> Result<Option<BTreeMap<String, String>>, String> {
    let state = leader_state(masters, timeout, tls)?;
    let mut tasks = BTreeMap::new();
    let mut known = state.frameworks.iter().any(|f| f.id == framework_id);
    for agent in state.agents.iter().filter(|a| a.phase != "removed") {
        for task in agent
            .tasks
            .iter()
            .filter(|t| t.framework_id == framework_id)
        {
            known = true;
            tasks.insert(task.id.clone(), task.state.clone());
        }
    }
    for framework in state
        .completed_frameworks
        .iter()
        .filter(|f| f.id == framework_id)
    {
        known = true;
        for task in &framework.tasks {
            tasks
                .entry(task.id.clone())
                .or_insert_with(|| task.state.clone());
        }
    }
    Ok(known.then_some(tasks))
}
