//! The master's handlers on their effects, without a runtime, a network or a clock
//! (docs/design.md D37-D43): each test feeds the core events with a chosen time and
//! leadership and reads what it asks the driver to do.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use tokio::time::Instant;

use super::effects::{Effect, Leadership, Now};
use super::{AgentPhase, Master, MasterConfig};
use crate::ids::{AgentId, FrameworkId};
use crate::os::Random;
use crate::proto::envelope::Body;
use crate::proto::{self, TaskState};
use crate::registry::Registry;
use crate::wire::ConnectionId;

/// Ids from a counter: the n-th id drawn is `...-0000000n`.
struct Counter(Cell<u64>);

impl Random for Counter {
    fn fill(&self, buffer: &mut [u8]) {
        self.0.set(self.0.get() + 1);
        let bytes = self.0.get().to_le_bytes();
        for (i, byte) in buffer.iter_mut().enumerate() {
            *byte = bytes[i % 8];
        }
    }
}

fn leader() -> Leadership {
    Leadership {
        leading: true,
        leader: String::new(),
        epoch: 7,
    }
}

struct Harness {
    master: Master,
    start: Instant,
}

impl Harness {
    /// A master elected at time 0 (its first tick).
    fn new() -> Harness {
        #[allow(clippy::disallowed_methods)] // any instant will do: only differences count
        let start = Instant::now();
        let now = Now {
            at: start,
            wall_seconds: 1_000.0,
        };
        let mut master = Master::new(
            MasterConfig::new("master:5050".into()),
            Registry::in_memory(),
            Rc::new(Counter(Cell::new(0))),
            now,
        );
        let effects = master.on_tick(now, true, leader());
        assert!(effects.is_empty(), "an election alone does nothing outside");
        Harness { master, start }
    }

    fn at(&self, seconds: u64) -> Now {
        Now {
            at: self.start + Duration::from_secs(seconds),
            wall_seconds: 1_000.0 + seconds as f64,
        }
    }

    fn connect(&mut self, id: u64, peer: &str) -> ConnectionId {
        let connection = ConnectionId(id);
        let effects = self.master.on_accepted(self.at(0), connection, peer);
        assert!(effects.is_empty());
        connection
    }

    fn message(&mut self, seconds: u64, connection: ConnectionId, body: Body) -> Vec<Effect> {
        let effects = self
            .master
            .on_message(self.at(seconds), leader(), connection, body);
        self.record(effects)
    }

    fn tick(&mut self, seconds: u64) -> Vec<Effect> {
        let effects = self.master.on_tick(self.at(seconds), true, leader());
        self.record(effects)
    }

    /// Makes the registry writes among `effects` as the driver does (docs/design.md
    /// D77) and returns the others, in order.
    fn record(&mut self, effects: Vec<Effect>) -> Vec<Effect> {
        let mut rest = Vec::new();
        for effect in effects {
            match effect {
                Effect::Record(write) => self.master.registry.write(write).expect("in memory"),
                other => rest.push(other),
            }
        }
        rest
    }

    /// Registers an agent at `host:5051` on a new connection; returns its id.
    fn register_agent(&mut self, connection: u64, host: &str) -> (ConnectionId, AgentId) {
        let connection = self.connect(connection, &format!("{host}:40000"));
        let effects = self.message(0, connection, register_agent(host));
        let [Effect::Send {
            to,
            body: Body::AgentRegistered(answer),
        }] = effects.as_slice()
        else {
            panic!("expected one AgentRegistered, got {effects:?}");
        };
        assert_eq!(*to, connection);
        (connection, AgentId::new(answer.agent_id.clone()))
    }

