//! The master's handling of agent connections, driven over loopback TCP by hand-written
//! peers (a framework and raw agent connections speaking the wire protocol):
//! docs/recovery-rules.md R5 (a recovering agent is pinged, not timed out), R6 (a removed
//! agent's messages are refused with ShutdownAgent, never forwarded), R7 (status
//! updates only on the connection the agent is registered on) and R8 (a re-registration
//! on an agent's earlier connection is stale).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::time::Duration;

use revenant::master::{self, MasterConfig, Standalone};
use revenant::os::Env;
use revenant::proto::envelope::Body;
use revenant::proto::{
    AgentInfo, AgentRecovering, FrameworkInfo, Pong, RegisterAgent, RegisterFramework,
    ReregisterAgent, StatusUpdate, StatusUpdateMessage, TaskReport, TaskState, TaskStatus,
};
use revenant::wire::{read_envelope, write_envelope};
use tokio::net::TcpStream;

fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").to_string()
}

async fn connect(address: &str) -> TcpStream {
    for _ in 0..100 {
        if let Ok(stream) = TcpStream::connect(address).await {
            return stream;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("master at {address} never listened");
}

/// The next message on `stream` that is not a ping, within `wait`. Pings are answered
/// when `stream` is a framework's (frameworks here stay alive throughout); agent
/// connections leave them unanswered unless a test answers them itself.
async fn next(stream: &mut TcpStream, wait: Duration, answer_pings: bool) -> Option<Body> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, read_envelope(stream)).await {
            Ok(Ok(Body::Ping(ping))) => {
                if answer_pings {
                    let pong = Body::Pong(Pong {
                        sequence: ping.sequence,
                    });
                    write_envelope(stream, pong).await.ok()?;
                }
            }
            Ok(Ok(body)) => return Some(body),
            Ok(Err(_)) | Err(_) => return None,
        }
    }
}

async fn next_message(stream: &mut TcpStream, wait: Duration) -> Option<Body> {
    next(stream, wait, false).await
}

async fn framework_message(framework: &mut TcpStream, wait: Duration) -> Option<Body> {
    next(framework, wait, true).await
}

fn update(agent: &str, framework: &str, state: TaskState, uuid: u8) -> Body {
    Body::StatusUpdate(StatusUpdateMessage {
        update: Some(StatusUpdate {
            framework_id: framework.into(),
            executor_id: "t1".into(),
            agent_id: agent.into(),
            status: Some(TaskStatus {
                task_id: "t1".into(),
                state: state as i32,
                ..Default::default()
            }),
            uuid: vec![uuid; 16],
            latest_state: state as i32,
            ..Default::default()
        }),
    })
}

fn state_of(body: &Body) -> Option<TaskState> {
    match body {
        Body::StatusUpdate(StatusUpdateMessage { update: Some(u) }) => {
            u.status.as_ref().map(|s| s.state())
        }
        _ => None,
    }
}

async fn register_agent(address: &str) -> (TcpStream, String) {
    let mut agent = connect(address).await;
    let info = AgentInfo {
        hostname: "agent-host".into(),
        port: 5051,
        checkpoint: true,
        ..Default::default()
    };
    write_envelope(
        &mut agent,
        Body::RegisterAgent(RegisterAgent { info: Some(info) }),
    )
    .await
    .unwrap();
    let Some(Body::AgentRegistered(registered)) =
        next_message(&mut agent, Duration::from_secs(5)).await
    else {
        panic!("no AgentRegistered");
    };
    (agent, registered.agent_id)
}

async fn register_framework(address: &str) -> (TcpStream, String) {
    let mut framework = connect(address).await;
    let info = FrameworkInfo {
        name: "test".into(),
        checkpoint: true,
        ..Default::default()
    };
    write_envelope(
        &mut framework,
        Body::RegisterFramework(RegisterFramework { info: Some(info) }),
    )
    .await
    .unwrap();
    let Some(Body::FrameworkRegistered(registered)) =
        framework_message(&mut framework, Duration::from_secs(5)).await
    else {
        panic!("no FrameworkRegistered");
    };
    (framework, registered.framework_id)
}

fn with_master<F: std::future::Future<Output = ()>>(
    config: impl FnOnce(&mut MasterConfig),
    test: impl FnOnce(String) -> F,
) {
    let address = free_address();
    let mut master_config = MasterConfig::new(address.clone());
    config(&mut master_config);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let master = tokio::task::spawn_local(master::run(
            Env::real(),
            master_config,
            Box::new(Standalone),
        ));
        test(address).await;
        master.abort();
    });
}

