//! Acceptance tests of the executor and directory lifecycle (docs/lifecycle-rules.md
//! rules 1 and 3) on the built `revenant` binary: a real master, agent and `submit` on
//! loopback, a real work directory, short flags so that each test takes a few seconds.
//! Each test owns its ports and temporary directory and kills every process it started
//! when it ends, also when it fails.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod live;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use live::*;

const SHORT: Duration = Duration::from_secs(10);

/// Rule 1: an executor that never registers is killed after
/// `--executor-registration-timeout`, and its task ends TASK_FAILED with reason
/// REASON_EXECUTOR_REGISTRATION_TIMEOUT. The executor that hangs at start is a
/// `--launcher-dir` whose `revenant` is a shell script that only sleeps: the agent
/// launches it as `<dir>/revenant executor`, and it never connects.
#[test]
fn executor_that_never_registers_is_killed_and_its_task_fails() {
    let mut cluster = Cluster::new();
    let (_, master) = cluster.master("master");
    let launcher = cluster.path().join("launcher");
    fs::create_dir_all(&launcher).expect("create the launcher directory");
    let script = launcher.join("revenant");
    fs::write(&script, "#!/bin/sh\nexec sleep 60\n").expect("write the hanging executor");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    let launcher = launcher.to_str().expect("utf-8 path").to_owned();
    let address = free_address();
    let work_dir = cluster.work_dir("work");
    let mut flags: Vec<&str> = FAST_AGENT_FLAGS.to_vec();
    flags.extend_from_slice(&["--executor-registration-timeout", "2secs", "--launcher-dir"]);
    flags.push(&launcher);
    let agent = cluster.agent("agent", &master, &address, &work_dir, &flags);
    cluster.wait_log(agent, "registered with master", SHORT);

    let submit = cluster.submit("submit", &master, "sleep 30", "t-hung");
    let forked = cluster.wait_forked_pid(&work_dir, SHORT);
    let launched = Instant::now();
    assert!(
        forked.process.alive(),
        "the hanging executor {forked:?} runs"
    );
    let status = cluster.wait_exit(submit, SHORT);
    assert!(status.success(), "submit exited {status:?}");
    let waited = launched.elapsed();
    let lines = cluster.task_lines(submit);
    let last = lines.last().cloned().unwrap_or_default();
    assert!(
        last.starts_with("task t-hung TASK_FAILED reason REASON_EXECUTOR_REGISTRATION_TIMEOUT"),
        "the task's last update: {lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("TASK_RUNNING")),
        "a task whose executor never registered never ran: {lines:#?}"
    );
    // Not before the timeout (less the time it took to see the pid file).
    assert!(
        waited >= Duration::from_millis(1500),
        "the task failed {waited:?} after the launch, before the 2 s timeout"
    );
    wait_until("the hanging executor to be killed", SHORT, || {
        !forked.process.alive()
    });
    assert!(
        cluster.log_has(agent, "executor did not register in time: destroying it"),
        "{}",
        cluster.log(agent)
    );
}

/// Rule 3: once a framework's last executor has completed, its meta directory and its
/// sandbox directory are scheduled for collection and gone from the disk `--gc-delay`
/// later (both are there when the framework has just finished). They may go sooner: the
/// agent's disk check collects early on a disk that is filling (Mesos' disk headroom),
/// and a test machine's disk is not empty.
#[test]
fn finished_framework_directories_are_collected_after_gc_delay() {
    let mut cluster = Cluster::new();
    let (_, master) = cluster.master("master");
    let address = free_address();
    let work_dir = cluster.work_dir("work");
    let mut flags: Vec<&str> = FAST_AGENT_FLAGS.to_vec();
    flags.extend_from_slice(&["--gc-delay", "3secs", "--disk-watch-interval", "1secs"]);
    let agent = cluster.agent("agent", &master, &address, &work_dir, &flags);
    let registered = cluster.wait_log(agent, "registered with master", SHORT);
    let agent_id = log_field(&registered, "agent").expect("agent id in the log");

    let submit = cluster.submit("submit", &master, "sleep 1", "t-done");
    let status = cluster.wait_exit(submit, SHORT);
    assert!(status.success(), "submit exited {status:?}");
    let states = cluster.task_states(submit);
    assert_eq!(
        states.last().map(String::as_str),
        Some("TASK_FINISHED"),
        "{states:?}"
    );
    let framework_id = cluster
        .stdout(submit)
        .lines()
        .find_map(|l| {
            l.strip_prefix("framework ")
                .and_then(|rest| rest.strip_suffix(" registered"))
                .map(str::to_owned)
        })
        .expect("submit prints its framework id");
    let meta = work_dir
        .join("meta/slaves")
        .join(&agent_id)
        .join("frameworks")
        .join(&framework_id);
    let sandbox = work_dir
        .join("slaves")
        .join(&agent_id)
        .join("frameworks")
        .join(&framework_id);
    assert!(
        meta.is_dir(),
        "{} right after the task finished",
        meta.display()
    );
    assert!(
        sandbox.is_dir(),
        "{} right after the task finished",
        sandbox.display()
    );
    let finished = Instant::now();
    // The run completes once the executor has exited; then at most 3 s, checked every
    // second.
    wait_until("the framework's directories to be collected", SHORT, || {
        !meta.exists() && !sandbox.exists()
    });
    let took = finished.elapsed();
    assert!(
        took <= Duration::from_secs(6),
        "collected {took:?} after the task finished, with --gc-delay 3secs"
    );
    assert!(
        cluster.log_has(agent, "garbage collected"),
        "{}",
        cluster.log(agent)
    );
}
