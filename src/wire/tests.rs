use super::*;
use crate::proto::{Ping, SubmitTask, TaskInfo};

#[tokio::test]
async fn round_trip_and_limits() {
    let bytes = encode(Body::Ping(Ping { sequence: 7 })).unwrap();
    let mut reader = bytes.as_slice();
    let body = read_envelope(&mut reader).await.unwrap();
    assert!(matches!(body, Body::Ping(Ping { sequence: 7 })));

    let oversized = ((FRAME_BYTES_MAX + 1) as u32).to_le_bytes();
    let mut reader = &oversized[..];
    assert!(matches!(
        read_envelope(&mut reader).await,
        Err(WireError::Oversized(_))
    ));

    let mut garbage = 3u32.to_le_bytes().to_vec();
    garbage.extend_from_slice(&[0xff, 0xff, 0xff]);
    let mut reader = garbage.as_slice();
    assert!(matches!(
        read_envelope(&mut reader).await,
        Err(WireError::Malformed(_))
    ));
}

/// A clock whose sleeps last a hundredth of what they are asked for, so that the
/// frame deadline can be tested in a tenth of a second.
struct FastClock;
impl crate::os::Clock for FastClock {
    fn now(&self) -> tokio::time::Instant {
        unreachable!("not used by the reader")
    }
    fn wall(&self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH
    }
    fn sleep(&self, duration: Duration) -> crate::os::LocalFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration / 100))
    }
}

fn big_submission(command_bytes: usize) -> Body {
    Body::SubmitTask(SubmitTask {
        framework_id: "f".into(),
        task: Some(TaskInfo {
            task_id: "t".into(),
            command: Some(crate::proto::CommandInfo {
                value: "x".repeat(command_bytes),
                ..Default::default()
            }),
            ..Default::default()
        }),
    })
}

/// SEC1: a declared length over the maximum is refused as soon as the length is
/// read, without waiting for (or allocating) the body; a declared length within it
/// whose bytes never come ends the connection, not the process.
#[tokio::test]
async fn oversized_declared_length_is_refused_before_any_body() {
    let (mut client, server) = tokio::io::duplex(64);
    client
        .write_all(&u32::MAX.to_le_bytes())
        .await
        .expect("write");
    // The client keeps the connection open and sends nothing more.
    let mut reader = tokio::io::BufReader::new(server);
    let result = read_next(&mut reader, false, &FastClock).await;
    assert!(
        matches!(result, Err(WireError::Oversized(n)) if n == u32::MAX as usize),
        "{result:?}"
    );

    let mut truncated = (FRAME_BYTES_MAX as u32).to_le_bytes().to_vec();
    truncated.extend_from_slice(&[1, 2, 3]);
    let result = read_envelope(&mut truncated.as_slice()).await;
    assert!(matches!(result, Err(WireError::Io(_))), "{result:?}");
}

/// SEC2: bytes that are not an envelope, or an envelope without a body, are
/// malformed; so is a frame of zero bytes.
#[tokio::test]
async fn malformed_frames_are_errors() {
    for frame in [
        vec![0xff, 0xff, 0xff],
        vec![0x0a, 0x05, 0x01],
        vec![
            0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
        ],
        vec![],
    ] {
        let mut bytes = (frame.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&frame);
        let mut reader = tokio::io::BufReader::new(bytes.as_slice());
        let result = read_next(&mut reader, false, &FastClock).await;
        assert!(
            matches!(result, Err(WireError::Malformed(_) | WireError::Empty)),
            "{frame:?}: {result:?}"
        );
        assert!(result.unwrap_err().is_bad_input());
    }
}

/// SEC3: an HTTP request that starts and stalls is cut off at the frame deadline; a
/// whole one is answered by `hyper` with what the role said.
#[tokio::test]
async fn a_stalled_http_request_is_cut_off_and_a_whole_one_answered() {
    let (mut client, server) = tokio::io::duplex(64);
    client.write_all(b"GET /sta").await.expect("write");
    let answer = |_| async { crate::http::Response::new(200, "text/plain", "x") };
    let result = tokio::time::timeout(
        Duration::from_secs(5),
        serve_http(server, &FastClock, answer),
    )
    .await
    .expect("cut off long before 5 s");
    assert!(matches!(result, Err(WireError::Stalled(_))), "{result:?}");
    drop(client);
    let (mut client, server) = tokio::io::duplex(4096);
    client
        .write_all(b"GET /state HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let answer = |path: String| async move { crate::http::Response::new(200, "text/plain", path) };
    let (result, text) = tokio::join!(serve_http(server, &FastClock, answer), async {
        let mut text = String::new();
        client.read_to_string(&mut text).await.expect("read");
        text
    });
    result.expect("served");
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.ends_with("/state"), "{text}");
    // A head over the limit is bad input.
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let long = format!(
        "GET /{} HTTP/1.1\r\n\r\n",
        "a".repeat(HTTP_HEAD_BYTES_MAX * 2)
    );
    client.write_all(long.as_bytes()).await.expect("write");
    let answer = |_| async { crate::http::Response::new(200, "text/plain", "x") };
    let result = serve_http(server, &FastClock, answer).await;
    assert!(
        result.as_ref().is_err_and(WireError::is_bad_input),
        "{result:?}"
    );
}