/// R7: an update on a connection the agent did not register on is dropped; the same
/// update on the registered connection reaches the framework.
#[test]
fn status_updates_are_accepted_only_on_the_registered_connection() {
    with_master(
        |_| {},
        |address| async move {
            let (mut framework, framework_id) = register_framework(&address).await;
            let (mut agent, agent_id) = register_agent(&address).await;
            let mut stranger = connect(&address).await;
            write_envelope(
                &mut stranger,
                update(&agent_id, &framework_id, TaskState::TaskRunning, 1),
            )
            .await
            .unwrap();
            assert_eq!(
                framework_message(&mut framework, Duration::from_millis(500)).await,
                None,
                "an update on an unregistered connection reached the framework"
            );
            write_envelope(
                &mut agent,
                update(&agent_id, &framework_id, TaskState::TaskRunning, 1),
            )
            .await
            .unwrap();
            let forwarded = framework_message(&mut framework, Duration::from_secs(5)).await;
            assert_eq!(
                forwarded.as_ref().and_then(state_of),
                Some(TaskState::TaskRunning)
            );
        },
    );
}

/// R6: once the master removed an agent (here: it stopped answering pings), an update
/// it sends on its old connection is answered with ShutdownAgent and never forwarded;
/// the framework keeps the master's TASK_LOST.
#[test]
fn a_removed_agents_updates_are_refused() {
    with_master(
        |config| {
            config.agent_ping_timeout = Duration::from_millis(100);
            config.max_agent_ping_timeouts = 2;
        },
        |address| async move {
            let (mut framework, framework_id) = register_framework(&address).await;
            let (mut agent, agent_id) = register_agent(&address).await;
            write_envelope(
                &mut agent,
                update(&agent_id, &framework_id, TaskState::TaskRunning, 1),
            )
            .await
            .unwrap();
            let running = framework_message(&mut framework, Duration::from_secs(5)).await;
            assert_eq!(
                running.as_ref().and_then(state_of),
                Some(TaskState::TaskRunning)
            );
            // No pongs: removed, its task lost, and told to shut down.
            let lost = framework_message(&mut framework, Duration::from_secs(5)).await;
            assert_eq!(lost.as_ref().and_then(state_of), Some(TaskState::TaskLost));
            let shutdown = next_message(&mut agent, Duration::from_secs(5)).await;
            assert!(
                matches!(shutdown, Some(Body::ShutdownAgent(_))),
                "{shutdown:?}"
            );
            // The agent did not hear it (as if lost) and reports its task finished.
            write_envelope(
                &mut agent,
                update(&agent_id, &framework_id, TaskState::TaskFinished, 2),
            )
            .await
            .unwrap();
            let answer = next_message(&mut agent, Duration::from_secs(5)).await;
            assert!(matches!(answer, Some(Body::ShutdownAgent(_))), "{answer:?}");
            write_envelope(&mut agent, Body::Pong(Pong { sequence: 1 }))
                .await
                .unwrap();
            let answer = next_message(&mut agent, Duration::from_secs(5)).await;
            assert!(matches!(answer, Some(Body::ShutdownAgent(_))), "{answer:?}");
            assert_eq!(
                framework_message(&mut framework, Duration::from_millis(500)).await,
                None,
                "the removed agent's update reached the framework"
            );
        },
    );
}

