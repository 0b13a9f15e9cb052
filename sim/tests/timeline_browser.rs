//! The timeline in a real browser: the timeline of a failing run (made on purpose by a
//! test-only breakage: the agent recovers across reboots) is loaded in Debian's headless
//! `chromium`; the DOM its script builds must hold a lane for every process of the run
//! and the oracle's violation, and a screenshot must be written (docs/failing-runs.md
//! F4–F8).
//!
//! Chromium is installed with apt-get when missing; only when that fails does the test
//! skip, printing SKIPPED and the reason.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // a real browser, real files

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use revenant::breakage::Breakage;
use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::scenario::Scenario;

const SKIP_MESSAGE: &str = "SKIPPED: chromium is not installed and apt-get cannot install it";

static INSTALL: Mutex<Option<Result<PathBuf, String>>> = Mutex::new(None);

fn find_chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn apt_install() -> Result<PathBuf, String> {
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", "chromium"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
    };
    let output = install().map_err(|error| format!("apt-get: {error}"))?;
    if let (true, Some(found)) = (output.status.success(), find_chromium()) {
        return Ok(found);
    }
    let _ = Command::new("apt-get")
        .args(["update", "-q"])
        .stdin(Stdio::null())
        .output();
    let output = install().map_err(|error| format!("apt-get: {error}"))?;
    match (output.status.success(), find_chromium()) {
        (true, Some(found)) => Ok(found),
        _ => Err(format!(
            "apt-get install -y chromium failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    }
}

/// The browser, installed if needed (once per test binary).
fn chromium() -> Result<PathBuf, String> {
    let mut guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_none() {
        *guard = Some(find_chromium().map_or_else(apt_install, Ok));
    }
    guard.clone().expect("set above")
}

/// Runs headless chromium on `page` with `args`, killed after two minutes; its stdout.
fn headless(browser: &Path, profile: &Path, page: &Path, args: &[&str]) -> String {
    let out = profile.join("stdout");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            // Root in a container: chromium's sandbox cannot start there.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--window-size=1400,1000",
            "--virtual-time-budget=5000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            profile.join("profile").display()
        ))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within two minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::read_to_string(&out).unwrap_or_default()
}

#[test]
fn a_failing_runs_timeline_opens_in_headless_chromium() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/swarm_agent_machine.toml");
    let scenario = Scenario::load(&path).unwrap();
    let options = RunOptions {
        breakage: Breakage {
            ignore_boot_id: true,
            ..Breakage::default()
        },
        ..RunOptions::default()
    };
    let seed = (0..300)
        .find(|seed| {
            cluster::run(&scenario, *seed, &options)
                .violations
                .iter()
                .any(|v| v.oracle == "reboot")
        })
        .expect("the breakage is caught within 300 seeds");
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("timeline.html");
    let result = revenant_sim::timeline::write(&page, &scenario, seed, &options).unwrap();
    let plain = cluster::run(&scenario, seed, &options);
    assert_eq!(
        result.trace_hash, plain.trace_hash,
        "recording the messages does not change the run"
    );
    let html = std::fs::read_to_string(&page).unwrap();

    // Self-contained: nothing to fetch.
    for needle in [
        "<link",
        " src=",
        "@import",
        "url(",
        "fetch(",
        "XMLHttpRequest",
    ] {
        assert!(!html.contains(needle), "the page must not load '{needle}'");
    }
    assert_eq!(
        html.matches("http").count(),
        html.matches("http://www.w3.org/2000/svg").count(),
        "no address but the SVG namespace"
    );

    // Every process of the run has its lane.
    let observations = &result.observations;
    let mut lanes = vec!["sim".to_owned()];
    lanes.extend((1..=scenario.masters).map(|i| format!("master{i}")));
    lanes.extend(
        observations
            .history
            .agent_starts
            .iter()
            .map(|s| format!("{} #{}", cluster::agent_trace_host(s.agent), s.incarnation)),
    );
    lanes.extend(
        observations
            .history
            .processes
            .iter()
            .map(|p| format!("executor {}", p.executor_id)),
    );
    lanes.extend((1..=scenario.frameworks.max(1)).map(cluster::framework_host));
    assert!(
        observations.history.agent_starts.len() >= 2,
        "the reboot made a second agent incarnation"
    );
    let violation = result
        .violations
        .iter()
        .find(|v| v.oracle == "reboot")
        .expect("the run breaks the reboot oracle");

    let browser = match chromium() {
        Ok(browser) => browser,
        Err(reason) => {
            eprintln!("{SKIP_MESSAGE}: {reason}");
            return;
        }
    };
    let dom = headless(&browser, dir.path(), &page, &["--dump-dom"]);
    assert!(
        dom.contains("<svg id=\"timeline\""),
        "chromium dumped the page: {}",
        &dom[..dom.len().min(500)]
    );
    for lane in &lanes {
        assert!(
            dom.contains(&format!("data-lane=\"{lane}\"")),
            "the script drew no lane for {lane}"
        );
    }
    assert!(
        dom.contains("class=\"violation-mark\" id=\"violation-0\" data-oracle=\"reboot\""),
        "the script drew the violation"
    );
    assert!(dom.contains(&format!(
        "<li class=\"violation\" id=\"violation-item-0\" data-oracle=\"reboot\" data-time=\"{}\">",
        violation.time.as_micros()
    )));
    assert!(
        dom.contains("class=\"msg"),
        "the script drew message arrows"
    );
    assert!(dom.contains("class=\"mark-fault\""), "and fault marks");

    let shot = dir.path().join("timeline.png");
    headless(
        &browser,
        dir.path(),
        &page,
        &[&format!("--screenshot={}", shot.display())],
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(
        png.len() > 10_000,
        "with something drawn: {} bytes",
        png.len()
    );
    if let Ok(keep) = std::env::var("REVENANT_TIMELINE_SCREENSHOT") {
        std::fs::copy(&shot, keep).expect("copy the screenshot");
    }
}

/// The message log names the process at each end: with two agent processes on one
/// machine, each has its own messages with the master and with its executors, and
/// recording them leaves the run as it was.
#[test]
fn each_agent_process_on_a_machine_has_its_own_messages() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/multiple_agents_on_one_host.toml");
    let scenario = Scenario::load(&path).unwrap();
    let options = RunOptions::default();
    let (result, messages) = revenant_sim::timeline::record(&scenario, 0, &options);
    assert_eq!(
        result.trace_hash,
        cluster::run(&scenario, 0, &options).trace_hash
    );
    for agent in ["agent1", "agent1/2"] {
        for peer in ["master1", "executor "] {
            assert!(
                messages
                    .iter()
                    .any(|m| m.from == agent && m.to.starts_with(peer) && m.received.is_some()),
                "{agent} sent nothing to {peer}"
            );
            assert!(
                messages
                    .iter()
                    .any(|m| m.to == agent && m.from.starts_with(peer)),
                "{agent} received nothing from {peer}"
            );
        }
    }
}
