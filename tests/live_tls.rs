//! docs/security.md SEC7-SEC13 on the built binaries: a cluster whose master, agent,
//! executor, `submit` and `tasks` all run with mutual TLS works end to end (a task
//! survives a `kill -9` of its agent), and clients without a certificate, with one from
//! another CA, or with an expired one are refused in the handshake, the master logging
//! why and naming the peer. Certificates are made here with `rcgen`.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod live;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use live::certs::{tls_flags, Ca, Identity};
use live::*;
use revenant::proto::{self, envelope::Body};

const SHORT: Duration = Duration::from_secs(10);
const LONG: Duration = Duration::from_secs(30);

/// The master's log lines refusing a handshake from `peer` (a `host:port`).
fn refusals(cluster: &Cluster, master: ProcId, peer: &str) -> Vec<String> {
    cluster
        .log_lines(master, "TLS handshake refused: connection closed")
        .into_iter()
        .filter(|line| log_field(line, "peer").as_deref() == Some(peer))
        .collect()
}

/// A TLS client in the test itself, presenting `identity` (or no certificate at all),
/// trusting `ca` for the server: it connects, sends a framework registration and reads.
/// Returns the local address it connected from and whether any byte came back.
fn raw_tls_client(
    address: &str,
    ca: &Path,
    identity: Option<&(PathBuf, PathBuf)>,
) -> (String, bool) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let ca_pem = fs::read(ca).expect("read CA");
    for cert in rustls_pemfile::certs(&mut ca_pem.as_slice()) {
        roots.add(cert.expect("CA pem")).expect("CA");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = rustls_pemfile::certs(&mut fs::read(cert).expect("cert").as_slice())
                .collect::<Result<Vec<_>, _>>()
                .expect("cert pem");
            let key = rustls_pemfile::private_key(&mut fs::read(key).expect("key").as_slice())
                .expect("key pem")
                .expect("a key");
            builder.with_client_auth_cert(certs, key).expect("identity")
        }
    };
    let name = revenant::tls::server_name(address).expect("server name");
    let connection = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let local = stream.local_addr().expect("local address").to_string();
    let mut tls = rustls::StreamOwned::new(connection, stream);
    let register = Body::RegisterFramework(proto::RegisterFramework {
        info: Some(proto::FrameworkInfo {
            name: "rogue".into(),
            ..Default::default()
        }),
    });
    let _ = tls.write_all(&revenant::wire::encode(register).expect("fits"));
    let _ = tls.flush();
    let mut buffer = [0u8; 64];
    let answered = matches!(tls.read(&mut buffer), Ok(n) if n > 0);
    (local, answered)
}

/// A TLS cluster end to end: registration by certificate principal, a task that
/// survives a `kill -9` of its agent (the executor re-registers over TLS with the
/// restarted agent), updates reaching `submit`, and `tasks` reading `/state` over TLS.
#[test]
fn a_tls_cluster_works_end_to_end() {
    let mut cluster = Cluster::new();
    let certs = cluster.path().join("certs");
    fs::create_dir(&certs).expect("certs dir");
    let ca = Ca::new("revenant-test-ca");
    let ca_path = ca.write(&certs, "ca");
    let master_id = ca.issue(&certs, "master", false);
    let agent_id = ca.issue(&certs, "agent-1", false);
    let operator_id = ca.issue(&certs, "operator", false);

    let address = free_address();
    let mut args = strings(&["master", "--listen", &address]);
    args.extend(tls_flags(&master_id, &ca_path));
    let master = cluster.spawn("master", &args);
    cluster.wait_listening(master, &address);
    assert!(
        !cluster.log_has(master, revenant::tls::PLAINTEXT_WARNING),
        "a TLS master warned it runs in clear text"
    );

    let agent_address = free_address();
    let work_dir = cluster.work_dir("work");
    let mut agent_flags: Vec<String> = FAST_AGENT_FLAGS.iter().map(|s| s.to_string()).collect();
    agent_flags.extend(tls_flags(&agent_id, &ca_path));
    let agent_flags: Vec<&str> = agent_flags.iter().map(String::as_str).collect();
    let agent = cluster.agent("agent-1", &address, &agent_address, &work_dir, &agent_flags);
    cluster.wait_log(agent, "registered with master", SHORT);
    let principal = cluster.wait_log(master, "registered by the certificate's principal", SHORT);
    assert_eq!(
        log_field(&principal, "principal").as_deref(),
        Some("agent-1")
    );

    let mut submit_args = strings(&[
        "submit",
        "--master",
        &address,
        "--command",
        "sleep 3",
        "--task-id",
        "t-tls",
    ]);
    submit_args.extend(tls_flags(&operator_id, &ca_path));
    let submit = cluster.spawn("submit", &submit_args);
    cluster.wait_state(submit, "TASK_RUNNING", SHORT);
    assert!(
        cluster
            .log_lines(master, "registered by the certificate's principal")
            .iter()
            .any(
                |line| log_field(line, "principal").as_deref() == Some("operator")
                    && log_field(line, "role").as_deref() == Some("framework")
            ),
        "the framework's principal was not logged:\n{}",
        cluster.log(master)
    );
    let forked = cluster.wait_forked_pid(&work_dir, SHORT);

    cluster.kill9(agent);
    assert!(forked.process.alive(), "the executor died with the agent");
    let agent = cluster.agent("agent-2", &address, &agent_address, &work_dir, &agent_flags);
    cluster.wait_log(agent, "executor re-registered", SHORT);
    cluster.wait_log(agent, "re-registered with master", SHORT);
    assert!(
        !cluster.log_has(agent, "executor launched"),
        "the restarted agent launched a new executor"
    );

    let status = cluster.wait_exit(submit, LONG);
    assert!(status.success(), "submit failed:\n{}", cluster.dump());
    let states = cluster.task_states(submit);
    assert_eq!(states.last().map(String::as_str), Some("TASK_FINISHED"));
    assert_eq!(states.iter().filter(|s| *s == "TASK_RUNNING").count(), 1);

    // `tasks` reads the master's /state over TLS on the same listener.
    let framework = cluster
        .stdout(submit)
        .lines()
        .find_map(|line| {
            line.strip_prefix("framework ")
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned)
        })
        .expect("submit printed its framework id");
    let mut tasks_args = strings(&["tasks", "--master", &address, "--framework-id", &framework]);
    tasks_args.extend(tls_flags(&operator_id, &ca_path));
    let tasks = cluster.spawn("tasks", &tasks_args);
    assert!(
        cluster.wait_exit(tasks, SHORT).success(),
        "{}",
        cluster.log(tasks)
    );
    assert!(
        cluster.stdout(tasks).contains("task t-tls TASK_FINISHED"),
        "tasks over TLS: {}",
        cluster.stdout(tasks)
    );
    // Without a certificate, /state is not served: the same TLS listener refuses it.
    let mut plain = TcpStream::connect(&address).expect("connect");
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let local = plain.local_addr().expect("local").to_string();
    let _ = plain.write_all(b"GET /state HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"),
        "a plain HTTP request was answered"
    );
    let mut refused = Vec::new();
    wait_until("the plain HTTP request refused", SHORT, || {
        refused = refusals(&cluster, master, &local);
        !refused.is_empty()
    });
}