/// SEC3: a frame that starts and stalls is cut off at the frame deadline; an idle
/// connection with no frame started is not. A connection's first bytes `GET ` are
/// HTTP, for [`serve_http`].
#[tokio::test]
async fn a_stalled_partial_frame_is_cut_off_and_an_idle_peer_is_not() {
    let (mut client, server) = tokio::io::duplex(64);
    client.write_all(b"GET /sta").await.expect("write");
    let mut reader = tokio::io::BufReader::new(server);
    let read = read_next(&mut reader, true, &FastClock).await;
    assert!(matches!(read, Ok(Read::Http)), "{read:?}");
    assert_eq!(reader.buffer(), b"/sta");
    drop(client);
    for partial in [vec![10u8, 0], vec![10, 0, 0, 0, 0x08]] {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(&partial).await.expect("write");
        let mut reader = tokio::io::BufReader::new(server);
        let result = tokio::time::timeout(
            Duration::from_secs(5),
            read_next(&mut reader, true, &FastClock),
        )
        .await
        .expect("cut off long before 5 s");
        assert!(
            matches!(result, Err(WireError::Stalled(_))),
            "{partial:?}: {result:?}"
        );
        drop(client);
    }
    let (client, server) = tokio::io::duplex(64);
    let mut reader = tokio::io::BufReader::new(server);
    let idle = tokio::time::timeout(
        FRAME_DEADLINE / 100 * 3,
        read_next(&mut reader, false, &FastClock),
    )
    .await;
    assert!(idle.is_err(), "an idle peer was cut off: {idle:?}");
    drop(client);
}

/// SEC5: an envelope over the frame maximum is an error where it is made, never a
/// panic; `check_fits` and `encode` agree on the boundary.
#[test]
fn an_envelope_too_large_is_an_error() {
    let fits = |n| check_fits(&big_submission(n)).is_ok();
    assert!(fits(FRAME_BYTES_MAX - 64));
    assert!(!fits(FRAME_BYTES_MAX));
    // The largest command that fits, found by bisection, encodes to exactly the
    // frame maximum or just under, and one byte more is refused by `encode`.
    let (mut low, mut high) = (FRAME_BYTES_MAX - 64, FRAME_BYTES_MAX);
    while high - low > 1 {
        let middle = (low + high) / 2;
        if fits(middle) {
            low = middle;
        } else {
            high = middle;
        }
    }
    let bytes = encode(big_submission(low)).expect("fits");
    assert!(bytes.len() - 4 <= FRAME_BYTES_MAX);
    assert_eq!(bytes.len(), framed_len(&big_submission(low)));
    let error = encode(big_submission(high)).unwrap_err();
    assert!(
        error.to_string().contains("submit_task envelope of"),
        "{error}"
    );
}

/// SEC2, SEC5 through `serve`: an oversized message is refused by `send` and the
/// connection goes on carrying what follows; the peer's malformed frame closes the
/// connection with the reason.
#[tokio::test]
async fn serve_refuses_oversized_sends_and_closes_on_malformed_input() {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let (client, server) = tokio::io::duplex(1 << 16);
            let mut tasks = JoinSet::new();
            let (inbox, mut events) = mpsc::unbounded_channel::<Incoming>();
            let link = Link {
                id: ConnectionId(1),
                peer: "test-peer".into(),
                clock: Rc::new(FastClock),
            };
            let outbox = serve(Box::new(server), link, &mut tasks, inbox, |i| i);
            assert!(!outbox.send(big_submission(FRAME_BYTES_MAX)));
            assert!(outbox.send(Body::Ping(Ping { sequence: 9 })));
            let (mut client_reader, mut client_writer) = tokio::io::split(client);
            let body = read_envelope(&mut client_reader).await.expect("the ping");
            assert!(matches!(body, Body::Ping(Ping { sequence: 9 })));

            let mut garbage = 3u32.to_le_bytes().to_vec();
            garbage.extend_from_slice(&[0xff, 0xff, 0xff]);
            client_writer.write_all(&garbage).await.unwrap();
            match events.recv().await {
                Some(Incoming::Closed(ConnectionId(1), reason)) => {
                    assert!(reason.starts_with("malformed envelope"), "{reason}")
                }
                other => panic!("expected the connection closed, got {other:?}"),
            }
        })
        .await;
}