    /// Registers a framework on a new connection; returns its id.
    fn register_framework(&mut self, connection: u64) -> (ConnectionId, FrameworkId) {
        let connection = self.connect(connection, "scheduler:40001");
        let effects = self.message(
            0,
            connection,
            Body::RegisterFramework(proto::RegisterFramework {
                info: Some(proto::FrameworkInfo {
                    name: "web".into(),
                    failover_timeout_seconds: 60.0,
                    ..Default::default()
                }),
            }),
        );
        let [Effect::Send {
            body: Body::FrameworkRegistered(answer),
            ..
        }] = effects.as_slice()
        else {
            panic!("expected one FrameworkRegistered, got {effects:?}");
        };
        assert_eq!(
            answer.leader_epoch, 7,
            "the answer carries the leader's epoch"
        );
        (connection, FrameworkId::new(answer.framework_id.clone()))
    }
}

fn register_agent(host: &str) -> Body {
    Body::RegisterAgent(proto::RegisterAgent {
        info: Some(proto::AgentInfo {
            hostname: host.into(),
            port: 5051,
            resources: vec![proto::Resource {
                name: "cpus".into(),
                scalar: 4.0,
                ..Default::default()
            }],
            ..Default::default()
        }),
    })
}

fn submit(framework: &FrameworkId, task: &str) -> Body {
    Body::SubmitTask(proto::SubmitTask {
        framework_id: framework.to_string(),
        task: Some(proto::TaskInfo {
            task_id: task.into(),
            resources: vec![proto::Resource {
                name: "cpus".into(),
                scalar: 1.0,
                ..Default::default()
            }],
            ..Default::default()
        }),
    })
}

