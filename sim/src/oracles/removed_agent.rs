//! Rule R55 of docs/recovery-rules.md ("a removed agent is answered ShutdownAgent, frame
//! by frame", oracle `removed_agent`): R6 judged on the wire. Once a master incarnation
//! has told agent X to shut down, every frame it reads from X afterwards, other than a
//! registration as a new agent, is answered by `ShutdownAgent` (`NotLeader` from a
//! master that no longer leads): the master's next frame on that connection, written
//! within [`ANSWER_WITHIN`] of the frame reaching the master, unless the connection ends
//! first. Judged from the frames the master read and wrote (`crate::master_wire`), never
//! from the master's log.
//!
//! Whose frame: a frame that names an agent id (a re-registration, a recovery notice,
//! an unregistration, a status update) is that agent's; a frame that names none (a
//! pong) is the agent's whose id was last named on its connection, by the agent or by
//! the master's registration answer; a registration as a new agent names nobody and
//! leaves the connection nobody's until its answer names the new id.
//!
//! What the master knows: a master incarnation has removed X from the first
//! `ShutdownAgent` it writes on a connection of X (the removal's own, or its first answer
//! to X after a removal the wire did not show, e.g. one made while X was disconnected);
//! only frames read after that write are judged. Every other master (a failover, a
//! restart) knows it too from the first `ShutdownAgent` any master wrote to X: the
//! removal was durable in the registry before it (docs/design.md D77), and a master reads
//! the registry when it is elected (docs/recovery-rules.md R58).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use super::Violation;
use crate::master_wire::{Record, What};
use crate::observations::Observations;

/// How long after a frame reaches the master its answer may be written: the master
/// handles a frame in the turn its reader hands it over and its writer writes the answer
/// in the same turn (docs/design.md D40: the core's effects are performed in order
/// before the driver waits again); the bound leaves room for the simulator's scheduling
/// and nothing else.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(1);

/// A frame of a removed agent waiting for its answer.
struct Waiting {
    time: Duration,
    kind: &'static str,
    agent: String,
    /// When the agent was told to shut down: by this master incarnation itself (R55), or
    /// only by another (R58).
    since: Duration,
    itself: bool,
}

/// Checks the rule.
pub fn check(observations: &Observations) -> Vec<Violation> {
    judge(&observations.master_wire)
}

/// Judges a recorded run (public for hand-made records).
pub fn judge(record: &Record) -> Vec<Violation> {
    judge_counting(record).0
}

/// How many frames of removed agents a recorded run gave the rule to judge (its reach:
/// docs/simulator-reach.md 15k).
pub fn judged_frames(record: &Record) -> usize {
    judge_counting(record).1
}

