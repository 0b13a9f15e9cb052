//! Read-only queries of the leading master for the operator's CLI (`revenant tasks`):
//! one plain HTTP `GET /state`, never a registration, so a query cannot disturb the
//! framework it asks about (registering as the framework would fail its scheduler over).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::Value;

/// A blocking connection, plain or TLS.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// `GET path` on `address` (over mutual TLS when `tls` is given, docs/security.md SEC8);
/// the status code and the body, or what went wrong.
fn get(
    address: &str,
    path: &str,
    timeout: Duration,
    tls: Option<&revenant::tls::TlsIdentity>,
) -> Result<(u16, String), String> {
    let target = address
        .to_socket_addrs()
        .map_err(|error| format!("master address '{address}': {error}"))?
        .next()
        .ok_or_else(|| format!("master address '{address}' resolves to nothing"))?;
    let stream = TcpStream::connect_timeout(&target, timeout)
        .map_err(|error| format!("master {address}: {error}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|error| format!("master {address}: {error}"))?;
    let mut stream: Box<dyn ReadWrite> = match tls {
        None => Box::new(stream),
        Some(identity) => {
            let name = revenant::tls::server_name(address)?;
            let connection = rustls::ClientConnection::new(identity.client_config(), name)
                .map_err(|error| format!("master {address}: {error}"))?;
            Box::new(rustls::StreamOwned::new(connection, stream))
        }
    };
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|error| format!("master {address}: sending the request: {error}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|error| format!("master {address}: reading the answer: {error}"))?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("master {address}: not an HTTP answer"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("master {address}: no status in the answer"))?;
    Ok((status, body.to_owned()))
}

/// The leading master's `/state`: each address in turn; a master that does not lead
/// names the leader, which is asked next.
fn leader_state(
    masters: &[String],
    timeout: Duration,
    tls: Option<&revenant::tls::TlsIdentity>,
) -> Result<Value, String> {
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
                let state: Value = serde_json::from_str(&body)
                    .map_err(|error| format!("master {address}: /state is not JSON: {error}"))?;
                if state["leading"].as_bool() == Some(true) {
                    return Ok(state);
                }
                match state["leader"].as_str() {
                    Some(leader) if !leader.is_empty() => queue.insert(0, leader.to_owned()),
                    _ => errors.push(format!(
                        "master {address} does not lead and knows no leader"
                    )),
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
    let mut known = false;
    for framework in state["frameworks"].as_array().into_iter().flatten() {
        known |= framework["id"] == framework_id;
    }
    for agent in state["agents"].as_array().into_iter().flatten() {
        if agent["phase"] == "removed" {
            continue;
        }
        for task in agent["tasks"].as_array().into_iter().flatten() {
            if task["framework_id"] == framework_id {
                known = true;
                if let (Some(id), Some(task_state)) = (task["id"].as_str(), task["state"].as_str())
                {
                    tasks.insert(id.to_owned(), task_state.to_owned());
                }
            }
        }
    }
    for framework in state["completed_frameworks"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if framework["id"] != framework_id {
            continue;
        }
        known = true;
        for task in framework["tasks"].as_array().into_iter().flatten() {
            if let (Some(id), Some(task_state)) = (task["id"].as_str(), task["state"].as_str()) {
                tasks
                    .entry(id.to_owned())
                    .or_insert_with(|| task_state.to_owned());
            }
        }
    }
    Ok(known.then_some(tasks))
}