/// The messages sent, in order, with their connection.
fn sent(effects: &[Effect]) -> Vec<(ConnectionId, &Body)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { to, body } => Some((*to, body)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_master_that_does_not_lead_answers_not_leader() {
    let mut h = Harness::new();
    let connection = h.connect(1, "agent1:40000");
    let follower = Leadership {
        leading: false,
        leader: "master2:5050".into(),
        epoch: 0,
    };
    let effects = h
        .master
        .on_message(h.at(0), follower, connection, register_agent("agent1"));
    let [Effect::Send {
        to,
        body: Body::NotLeader(answer),
    }] = effects.as_slice()
    else {
        panic!("expected NotLeader, got {effects:?}");
    };
    assert_eq!(*to, connection);
    assert_eq!(answer.leader, "master2:5050");
    assert!(h.master.agents.is_empty(), "nothing was admitted");
}

#[test]
fn registration_admits_the_agent_durably_and_answers_its_id() {
    let mut h = Harness::new();
    let (_, agent) = h.register_agent(1, "agent1");
    assert_eq!(
        agent.as_str(),
        "agent-00000001",
        "the id comes from the random seam"
    );
    assert_eq!(
        h.master.registry.agents().len(),
        1,
        "admitted in the registry"
    );
    assert_eq!(h.master.agents[&agent].phase, AgentPhase::Connected);
}

#[test]
fn a_retried_registration_gets_the_same_id_again() {
    let mut h = Harness::new();
    let (connection, agent) = h.register_agent(1, "agent1");
    let effects = h.message(1, connection, register_agent("agent1"));
    let [Effect::Send {
        body: Body::AgentRegistered(answer),
        ..
    }] = effects.as_slice()
    else {
        panic!("expected AgentRegistered, got {effects:?}");
    };
    assert_eq!(answer.agent_id, agent.as_str());
    assert_eq!(h.master.agents.len(), 1, "not a second agent");
}

#[test]
fn a_new_agent_at_a_known_address_replaces_the_old_one() {
    let mut h = Harness::new();
    let (old_connection, old) = h.register_agent(1, "agent1");
    let connection = h.connect(2, "agent1:40002");
    let effects = h.message(1, connection, register_agent("agent1"));
    let sent = sent(&effects);
    assert!(
        matches!(sent.as_slice(), [(c, Body::ShutdownAgent(_)), (n, Body::AgentRegistered(_))] if *c == old_connection && *n == connection),
        "the old agent is told to shut down before the new one hears its id: {sent:?}"
    );
    assert!(h.master.registry.is_removed(old.as_str()));
}

#[test]
fn a_removed_agent_that_re_registers_is_told_to_shut_down() {
    let mut h = Harness::new();
    let (connection, agent) = h.register_agent(1, "agent1");
    h.message(
        1,
        connection,
        Body::UnregisterAgent(proto::UnregisterAgent {
            agent_id: agent.to_string(),
        }),
    );
    let again = h.connect(2, "agent1:40002");
    let effects = h.message(
        2,
        again,
        Body::ReregisterAgent(proto::ReregisterAgent {
            info: Some(proto::AgentInfo {
                id: agent.to_string(),
                hostname: "agent1".into(),
                port: 5051,
                ..Default::default()
            }),
            ..Default::default()
        }),
    );
    assert!(
        matches!(sent(&effects).as_slice(), [(c, Body::ShutdownAgent(_))] if *c == again),
        "{effects:?}"
    );
    assert_eq!(h.master.agents[&agent].phase, AgentPhase::Removed);
}

#[test]
fn a_task_is_placed_on_the_registered_agent() {
    let mut h = Harness::new();
    let (agent_connection, agent) = h.register_agent(1, "agent1");
    let (scheduler, framework) = h.register_framework(2);
    let effects = h.message(1, scheduler, submit(&framework, "t1"));
    let sent = sent(&effects);
    let [(to, Body::RunTask(run))] = sent.as_slice() else {
        panic!("expected RunTask, got {sent:?}");
    };
    assert_eq!(*to, agent_connection);
    assert_eq!(
        run.task.as_ref().map(|t| t.agent_id.as_str()),
        Some(agent.as_str())
    );
}

#[test]
fn an_agent_that_stops_answering_pings_is_removed_and_its_tasks_lost() {
    let mut h = Harness::new();
    let (agent_connection, agent) = h.register_agent(1, "agent1");
    let (scheduler, framework) = h.register_framework(2);
    h.message(1, scheduler, submit(&framework, "t1"));
    let timeout = h.master.config.agent_ping_timeout.as_secs();
    let max = u64::from(h.master.config.max_agent_ping_timeouts);
    // Every round pings both; neither answers.
    let mut seconds = 0;
    for round in 1..=max {
        seconds = round * timeout;
        let effects = h.tick(seconds);
        assert!(
            sent(&effects)
                .iter()
                .any(|(to, body)| *to == agent_connection && matches!(body, Body::Ping(_))),
            "round {round} pings the agent: {effects:?}"
        );
        // The framework answers its heartbeats.
        h.message(seconds, scheduler, Body::Pong(proto::Pong { sequence: 0 }));
    }
    let effects = h.tick(seconds + timeout);
    let sent = sent(&effects);
    let shutdown = sent
        .iter()
        .position(|(to, body)| *to == agent_connection && matches!(body, Body::ShutdownAgent(_)));
    let lost = sent.iter().position(|(to, body)| {
        *to == scheduler
            && matches!(body, Body::StatusUpdate(m) if m.update.as_ref().and_then(|u| u.status.as_ref()).is_some_and(|s| s.state() == TaskState::TaskLost))
    });
    assert!(
        shutdown.is_some() && lost.is_some(),
        "unreachable agent: told to shut down, its task reported lost: {sent:?}"
    );
    assert_eq!(h.master.agents[&agent].phase, AgentPhase::Removed);
    assert!(h.master.registry.is_removed(agent.as_str()));
}

#[test]
fn a_kill_for_a_disconnected_agent_is_resent_when_it_re_registers() {
    let mut h = Harness::new();
    let (agent_connection, agent) = h.register_agent(1, "agent1");
    let (scheduler, framework) = h.register_framework(2);
    h.message(1, scheduler, submit(&framework, "t1"));
    assert!(h.master.on_closed(h.at(2), agent_connection).is_empty());
    assert_eq!(h.master.agents[&agent].phase, AgentPhase::Disconnected);
    let kill = Body::KillTask(proto::KillTask {
        framework_id: framework.to_string(),
        task_id: "t1".into(),
    });
    assert!(
        sent(&h.message(3, scheduler, kill)).is_empty(),
        "kept for its return"
    );
    let again = h.connect(3, "agent1:40003");
    let effects = h.message(
        4,
        again,
        Body::ReregisterAgent(proto::ReregisterAgent {
            info: Some(proto::AgentInfo {
                id: agent.to_string(),
                hostname: "agent1".into(),
                port: 5051,
                ..Default::default()
            }),
            tasks: vec![proto::TaskReport {
                task_id: "t1".into(),
                framework_id: framework.to_string(),
                executor_id: "t1".into(),
                state: TaskState::TaskRunning as i32,
            }],
            ..Default::default()
        }),
    );
    let sent = sent(&effects);
    assert!(
        matches!(sent.as_slice(), [(a, Body::AgentReregistered(_)), (k, Body::KillTask(kill))] if *a == again && *k == again && kill.task_id == "t1"),
        "{sent:?}"
    );
}

#[test]
fn a_disconnected_agent_that_does_not_re_register_in_time_is_removed() {
    let mut h = Harness::new();
    let (agent_connection, agent) = h.register_agent(1, "agent1");
    h.master.on_closed(h.at(1), agent_connection);
    let timeout = h.master.config.agent_reregister_timeout.as_secs();
    h.tick(timeout);
    assert_eq!(h.master.agents[&agent].phase, AgentPhase::Disconnected);
    h.tick(timeout + 1);
    assert_eq!(h.master.agents[&agent].phase, AgentPhase::Removed);
}

#[test]
fn a_scheduler_failing_over_closes_the_previous_connection() {
    let mut h = Harness::new();
    let (old, framework) = h.register_framework(1);
    let connection = h.connect(2, "scheduler:40002");
    let effects = h.message(
        1,
        connection,
        Body::RegisterFramework(proto::RegisterFramework {
            info: Some(proto::FrameworkInfo {
                id: framework.to_string(),
                name: "web".into(),
                ..Default::default()
            }),
        }),
    );
    assert!(
        matches!(effects.as_slice(), [Effect::Send { to, body: Body::FrameworkRegistered(_) }, Effect::Close { connection: c }] if *to == connection && *c == old),
        "{effects:?}"
    );
    assert!(!h.master.connections_in_use().contains(&old));
}

#[test]
fn too_many_unidentified_connections_close_the_oldest() {
    let mut h = Harness::new();
    let max = crate::wire::UNIDENTIFIED_CONNECTIONS_MAX as u64;
    for id in 1..=max {
        h.connect(id, "nobody:1");
    }
    let effects = h
        .master
        .on_accepted(h.at(0), ConnectionId(max + 1), "nobody:1");
    assert!(
        matches!(effects.as_slice(), [Effect::Close { connection }] if *connection == ConnectionId(1)),
        "{effects:?}"
    );
}

#[test]
fn stepping_down_forgets_everything_and_closes_every_connection() {
    let mut h = Harness::new();
    let (agent_connection, _) = h.register_agent(1, "agent1");
    let (scheduler, _) = h.register_framework(2);
    let effects = h.master.on_tick(h.at(1), false, Leadership::default());
    let closed: Vec<ConnectionId> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Close { connection } => Some(*connection),
            _ => None,
        })
        .collect();
    assert_eq!(closed, vec![agent_connection, scheduler]);
    assert!(h.master.agents.is_empty() && h.master.frameworks.is_empty());
    assert!(h.master.connections_in_use().is_empty());
}

