//! The master binary names flag combinations that remove live agents (src/flag_checks.rs)
//! in a warning at start, and stays quiet with the defaults.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The master's stderr lines up to its "listening"/"leading" line (or 10 s).
fn start_lines(flags: &[&str]) -> Vec<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_revenant"))
        .args(["master", "--listen", "127.0.0.1:0"])
        .args(flags)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start revenant master");
    let stderr = child.stderr.take().expect("stderr");
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = receive.recv_timeout(Duration::from_secs(10)) {
        let started = line.contains("listening") || line.contains("leading");
        lines.push(line);
        if started {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

#[test]
fn short_timeouts_are_named_at_start() {
    let lines = start_lines(&[
        "--agent-reregister-timeout",
        "30secs",
        "--agent-ping-timeout",
        "1secs",
        "--max-agent-ping-timeouts",
        "3",
    ]);
    let warnings: Vec<&String> = lines.iter().filter(|l| l.contains("WARN")).collect();
    assert!(
        warnings
            .iter()
            .any(|l| l.contains("--agent-reregister-timeout 30s is no longer than")),
        "{lines:#?}"
    );
    assert!(
        warnings
            .iter()
            .any(|l| l.contains("--agent-ping-timeout 1s x --max-agent-ping-timeouts 3 = 3s")),
        "{lines:#?}"
    );
}

/// The defaults draw no warning about the flags; the one warning is that TLS is off
/// (docs/security.md SEC7), said once.
#[test]
fn the_defaults_start_without_a_warning() {
    let lines = start_lines(&[]);
    assert!(!lines.is_empty(), "the master said nothing");
    let warnings: Vec<&String> = lines.iter().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{lines:#?}");
    assert!(
        warnings[0].contains(revenant::tls::PLAINTEXT_WARNING),
        "{lines:#?}"
    );
}
