//! docs/security.md SEC14-SEC19 on the built binaries: every executor gets a secret in
//! its environment, never in its argv, the agent's log, `/state` or the checkpoint (only
//! its SHA-256 verifier is in `forked.pid`); a rogue local process that knows the
//! framework, executor and run ids cannot register or re-register as the executor, send
//! updates for its task or receive its tasks, before and after a `kill -9` of the agent,
//! while the real executor re-registers and its task finishes.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod live;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use live::*;
use revenant::proto::{self, envelope::Body};
use revenant::security::executor_secret::{Verifier, ENV_SECRET};

const SHORT: Duration = Duration::from_secs(10);
const LONG: Duration = Duration::from_secs(30);

/// The ids a local process can read from the agent's work directory: framework,
/// executor and run (container), from `.../frameworks/F/executors/E/runs/C/pids/forked.pid`.
fn ids_from_path(forked: &Path) -> (String, String, String) {
    let parts: Vec<String> = forked
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let after = |name: &str| {
        let index = parts.iter().rposition(|p| p == name).expect(name);
        parts[index + 1].clone()
    };
    (after("frameworks"), after("executors"), after("runs"))
}

/// A NUL-separated `/proc/PID/environ` or `cmdline`, as strings.
fn proc_strings(pid: u32, file: &str) -> Vec<String> {
    fs::read(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// Connects as a rogue, sends `body` then an update for `task`, and reports every
/// envelope the agent sent back before closing the connection (within 3 s).
fn rogue(address: &str, body: Body, framework: &str, executor: &str, task: &str) -> Vec<Body> {
    let mut stream = TcpStream::connect(address).expect("connect to the agent");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let forged = Body::StatusUpdate(proto::StatusUpdateMessage {
        update: Some(proto::StatusUpdate {
            framework_id: framework.into(),
            executor_id: executor.into(),
            status: Some(proto::TaskStatus {
                task_id: task.into(),
                state: proto::TaskState::TaskFailed as i32,
                source: proto::TaskSource::SourceExecutor as i32,
                message: "forged by a rogue".into(),
                executor_id: executor.into(),
                ..Default::default()
            }),
            uuid: vec![7; 16],
            latest_state: proto::TaskState::TaskFailed as i32,
            ..Default::default()
        }),
    });
    let mut bytes = revenant::wire::encode(body).expect("fits");
    bytes.extend(revenant::wire::encode(forged).expect("fits"));
    let _ = stream.write_all(&bytes);
    let mut received = Vec::new();
    let mut buffer = Vec::new();
    let started = Instant::now();
    let mut chunk = [0u8; 4096];
    while started.elapsed() < Duration::from_secs(3) {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    while buffer.len() >= 4 {
        let length = u32::from_le_bytes(buffer[..4].try_into().unwrap()) as usize;
        if buffer.len() < 4 + length {
            break;
        }
        received.push(revenant::wire::decode(&buffer[4..4 + length]).expect("an envelope"));
        buffer.drain(..4 + length);
    }
    received
}

const REFUSED: &str =
    "executor registration refused: its secret does not verify; connection closed";

/// Nothing the agent sent the rogue registers it or hands it a task.
fn assert_not_registered(received: &[Body]) {
    assert!(
        received
            .iter()
            .all(|body| matches!(body, Body::ShutdownExecutor(_))),
        "the agent answered a rogue with more than a shutdown: {received:?}"
    );
}

fn register(framework: &str, executor: &str, container: &str, secret: &str) -> Body {
    Body::RegisterExecutor(proto::RegisterExecutor {
        framework_id: framework.into(),
        executor_id: executor.into(),
        container_id: container.into(),
        secret: secret.into(),
        ..Default::default()
    })
}

fn reregister(framework: &str, executor: &str, container: &str, secret: &str) -> Body {
    Body::ReregisterExecutor(proto::ReregisterExecutor {
        framework_id: framework.into(),
        executor_id: executor.into(),
        container_id: container.into(),
        secret: secret.into(),
        ..Default::default()
    })
}

fn http_get(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(SHORT)).expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

#[test]
fn a_rogue_local_process_cannot_pose_as_an_executor() {
    let mut cluster = Cluster::new();
    let (master_id, master) = cluster.master("master");
    let address = free_address();
    let work_dir = cluster.work_dir("work");
    let mut flags = FAST_AGENT_FLAGS.to_vec();
    flags.extend_from_slice(&["--recovery-timeout", "15secs"]);
    let agent = cluster.agent("agent-1", &master, &address, &work_dir, &flags);
    cluster.wait_log(agent, "registered with master", SHORT);

    let submit = cluster.submit("submit", &master, "sleep 6", "t-secret");
    cluster.wait_state(submit, "TASK_RUNNING", SHORT);
    let forked = cluster.wait_forked_pid(&work_dir, SHORT);
    let (framework, executor, container) = ids_from_path(&forked.path);

    // SEC14, SEC15: the secret is in the executor's environment only.
    let pid = forked.process.pid;
    let secret = proc_strings(pid, "environ")
        .into_iter()
        .find_map(|entry| {
            entry
                .strip_prefix(&format!("{ENV_SECRET}="))
                .map(str::to_owned)
        })
        .expect("the executor's environment holds its secret");
    assert_eq!(secret.len(), 64, "a 32-byte secret in hex");
    assert!(
        !proc_strings(pid, "cmdline")
            .iter()
            .any(|arg| arg.contains(&secret)),
        "the secret is in the executor's argv"
    );
    let checkpoint = fs::read_to_string(&forked.path).expect("forked.pid");
    assert!(!checkpoint.contains(&secret), "the secret is checkpointed");
    assert_eq!(
        checkpoint.split_whitespace().nth(3),
        Some(Verifier::of(&secret).as_str()),
        "forked.pid holds the secret's verifier"
    );
    for (what, text) in [
        ("the agent's /state", http_get(&address, "/state")),
        ("the master's /state", http_get(&master, "/state")),
        ("the agent's log", cluster.log(agent)),
    ] {
        assert!(!text.contains(&secret), "the secret shows in {what}");
    }

    // SEC16: a rogue with the ids and no secret, or a wrong one, is never registered:
    // it gets no ExecutorRegistered and no task (a registration the agent would refuse
    // anyway gets the usual ShutdownExecutor on the rogue's own connection), and its
    // forged update is dropped.
    for body in [
        register(&framework, &executor, &container, ""),
        register(&framework, &executor, &container, &"0".repeat(64)),
        reregister(&framework, &executor, &container, ""),
        reregister(&framework, &executor, &container, "guess"),
    ] {
        let received = rogue(&address, body, &framework, &executor, "t-secret");
        assert_not_registered(&received);
    }
    // The re-registrations (which an executor whose connection broke may send while the
    // agent runs) were refused by the secret check.
    assert_eq!(
        cluster.log_lines(agent, REFUSED).len(),
        2,
        "{}",
        cluster.log(agent)
    );

    // After a restart, the real executor is recognised through the checkpointed
    // verifier, and a rogue still is not.
    cluster.kill9(agent);
    assert!(forked.process.alive(), "the executor died with the agent");
    let agent = cluster.agent("agent-2", &master, &address, &work_dir, &flags);
    cluster.wait_listening(agent, &address);
    let received = rogue(
        &address,
        reregister(&framework, &executor, &container, ""),
        &framework,
        &executor,
        "t-secret",
    );
    assert_not_registered(&received);
    cluster.wait_log(agent, "executor re-registered", SHORT);
    assert!(cluster.log_has(agent, REFUSED), "{}", cluster.log(agent));
    let received = rogue(
        &address,
        reregister(&framework, &executor, &container, &"f".repeat(64)),
        &framework,
        &executor,
        "t-secret",
    );
    assert_not_registered(&received);
    assert_eq!(
        cluster.log_lines(agent, REFUSED).len(),
        2,
        "{}",
        cluster.log(agent)
    );

    // The task ends as the real executor says, never as the rogue forged.
    let status = cluster.wait_exit(submit, LONG);
    assert!(status.success(), "submit failed:\n{}", cluster.dump());
    let states = cluster.task_states(submit);
    assert_eq!(
        states.last().map(String::as_str),
        Some("TASK_FINISHED"),
        "{states:?}"
    );
    assert!(
        !cluster.stdout(submit).contains("forged by a rogue"),
        "a forged update reached the framework: {}",
        cluster.stdout(submit)
    );
    let _ = master_id;
}
