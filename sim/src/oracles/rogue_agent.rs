//! docs/security.md SEC48 (SEC22, SEC23 applied to agent registration): an agent whose
//! principal the `register_agents` ACL refuses is never admitted. Judged on the rogue
//! agent's connections (`crate::rogue_agent`), never from the master's log:
//!
//! - at the masters' end (`crate::master_wire`, the rogue agent's record): every
//!   `RegisterAgent` a master reads is answered by that master's next frame on the
//!   connection, `ShutdownAgent` (refused) or `NotLeader` (a master that does not lead),
//!   written within [`ANSWER_WITHIN`] of the frame reaching the master, unless the
//!   connection ended first or the run ended within the bound; and no master ever
//!   writes `AgentRegistered` or `AgentReregistered` on such a connection;
//! - at the rogue agent's end: every `ShutdownAgent` it hears gives the reason naming the
//!   ACL (`register_agents`, SEC23), and it never hears `AgentRegistered`,
//!   `AgentReregistered` or `RunTask` (no task is ever placed on it).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

pub use super::removed_agent::ANSWER_WITHIN;
use super::Violation;
use crate::master_wire::{Record, What};
use crate::observations::Observations;

const ORACLE: &str = "rogue_agent";

/// What the masters tell a registration the ACL refuses: this ACL's name is in the reason
/// (SEC23).
pub const ACL: &str = "register_agents";

/// Checks SEC48 on the run's record.
pub fn check(observations: &Observations) -> Vec<Violation> {
    let mut out = judge_masters(&observations.rogue_agent_wire);
    out.extend(judge_heard(&observations.rogue.agent_heard));
    out
}

fn violation(time: Duration, message: String) -> Violation {
    Violation {
        time,
        oracle: ORACLE,
        message: format!("docs/security.md SEC48: {message}"),
    }
}

/// The masters' end of the rogue agent's connections.
pub fn judge_masters(record: &Record) -> Vec<Violation> {
    let mut out = Vec::new();
    // Registrations read and not yet answered, per connection.
    let mut waiting: BTreeMap<usize, VecDeque<Duration>> = BTreeMap::new();
    let name = |c: usize| {
        record.connections.get(c).map_or_else(
            || format!("connection {c}"),
            |m| format!("{} (incarnation {})", m.master, m.incarnation),
        )
    };
    for event in &record.events {
        let c = event.connection;
        match &event.what {
            What::Read { kind, .. } => {
                if *kind == "register_agent" {
                    waiting.entry(c).or_default().push_back(event.time);
                }
            }
            What::Wrote { kind, .. } => {
                if matches!(*kind, "agent_registered" | "agent_reregistered") {
                    out.push(violation(
                        event.time,
                        format!(
                            "{} wrote {kind} to the rogue agent, whose principal the ACL {ACL} refuses",
                            name(c)
                        ),
                    ));
                }
                let Some(read) = waiting.get_mut(&c).and_then(VecDeque::pop_front) else {
                    continue;
                };
                let refused = matches!(*kind, "shutdown_agent" | "not_leader");
                let late = event.time > read + ANSWER_WITHIN;
                if !refused || late {
                    out.push(violation(
                        event.time,
                        format!(
                            "{} answered the rogue agent's RegisterAgent (read at {:.3}s) with {kind} at {:.3}s; due: shutdown_agent or not_leader within {:?}",
                            name(c),
                            read.as_secs_f64(),
                            event.time.as_secs_f64(),
                            ANSWER_WITHIN
                        ),
                    ));
                }
            }
            What::Closed => {
                for read in waiting.remove(&c).unwrap_or_default() {
                    if event.time > read + ANSWER_WITHIN {
                        out.push(violation(
                            read + ANSWER_WITHIN,
                            format!(
                                "{} did not answer the rogue agent's RegisterAgent (read at {:.3}s; the connection stayed open until {:.3}s)",
                                name(c),
                                read.as_secs_f64(),
                                event.time.as_secs_f64()
                            ),
                        ));
                    }
                }
            }
        }
    }
    for (c, reads) in waiting {
        for read in reads {
            if record.end > read + ANSWER_WITHIN {
                out.push(violation(
                    read + ANSWER_WITHIN,
                    format!(
                        "{} did not answer the rogue agent's RegisterAgent (read at {:.3}s; the run ended at {:.3}s)",
                        name(c),
                        read.as_secs_f64(),
                        record.end.as_secs_f64()
                    ),
                ));
            }
        }
    }
    out
}