/// R5: a known agent that says it is recovering on a new connection is pinged there and
/// kept while it answers, past both the ping budget and the re-registration timeout; a
/// removed agent that says so is told to shut down.
#[test]
fn a_recovering_agent_that_answers_pings_is_kept() {
    with_master(
        |config| {
            config.agent_ping_timeout = Duration::from_millis(100);
            config.max_agent_ping_timeouts = 2;
            config.agent_reregister_timeout = Duration::from_millis(300);
        },
        |address| async move {
            let (mut framework, framework_id) = register_framework(&address).await;
            let (mut agent, agent_id) = register_agent(&address).await;
            write_envelope(
                &mut agent,
                update(&agent_id, &framework_id, TaskState::TaskRunning, 1),
            )
            .await
            .unwrap();
            let running = framework_message(&mut framework, Duration::from_secs(5)).await;
            assert_eq!(
                running.as_ref().and_then(state_of),
                Some(TaskState::TaskRunning)
            );
            // The agent restarts: its old connection closes, a new one says it recovers.
            drop(agent);
            let mut recovering = connect(&address).await;
            write_envelope(
                &mut recovering,
                Body::AgentRecovering(AgentRecovering {
                    agent_id: agent_id.clone(),
                }),
            )
            .await
            .unwrap();
            // Answer every ping for well over the ping budget and the timeout (the
            // framework answering its own heartbeats meanwhile, and hearing nothing).
            let until = tokio::time::Instant::now() + Duration::from_millis(1500);
            let mut pings = 0;
            while tokio::time::Instant::now() < until {
                let read = read_envelope(&mut recovering);
                match tokio::time::timeout(Duration::from_millis(50), read).await {
                    Ok(Ok(Body::Ping(ping))) => {
                        pings += 1;
                        let pong = Body::Pong(Pong {
                            sequence: ping.sequence,
                        });
                        write_envelope(&mut recovering, pong).await.unwrap();
                    }
                    Ok(Ok(other)) => panic!("a recovering agent was sent {other:?}"),
                    Ok(Err(error)) => panic!("recovery connection failed: {error}"),
                    Err(_) => {}
                }
                assert_eq!(
                    framework_message(&mut framework, Duration::from_millis(10)).await,
                    None,
                    "the recovering agent's task was reported"
                );
            }
            assert!(pings >= 4, "only {pings} pings on the recovery connection");
            // It stops answering: removed after the ping budget, told on that connection.
            let answer = next_message(&mut recovering, Duration::from_secs(5)).await;
            assert!(matches!(answer, Some(Body::ShutdownAgent(_))), "{answer:?}");
            let lost = framework_message(&mut framework, Duration::from_secs(5)).await;
            assert_eq!(lost.as_ref().and_then(state_of), Some(TaskState::TaskLost));
            // Removed: saying it recovers again gets ShutdownAgent.
            let mut again = connect(&address).await;
            write_envelope(
                &mut again,
                Body::AgentRecovering(AgentRecovering { agent_id }),
            )
            .await
            .unwrap();
            let answer = next_message(&mut again, Duration::from_secs(5)).await;
            assert!(matches!(answer, Some(Body::ShutdownAgent(_))), "{answer:?}");
        },
    );
}

fn reregistration(agent: &str, framework: &str, state: TaskState) -> Body {
    Body::ReregisterAgent(ReregisterAgent {
        info: Some(AgentInfo {
            id: agent.into(),
            hostname: "agent-host".into(),
            port: 5051,
            checkpoint: true,
            ..Default::default()
        }),
        tasks: vec![TaskReport {
            task_id: "t1".into(),
            framework_id: framework.into(),
            executor_id: "t1".into(),
            state: state as i32,
        }],
        ..Default::default()
    })
}

/// R8: a re-registration that arrives late on a connection older than the one the agent
/// re-registered on (an earlier incarnation's, delayed in the network) is ignored: it is
/// not answered, its close does not disconnect the agent, and updates on the newest
/// connection still reach the framework.
#[test]
fn a_reregistration_on_an_earlier_connection_is_ignored() {
    with_master(
        |_| {},
        |address| async move {
            let (mut framework, framework_id) = register_framework(&address).await;
            let (agent, agent_id) = register_agent(&address).await;
            drop(agent);
            // The earlier incarnation's connection, then the restarted agent's.
            let mut earlier = connect(&address).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut newest = connect(&address).await;
            write_envelope(
                &mut newest,
                reregistration(&agent_id, &framework_id, TaskState::TaskRunning),
            )
            .await
            .unwrap();
            let answer = next_message(&mut newest, Duration::from_secs(5)).await;
            assert!(
                matches!(answer, Some(Body::AgentReregistered(_))),
                "{answer:?}"
            );
            write_envelope(
                &mut newest,
                update(&agent_id, &framework_id, TaskState::TaskFinished, 1),
            )
            .await
            .unwrap();
            let finished = framework_message(&mut framework, Duration::from_secs(5)).await;
            assert_eq!(
                finished.as_ref().and_then(state_of),
                Some(TaskState::TaskFinished)
            );
            // The earlier incarnation's re-registration, delivered late, then its close.
            write_envelope(
                &mut earlier,
                reregistration(&agent_id, &framework_id, TaskState::TaskRunning),
            )
            .await
            .unwrap();
            let answer = next_message(&mut earlier, Duration::from_millis(500)).await;
            assert_eq!(answer, None, "a stale re-registration was answered");
            drop(earlier);
            tokio::time::sleep(Duration::from_millis(200)).await;
            // The agent is still registered on its newest connection.
            write_envelope(
                &mut newest,
                update(&agent_id, &framework_id, TaskState::TaskFinished, 1),
            )
            .await
            .unwrap();
            let retried = framework_message(&mut framework, Duration::from_secs(5)).await;
            assert_eq!(
                retried.as_ref().and_then(state_of),
                Some(TaskState::TaskFinished),
                "the agent's newest connection stopped being its registered one"
            );
        },
    );
}