#[test]
fn http_state_is_answered_on_its_connection() {
    let mut h = Harness::new();
    h.register_agent(1, "agent1");
    let connection = h.connect(2, "curl:1");
    let effects = h.master.on_http(h.at(1), leader(), connection, "/state");
    let [Effect::Respond {
        connection: to,
        response,
    }] = effects.as_slice()
    else {
        panic!("expected a response, got {effects:?}");
    };
    assert_eq!(*to, connection);
    assert!(
        response.body.contains("agent-00000001"),
        "{}",
        response.body
    );
}

#[test]
fn an_acknowledgement_is_forwarded_to_the_agent_only_while_it_is_connected() {
    let mut h = Harness::new();
    let (agent_connection, agent) = h.register_agent(1, "agent1");
    let (scheduler, framework) = h.register_framework(2);
    let ack = Body::Acknowledgement(proto::Acknowledgement {
        agent_id: agent.to_string(),
        framework_id: framework.to_string(),
        task_id: "t1".into(),
        uuid: vec![1],
    });
    let effects = h.message(1, scheduler, ack.clone());
    assert!(
        matches!(sent(&effects).as_slice(), [(to, Body::Acknowledgement(_))] if *to == agent_connection)
    );
    h.master.on_closed(h.at(2), agent_connection);
    assert!(h.message(3, scheduler, ack).is_empty(), "dropped");
}