/// What the rogue agent heard: (time, kind, on which attempt and master, the reason of a
/// `ShutdownAgent`).
pub fn judge_heard(heard: &[(Duration, &'static str, String, String)]) -> Vec<Violation> {
    let mut out = Vec::new();
    for (time, kind, on, reason) in heard {
        match *kind {
            "agent_registered" | "agent_reregistered" | "run_task" => out.push(violation(
                *time,
                format!("the rogue agent heard {kind} ({on}), though the ACL {ACL} refuses its principal"),
            )),
            "shutdown_agent" if !reason.contains(ACL) => out.push(violation(
                *time,
                format!(
                    "the rogue agent was told to shut down ({on}) with a reason that does not name the ACL {ACL}: {reason:?}"
                ),
            )),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::master_wire::{Connection, Event};

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn record(events: Vec<(u64, What)>, end_ms: u64) -> Record {
        Record {
            connections: vec![Connection {
                master: "master1".into(),
                incarnation: 1,
            }],
            events: events
                .into_iter()
                .map(|(t, what)| Event {
                    time: ms(t),
                    connection: 0,
                    what,
                })
                .collect(),
            end: ms(end_ms),
        }
    }

    fn read() -> What {
        What::Read {
            kind: "register_agent",
            agent: None,
        }
    }

    fn wrote(kind: &'static str) -> What {
        What::Wrote { kind, agent: None }
    }

    #[test]
    fn a_prompt_refusal_holds() {
        let r = record(vec![(10, read()), (10, wrote("shutdown_agent"))], 9000);
        assert!(judge_masters(&r).is_empty());
        let r = record(vec![(10, read()), (11, wrote("not_leader"))], 9000);
        assert!(judge_masters(&r).is_empty());
        // The master died before it could answer.
        let r = record(vec![(10, read()), (500, What::Closed)], 9000);
        assert!(judge_masters(&r).is_empty());
        // The run ended within the bound.
        let r = record(vec![(10, read())], 600);
        assert!(judge_masters(&r).is_empty());
    }

    #[test]
    fn an_admission_a_late_answer_or_none_fails() {
        let r = record(vec![(10, read()), (10, wrote("agent_registered"))], 9000);
        assert_eq!(judge_masters(&r).len(), 2);
        let r = record(vec![(10, read()), (1500, wrote("shutdown_agent"))], 9000);
        assert_eq!(judge_masters(&r).len(), 1);
        let r = record(vec![(10, read()), (5000, What::Closed)], 9000);
        assert_eq!(judge_masters(&r).len(), 1);
        let r = record(vec![(10, read())], 9000);
        assert_eq!(judge_masters(&r).len(), 1);
    }

    #[test]
    fn the_reason_must_name_the_acl() {
        let on = "attempt 1 to master1".to_owned();
        let good = "not authorized by ACL register_agents[0]: principal 'rogue-agent' may not register an agent";
        assert!(judge_heard(&[(ms(5), "shutdown_agent", on.clone(), good.into())]).is_empty());
        assert_eq!(
            judge_heard(&[(ms(5), "shutdown_agent", on.clone(), "removed".into())]).len(),
            1
        );
        assert_eq!(
            judge_heard(&[
                (ms(5), "agent_registered", on.clone(), String::new()),
                (ms(6), "run_task", on, String::new())
            ])
            .len(),
            2
        );
    }
}
