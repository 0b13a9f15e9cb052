//! docs/security.md SEC1-SEC5 on the built binaries: a master and an agent on loopback
//! face an oversized frame, a malformed one, a partial frame that stalls, a flood of
//! connections that never say who they are, and a task too large for a frame. Each is
//! refused as the rules say, with a logged reason naming the peer, and the processes go
//! on serving.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod live;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use live::*;
use revenant::proto::{self, envelope::Body};
use revenant::wire::{self, FRAME_BYTES_MAX, FRAME_DEADLINE, UNIDENTIFIED_CONNECTIONS_MAX};

const SHORT: Duration = Duration::from_secs(10);

fn connect(address: &str) -> TcpStream {
    let stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    stream
}

/// Whether the peer has closed `stream` (reads end or fail), waiting at most `timeout`.
fn closed_within(stream: &mut TcpStream, timeout: Duration) -> bool {
    let start = Instant::now();
    let mut buffer = [0u8; 1024];
    while start.elapsed() < timeout {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

fn send(stream: &mut TcpStream, body: Body) {
    stream
        .write_all(&wire::encode(body).expect("fits"))
        .expect("write");
}

/// Reads one envelope, waiting at most `timeout`.
fn receive(stream: &mut TcpStream, timeout: Duration) -> Body {
    stream.set_read_timeout(Some(timeout)).expect("timeout");
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).expect("a frame's length");
    let mut data = vec![0u8; u32::from_le_bytes(length) as usize];
    stream.read_exact(&mut data).expect("a frame's body");
    wire::decode(&data).expect("an envelope")
}

/// An HTTP GET answered with 200.
fn http_ok(address: &str, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(SHORT));
    if write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}

/// The master's log lines for bad input, with the peer and reason each names.
fn bad_input_lines(cluster: &Cluster, id: ProcId) -> Vec<String> {
    cluster.log_lines(id, "closing a connection: bad input from the peer")
}

