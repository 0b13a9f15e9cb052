//! Rule R57 of docs/recovery-rules.md ("one agent connection, one agent id", oracle
//! `one_agent_id`): every registration answer (`AgentRegistered`, `AgentReregistered`)
//! one master incarnation writes on one connection names the same agent id. An agent
//! that retries its registration on the connection whose answer was lost is the agent
//! the master already admitted (docs/stream-rules.md S2), not a second one; a master that
//! admits it again under a new id has two agents in its registry for one process (the
//! first removed as "a new agent at the same address", its tasks lost), while the agent,
//! having heard only the second answer, cannot tell. Judged from the frames the master
//! wrote (`crate::master_wire`), never from the master's or the agent's log.

use std::collections::{BTreeMap, BTreeSet};

use super::Violation;
use crate::master_wire::{Record, What};
use crate::observations::Observations;

/// Checks the rule.
pub fn check(observations: &Observations) -> Vec<Violation> {
    judge(&observations.master_wire)
}

/// Judges a recorded run (public for hand-made records).
pub fn judge(record: &Record) -> Vec<Violation> {
    let mut out = Vec::new();
    // Per connection: the first id its master answered, and when.
    let mut first: BTreeMap<usize, (String, std::time::Duration)> = BTreeMap::new();
    let mut reported: BTreeSet<usize> = BTreeSet::new();
    for event in &record.events {
        let What::Wrote {
            kind,
            agent: Some(agent),
        } = &event.what
        else {
            continue;
        };
        if !matches!(*kind, "agent_registered" | "agent_reregistered") {
            continue;
        }
        let Some(connection) = record.connections.get(event.connection) else {
            continue;
        };
        if reported.contains(&event.connection) {
            continue;
        }
        match first.get(&event.connection) {
            None => {
                first.insert(event.connection, (agent.clone(), event.time));
            }
            Some((id, at)) if id != agent => {
                out.push(Violation {
                    time: event.time,
                    oracle: "one_agent_id",
                    message: format!(
                        "{} (incarnation {}) answered a registration on one connection with agent id {agent} at {:.3}s after answering {id} on it at {:.3}s: one agent, two ids (R57)",
                        connection.master,
                        connection.incarnation,
                        event.time.as_secs_f64(),
                        at.as_secs_f64()
                    ),
                });
                // One report per connection is enough.
                reported.insert(event.connection);
            }
            Some(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::master_wire::{Connection, Event};

    fn wrote(time_ms: u64, connection: usize, kind: &'static str, agent: &str) -> Event {
        Event {
            time: Duration::from_millis(time_ms),
            connection,
            what: What::Wrote {
                kind,
                agent: Some(agent.to_owned()),
            },
        }
    }

    fn record(events: Vec<Event>) -> Record {
        let connection = |incarnation| Connection {
            master: "master1".to_owned(),
            incarnation,
        };
        Record {
            connections: vec![connection(1), connection(1), connection(2)],
            events,
            ..Record::default()
        }
    }

    #[test]
    fn a_retried_registration_answered_with_the_same_id_holds() {
        let run = record(vec![
            wrote(100, 0, "agent_registered", "agent-1"),
            wrote(900, 0, "agent_registered", "agent-1"),
            wrote(5_000, 0, "agent_reregistered", "agent-1"),
        ]);
        assert!(judge(&run).is_empty());
    }

    #[test]
    fn other_connections_and_incarnations_may_name_other_ids() {
        // A rebooted agent registers anew on its new connection; a new master
        // incarnation answers its own connection.
        let run = record(vec![
            wrote(100, 0, "agent_registered", "agent-1"),
            wrote(900, 1, "agent_registered", "agent-2"),
            wrote(1_900, 2, "agent_reregistered", "agent-2"),
        ]);
        assert!(judge(&run).is_empty());
    }

    #[test]
    fn a_second_id_on_one_connection_is_caught() {
        let run = record(vec![
            wrote(100, 0, "agent_registered", "agent-1"),
            wrote(900, 0, "agent_registered", "agent-2"),
            wrote(1_000, 0, "agent_registered", "agent-3"),
        ]);
        let violations = judge(&run);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert_eq!(violations[0].oracle, "one_agent_id");
        assert_eq!(violations[0].time, Duration::from_millis(900));
        assert!(violations[0].message.contains("agent-2"));
        assert!(violations[0].message.contains("agent-1"));
    }
}