/// docs/security.md SEC43: a master elected with a registry that names a framework's
/// principal refuses, at once, a registration with its id under another principal, even
/// while its agents may still re-register (no waiting: the registry already knows).
#[test]
fn a_new_leader_refuses_another_principal_for_a_framework_its_registry_knows() {
    #[allow(clippy::disallowed_methods)] // any instant will do: only differences count
    let start = Instant::now();
    let now = Now {
        at: start,
        wall_seconds: 1_000.0,
    };
    let mut registry = Registry::in_memory();
    registry
        .admit(&proto::AgentInfo {
            id: "agent-1".into(),
            hostname: "agent1".into(),
            port: 5051,
            ..Default::default()
        })
        .expect("admit");
    registry
        .record_framework("framework-1", None)
        .expect("record");
    let mut master = Master::new(
        MasterConfig::new("master:5050".into()),
        registry,
        Rc::new(Counter(Cell::new(0))),
        now,
    );
    master.on_tick(now, true, leader());
    let rogue = ConnectionId(1);
    master.on_accepted(
        now,
        rogue,
        &crate::tls::peer_with_principal("rogue", "rogue:1"),
    );
    let effects = master.on_message(
        now,
        leader(),
        rogue,
        Body::RegisterFramework(proto::RegisterFramework {
            info: Some(proto::FrameworkInfo {
                id: "framework-1".into(),
                name: "web".into(),
                ..Default::default()
            }),
        }),
    );
    let [Effect::Send {
        to,
        body: Body::FrameworkError(error),
    }] = effects.as_slice()
    else {
        panic!("expected one FrameworkError, got {effects:?}");
    };
    assert_eq!(*to, rogue);
    assert!(
        error.message.contains("no principal") && error.message.contains("'rogue'"),
        "{}",
        error.message
    );
    assert!(master.frameworks.is_empty(), "nothing changes");
    assert!(master.deferred_registrations.is_empty(), "not deferred");
}

/// SEC43: a framework's first registration is in the registry before it hears it is
/// registered.
#[test]
fn a_framework_registration_records_its_principal_in_the_registry() {
    let mut h = Harness::new();
    let (_, framework) = h.register_framework(1);
    assert_eq!(
        h.master.registry.framework_principal(framework.as_str()),
        Some(None)
    );
}

#[test]
fn a_registry_change_is_an_effect_before_anyone_hears_of_it() {
    let mut h = Harness::new();
    let connection = h.connect(1, "agent1:40000");
    let effects = h
        .master
        .on_message(h.at(0), leader(), connection, register_agent("agent1"));
    let [Effect::Record(write), Effect::Send {
        body: Body::AgentRegistered(answer),
        ..
    }] = effects.as_slice()
    else {
        panic!("expected the admission's write, then the answer; got {effects:?}");
    };
    // The core counts the agent admitted at once; the write is the driver's (D77).
    assert_eq!(h.master.registry.agents().len(), 1);
    assert!(format!("{write:?}").contains(&answer.agent_id));
    // A retried registration changes nothing in the registry: no write.
    let effects = h
        .master
        .on_message(h.at(1), leader(), connection, register_agent("agent1"));
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::Record(_))),
        "{effects:?}"
    );
}