fn judge_counting(record: &Record) -> (Vec<Violation>, usize) {
    let mut judged = 0;
    let mut out = Vec::new();
    // Per master incarnation: the agents it has told to shut down, and since when.
    let mut removed: BTreeMap<(String, u64), BTreeMap<String, Duration>> = BTreeMap::new();
    // The agents any master has told to shut down, and since when (R58).
    let mut told: BTreeMap<String, Duration> = BTreeMap::new();
    let mut owner: Vec<Option<String>> = vec![None; record.connections.len()];
    let mut waiting: Vec<VecDeque<Waiting>> = (0..record.connections.len())
        .map(|_| VecDeque::new())
        .collect();
    // One violation per master incarnation and agent is enough.
    let mut reported: BTreeSet<(String, u64, String)> = BTreeSet::new();
    let mut report = |out: &mut Vec<Violation>, key: (String, u64, String), violation| {
        if reported.insert(key) {
            out.push(violation);
        }
    };
    for event in &record.events {
        let c = event.connection;
        let Some(connection) = record.connections.get(c) else {
            continue;
        };
        let incarnation = (connection.master.clone(), connection.incarnation);
        match &event.what {
            What::Read { kind, agent } => {
                if *kind == "register_agent" {
                    owner[c] = None;
                    continue;
                }
                if agent.is_some() {
                    owner[c] = agent.clone();
                }
                let Some(agent) = agent.clone().or_else(|| owner[c].clone()) else {
                    continue;
                };
                // R58: a removal some master told the agent of was durable in the
                // registry first (docs/design.md D77), so every later leader knows it.
                let own = removed
                    .get(&incarnation)
                    .and_then(|agents| agents.get(&agent))
                    .copied();
                let known = own
                    .map(|t| (t, true))
                    .or(told.get(&agent).map(|t| (*t, false)));
                if let Some((since, itself)) = known {
                    judged += 1;
                    waiting[c].push_back(Waiting {
                        time: event.time,
                        kind,
                        agent,
                        since,
                        itself,
                    });
                }
            }
            What::Wrote { kind, agent } => {
                if let Some(frame) = waiting[c].pop_front() {
                    let refused = matches!(*kind, "shutdown_agent" | "not_leader");
                    let late = event.time > frame.time + ANSWER_WITHIN;
                    if !refused || late {
                        let what = if refused {
                            format!(
                                "answered it only {:.3}s later",
                                (event.time - frame.time).as_secs_f64()
                            )
                        } else {
                            format!("answered it with {kind}")
                        };
                        report(
                            &mut out,
                            (incarnation.0.clone(), incarnation.1, frame.agent.clone()),
                            violation(&incarnation, &frame, event.time, &what),
                        );
                    }
                }
                if matches!(*kind, "agent_registered" | "agent_reregistered") {
                    owner[c] = agent.clone();
                }
                if *kind == "shutdown_agent" {
                    if let Some(agent) = owner[c].clone() {
                        told.entry(agent.clone()).or_insert(event.time);
                        removed
                            .entry(incarnation.clone())
                            .or_default()
                            .entry(agent)
                            .or_insert(event.time);
                    }
                }
            }
            What::Closed => {
                for frame in std::mem::take(&mut waiting[c]) {
                    if event.time > frame.time + ANSWER_WITHIN {
                        let what = format!(
                            "did not answer it (the connection stayed open until {:.3}s)",
                            event.time.as_secs_f64()
                        );
                        let (key, late) = unanswered(&incarnation, &frame, &what);
                        report(&mut out, key, late);
                    }
                }
            }
        }
    }
    // Connections still open at the end of the run.
    for (c, frames) in waiting.into_iter().enumerate() {
        let connection = &record.connections[c];
        let incarnation = (connection.master.clone(), connection.incarnation);
        for frame in frames {
            if record.end > frame.time + ANSWER_WITHIN {
                let what = "did not answer it by the end of the run".to_owned();
                let (key, late) = unanswered(&incarnation, &frame, &what);
                report(&mut out, key, late);
            }
        }
    }
    out.sort_by_key(|v| v.time);
    (out, judged)
}

/// A frame of a removed agent left unanswered: its key (one report per master
/// incarnation and agent), and its violation, judged when its answer was due.
fn unanswered(
    incarnation: &(String, u64),
    frame: &Waiting,
    what: &str,
) -> ((String, u64, String), Violation) {
    (
        (incarnation.0.clone(), incarnation.1, frame.agent.clone()),
        violation(incarnation, frame, frame.time + ANSWER_WITHIN, what),
    )
}