#[test]
fn master_and_agent_refuse_hostile_input_and_go_on() {
    let mut cluster = Cluster::new();
    let (master_id, master) = cluster.master("master");
    let agent_address = free_address();
    let work_dir = cluster.work_dir("work");
    let agent = cluster.agent(
        "agent",
        &master,
        &agent_address,
        &work_dir,
        FAST_AGENT_FLAGS,
    );
    cluster.wait_log(agent, "registered with master", SHORT);

    // An idle connection that never sends anything: not cut off by the frame deadline.
    let mut idle = connect(&master);

    // SEC1: a declared length over the maximum closes the connection at once.
    let mut oversized = connect(&master);
    let local = oversized.local_addr().expect("local address").to_string();
    oversized
        .write_all(&((FRAME_BYTES_MAX as u32) + 1).to_le_bytes())
        .expect("write");
    assert!(closed_within(&mut oversized, SHORT), "oversized frame kept");
    wait_until("the oversized frame logged", SHORT, || {
        bad_input_lines(&cluster, master_id)
            .iter()
            .any(|l| l.contains(&local) && l.contains("exceeds the maximum"))
    });

    // SEC2: bytes that are not an envelope close the connection, the peer named.
    for (name, address, id) in [
        ("master", &master, master_id),
        ("agent", &agent_address, agent),
    ] {
        let mut malformed = connect(address);
        let local = malformed.local_addr().expect("local address").to_string();
        malformed
            .write_all(&[3, 0, 0, 0, 0xff, 0xff, 0xff])
            .expect("write");
        assert!(
            closed_within(&mut malformed, SHORT),
            "{name} kept a malformed frame"
        );
        wait_until(&format!("{name} logs the malformed frame"), SHORT, || {
            bad_input_lines(&cluster, id)
                .iter()
                .any(|l| l.contains(&local) && l.contains("malformed envelope"))
        });
    }

    // SEC3: a frame that starts and stalls is cut off at the frame deadline, not before.
    let mut stalled = connect(&master);
    let started = Instant::now();
    stalled.write_all(&[100, 0, 0, 0, 0x08]).expect("write");
    assert!(
        closed_within(&mut stalled, FRAME_DEADLINE + SHORT),
        "a stalled frame was never cut off"
    );
    let waited = started.elapsed();
    assert!(
        waited >= FRAME_DEADLINE - Duration::from_millis(500),
        "cut off after {waited:?}, before the deadline"
    );
    assert!(
        !closed_within(&mut idle, Duration::from_millis(300)),
        "the idle connection was cut off"
    );

    // The master still serves: HTTP on the same port, and the agent's task flow below.
    assert!(
        http_ok(&master, "/state"),
        "the master stopped answering /state"
    );

    // SEC5: a task whose RunTask would not fit in a frame is refused by the master with
    // TASK_ERROR naming the size; no agent hears of it.
    let mut framework = connect(&master);
    send(
        &mut framework,
        Body::RegisterFramework(proto::RegisterFramework {
            info: Some(proto::FrameworkInfo {
                name: "too-large".into(),
                user: "nobody".into(),
                failover_timeout_seconds: 60.0,
                ..Default::default()
            }),
        }),
    );
    let framework_id = match receive(&mut framework, SHORT) {
        Body::FrameworkRegistered(registered) => registered.framework_id,
        other => panic!("expected the registration, got {other:?}"),
    };
    // The submission fits; the RunTask it makes (the task id again as executor id and in
    // the executor's name, the framework's info) does not.
    let task_id = "t".repeat(2000);
    let mut task = proto::TaskInfo {
        task_id: task_id.clone(),
        command: Some(proto::CommandInfo {
            value: String::new(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let submission = |task: &proto::TaskInfo| {
        Body::SubmitTask(proto::SubmitTask {
            framework_id: framework_id.clone(),
            task: Some(task.clone()),
        })
    };
    let room = FRAME_BYTES_MAX - wire::framed_len(&submission(&task));
    task.command.as_mut().expect("a command").value = "x".repeat(room - 16);
    wire::check_fits(&submission(&task)).expect("the submission fits");
    send(&mut framework, submission(&task));
    let deadline = Instant::now() + SHORT;
    let refusal = loop {
        assert!(Instant::now() < deadline, "no answer to the large task");
        match receive(&mut framework, SHORT) {
            Body::StatusUpdate(proto::StatusUpdateMessage {
                update: Some(update),
            }) => break update,
            _ => continue,
        }
    };
    let status = refusal.status.expect("a status");
    assert_eq!(status.task_id, task_id);
    assert_eq!(status.state(), proto::TaskState::TaskError);
    assert_eq!(status.reason(), proto::TaskReason::ReasonTaskInvalid);
    assert!(
        status.message.contains("exceeds the frame maximum"),
        "{}",
        status.message
    );
    assert!(
        !cluster.log(agent).contains("tttttttttt"),
        "the agent heard of the refused task:\n{}",
        cluster.log(agent)
    );

    // SEC4: a flood of connections that never say who they are. The oldest unidentified
    // connections are closed to make room; the master keeps serving new ones.
    let mut flood: Vec<TcpStream> = (0..UNIDENTIFIED_CONNECTIONS_MAX + 8)
        .map(|_| connect(&master))
        .collect();
    wait_until("the master to close the oldest", SHORT, || {
        cluster.log_has(
            master_id,
            "too many unidentified connections: the oldest closed",
        )
    });
    assert!(
        closed_within(&mut idle, SHORT),
        "the oldest unidentified connection was kept"
    );
    assert!(
        closed_within(&mut flood[0], SHORT),
        "the flood's oldest kept"
    );
    let newest = flood.last_mut().expect("a connection");
    assert!(
        !closed_within(newest, Duration::from_millis(300)),
        "the newest connection was closed"
    );
    assert!(
        http_ok(&master, "/state"),
        "the master stopped answering after the flood"
    );
    // The registered framework is identified: the flood did not close it.
    assert!(
        !closed_within(&mut framework, Duration::from_millis(300)),
        "the flood closed an identified framework"
    );

    // Nothing panicked, and both processes still run.
    assert!(
        cluster.exited(master_id).is_none(),
        "{}",
        cluster.log(master_id)
    );
    assert!(cluster.exited(agent).is_none(), "{}", cluster.log(agent));
    for id in [master_id, agent] {
        assert!(!cluster.log(id).contains("panicked"), "{}", cluster.log(id));
    }
}
