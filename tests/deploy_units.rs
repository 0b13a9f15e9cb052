//! The systemd units under `deploy/` pass `systemd-analyze verify` (with their
//! `ExecStart` pointed at the binary under test, since verify checks that the command
//! exists), without a single warning, and keep the settings the README promises.
//! `systemd-analyze` is installed with apt-get when missing; only when that is impossible
//! does the test skip, saying so.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::{Command, Stdio};

const SKIP: &str = "SKIPPED: systemd-analyze is missing and apt-get cannot install it";

fn systemd_analyze() -> Result<(), String> {
    let present = || {
        Command::new("systemd-analyze")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if present() {
        return Ok(());
    }
    for args in [
        &["update", "-q"][..],
        &["install", "-y", "-q", "systemd"][..],
    ] {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .map_err(|error| format!("apt-get: {error}"))?;
    }
    if present() {
        Ok(())
    } else {
        Err("apt-get install -y systemd did not provide systemd-analyze".into())
    }
}

fn unit(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn units_verify_cleanly() {
    if let Err(reason) = systemd_analyze() {
        eprintln!("{SKIP}: {reason}");
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut paths = Vec::new();
    for name in ["revenant-master.service", "revenant-agent.service"] {
        let text = unit(name).replace("/usr/local/bin/revenant", env!("CARGO_BIN_EXE_revenant"));
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write unit");
        paths.push(path);
    }
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .output()
        .expect("run systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {:?}\n{stderr}",
        output.status
    );
}

/// A broken unit is caught: the check above is not one that cannot fail.
#[test]
fn a_broken_unit_is_reported() {
    if systemd_analyze().is_err() {
        eprintln!("{SKIP}");
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let text = unit("revenant-agent.service")
        .replace("/usr/local/bin/revenant", env!("CARGO_BIN_EXE_revenant"))
        .replace("KillMode=process", "KillMode=sometimes");
    let path = dir.path().join("revenant-agent.service");
    std::fs::write(&path, text).expect("write unit");
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("kill mode"), "{stderr}");
}

#[test]
fn units_keep_what_the_readme_promises() {
    let agent = unit("revenant-agent.service");
    assert!(
        agent.lines().any(|l| l.trim() == "KillMode=process"),
        "executors must survive `systemctl restart` of the agent"
    );
    let master = unit("revenant-master.service");
    assert!(master.contains("revenant master --zk "), "{master}");
    assert!(master.lines().any(|l| l.trim() == "Restart=always"));
}