fn violation(
    (master, incarnation): &(String, u64),
    frame: &Waiting,
    time: Duration,
    what: &str,
) -> Violation {
    let since = frame.since.as_secs_f64();
    let (told, rule) = if frame.itself {
        (
            format!("told agent {} to shut down at {since:.3}s", frame.agent),
            "R55",
        )
    } else {
        (
            format!(
                "had not told agent {} to shut down itself, but a master had at {since:.3}s (the removal durable in the registry first)",
                frame.agent
            ),
            "R58",
        )
    };
    Violation {
        time,
        oracle: "removed_agent",
        message: format!(
            "{master} (incarnation {incarnation}) {told}, then read its {} at {:.3}s and {what}: a removed agent's every frame is answered ShutdownAgent (R6, {rule})",
            frame.kind,
            frame.time.as_secs_f64(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::master_wire::{Connection, Event};

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn read(ms: u64, connection: usize, kind: &'static str, agent: Option<&str>) -> Event {
        Event {
            time: at(ms),
            connection,
            what: What::Read {
                kind,
                agent: agent.map(str::to_owned),
            },
        }
    }

    fn wrote(ms: u64, connection: usize, kind: &'static str, agent: Option<&str>) -> Event {
        Event {
            time: at(ms),
            connection,
            what: What::Wrote {
                kind,
                agent: agent.map(str::to_owned),
            },
        }
    }

    fn record(connections: usize, events: Vec<Event>, end_ms: u64) -> Record {
        Record {
            connections: (0..connections)
                .map(|_| Connection {
                    master: "master1".into(),
                    incarnation: 1,
                })
                .collect(),
            events,
            end: at(end_ms),
        }
    }

    /// Agent `a` registered on connection 0, removed (the ShutdownAgent written), then
    /// its late pong: answered or not.
    fn late_pong(answer: Option<(u64, &'static str)>) -> Record {
        let mut events = vec![
            read(0, 0, "register_agent", None),
            wrote(0, 0, "agent_registered", Some("a")),
            read(4_000, 0, "pong", None),
            wrote(20_000, 0, "shutdown_agent", None),
            read(30_000, 0, "pong", None),
        ];
        if let Some((ms, kind)) = answer {
            events.push(wrote(ms, 0, kind, None));
        }
        record(1, events, 60_000)
    }

    #[test]
    fn a_late_pong_answered_at_once_holds() {
        assert!(judge(&late_pong(Some((30_000, "shutdown_agent")))).is_empty());
        assert!(judge(&late_pong(Some((30_005, "not_leader")))).is_empty());
    }

    #[test]
    fn a_late_pong_left_unanswered_is_caught() {
        let caught = judge(&late_pong(None));
        assert_eq!(caught.len(), 1, "{caught:?}");
        assert_eq!(caught[0].time, at(31_000));
        assert!(caught[0].message.contains("read its pong at 30.000s"));
    }

    #[test]
    fn a_wrong_or_late_answer_is_caught() {
        assert!(judge(&late_pong(Some((30_000, "agent_reregistered"))))[0]
            .message
            .contains("answered it with agent_reregistered"));
        assert!(judge(&late_pong(Some((32_000, "shutdown_agent"))))[0]
            .message
            .contains("answered it only 2.000s later"));
    }

    #[test]
    fn a_connection_that_ends_before_the_answer_excuses_it() {
        let mut record = late_pong(None);
        record.events.push(Event {
            time: at(30_000),
            connection: 0,
            what: What::Closed,
        });
        assert!(judge(&record).is_empty());
        // A frame just before the end of the run is not judged.
        let mut record = late_pong(None);
        record.end = at(30_500);
        assert!(judge(&record).is_empty());
    }

    #[test]
    fn frames_before_the_removal_are_not_judged_and_later_leaders_inherit_it() {
        // The pong read before the ShutdownAgent: the master may have handled it first.
        let record = record(
            1,
            vec![
                wrote(0, 0, "agent_registered", Some("a")),
                read(19_000, 0, "pong", None),
                wrote(20_000, 0, "shutdown_agent", None),
            ],
            60_000,
        );
        assert!(judge(&record).is_empty());
        // Another incarnation of the master knows the removal from the registry (R58):
        // it must not ping the removed agent as a recovering one.
        let mut record = record_two_incarnations();
        let caught = judge(&record);
        assert_eq!(caught.len(), 1, "{caught:?}");
        assert!(caught[0].message.contains("(R6, R58)"), "{caught:?}");
        assert!(caught[0].message.contains("had not told agent a"));
        record.connections[1].incarnation = 1;
        let caught = judge(&record);
        assert_eq!(caught.len(), 1);
        assert!(caught[0].message.contains("(R6, R55)"), "{caught:?}");
        // Answered ShutdownAgent by the later incarnation: holds.
        let mut record = record_two_incarnations();
        record.events[3] = wrote(30_000, 1, "shutdown_agent", None);
        assert!(judge(&record).is_empty());
    }

    fn record_two_incarnations() -> Record {
        Record {
            connections: vec![
                Connection {
                    master: "master1".into(),
                    incarnation: 1,
                },
                Connection {
                    master: "master1".into(),
                    incarnation: 2,
                },
            ],
            events: vec![
                wrote(0, 0, "agent_registered", Some("a")),
                wrote(20_000, 0, "shutdown_agent", None),
                read(30_000, 1, "agent_recovering", Some("a")),
                wrote(30_000, 1, "ping", None),
            ],
            end: at(60_000),
        }
    }

    #[test]
    fn a_frame_naming_the_agent_on_another_connection_is_judged_and_a_new_agent_is_not() {
        let record = record(
            2,
            vec![
                wrote(0, 0, "agent_registered", Some("a")),
                wrote(20_000, 0, "shutdown_agent", None),
                read(30_000, 1, "reregister_agent", Some("a")),
                wrote(30_000, 1, "agent_reregistered", Some("a")),
                // A registration as a new agent on the first connection.
                read(31_000, 0, "register_agent", None),
                wrote(31_000, 0, "agent_registered", Some("b")),
                read(35_000, 0, "pong", None),
            ],
            60_000,
        );
        let caught = judge(&record);
        assert_eq!(caught.len(), 1, "{caught:?}");
        assert!(caught[0].message.contains("read its reregister_agent"));
    }
}