/// A client without a certificate, with one from another CA, with an expired one, or
/// not speaking TLS at all is refused in the handshake: nothing it sent is read (no
/// framework registers), and the master logs why, naming the peer.
#[test]
fn clients_without_a_good_certificate_are_refused() {
    let mut cluster = Cluster::new();
    let certs = cluster.path().join("certs");
    fs::create_dir(&certs).expect("certs dir");
    let ca = Ca::new("revenant-test-ca");
    let ca_path = ca.write(&certs, "ca");
    let master_id = ca.issue(&certs, "master", false);
    let expired_id = ca.issue(&certs, "expired-operator", true);
    let other_ca = Ca::new("another-ca");
    let other_dir = certs.join("other");
    fs::create_dir(&other_dir).expect("other dir");
    let stranger_id = other_ca.issue(&other_dir, "stranger", false);

    let address = free_address();
    let mut args = strings(&["master", "--listen", &address]);
    args.extend(tls_flags(&master_id, &ca_path));
    let master = cluster.spawn("master", &args);
    cluster.wait_listening(master, &address);

    let cases: [(&str, Option<&Identity>, &str); 3] = [
        ("no certificate", None, "no certificates"),
        ("another CA", Some(&stranger_id), "UnknownIssuer"),
        ("expired", Some(&expired_id), "expired"),
    ];
    for (case, identity, reason) in cases {
        let (local, answered) = raw_tls_client(&address, &ca_path, identity);
        assert!(!answered, "{case}: the master answered");
        let mut refused = Vec::new();
        wait_until(&format!("{case}: the refusal logged"), SHORT, || {
            refused = refusals(&cluster, master, &local);
            !refused.is_empty()
        });
        // The reason is the last field and has spaces: all of the line after it.
        let logged = refused[0].split(" reason=").nth(1).unwrap_or_default();
        assert!(
            logged.to_lowercase().contains(&reason.to_lowercase()),
            "{case}: reason {logged:?} does not say {reason:?}: {}",
            refused[0]
        );
    }

    // A `submit` without TLS flags speaks plain frames to a TLS master: refused too.
    let submit = cluster.submit("plain-submit", &address, "true", "t-plain");
    // The warning is written at start; wait for it rather than race the process.
    wait_until("the plain submit's TLS-off warning", SHORT, || {
        cluster
            .log(submit)
            .contains(revenant::tls::PLAINTEXT_WARNING)
    });
    wait_until("the plain submit refused", SHORT, || {
        cluster
            .log_lines(master, "TLS handshake refused: connection closed")
            .len()
            > 3
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !cluster.log_has(master, "framework registered"),
        "a refused client registered a framework:\n{}",
        cluster.log(master)
    );
}

/// Half the TLS flags is an error naming the missing ones; a key file that holds no
/// key is an error naming the file.
#[test]
fn bad_tls_flags_are_clear_errors() {
    let mut cluster = Cluster::new();
    let certs = cluster.path().join("certs");
    fs::create_dir(&certs).expect("certs dir");
    let ca = Ca::new("revenant-test-ca");
    let ca_path = ca.write(&certs, "ca");
    let master_id = ca.issue(&certs, "master", false);
    let address = free_address();

    let half = cluster.spawn(
        "half",
        &strings(&[
            "master",
            "--listen",
            &address,
            "--tls-cert",
            &master_id.0.display().to_string(),
        ]),
    );
    assert_eq!(cluster.wait_exit(half, SHORT).code(), Some(2));
    assert!(
        cluster.log(half).contains("missing --tls-key, --tls-ca"),
        "{}",
        cluster.log(half)
    );

    let mut args = strings(&["master", "--listen", &address]);
    args.extend(tls_flags(&(master_id.0.clone(), ca_path.clone()), &ca_path));
    let no_key = cluster.spawn("no-key", &args);
    assert_eq!(cluster.wait_exit(no_key, SHORT).code(), Some(2));
    assert!(
        cluster.log(no_key).contains("holds no PEM private key"),
        "{}",
        cluster.log(no_key)
    );
}
