//! docs/lifecycle-rules.md rule 20 on the built `revenant` binary: a process that
//! carries an agent's tag (its work directory) but that no checkpointed run claims, as
//! an executor started by an agent that died before it wrote `forked.pid` is, is killed
//! when the agent starts and recovers; a process with another agent's tag is left alone.
//! (Killing the agent between the fork and the checkpoint is a matter of microseconds;
//! the orphan is made here by hand, with the environment the agent gives executors.)
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod live;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use live::*;

const SHORT: Duration = Duration::from_secs(10);

fn tagged_sleeper(tag: &str) -> Child {
    let mut command = Command::new("sleep");
    command
        .arg("120")
        .env(revenant::os::AGENT_TAG_VARIABLE, tag)
        .env(revenant::os::FRAMEWORK_VARIABLE, "framework-gone")
        .env(revenant::os::EXECUTOR_VARIABLE, "executor-gone")
        .env(revenant::os::CONTAINER_VARIABLE, "run-never-checkpointed")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    command.spawn().expect("start a tagged sleep")
}

#[test]
fn an_orphan_executor_is_killed_when_the_agent_recovers() {
    let mut cluster = Cluster::new();
    let (_, master) = cluster.master("master");
    let work_dir = cluster.work_dir("work");
    let tag = work_dir.display().to_string();
    let mut orphan = tagged_sleeper(&tag);
    let mut stranger = tagged_sleeper(&format!("{tag}-another-agent"));

    let address = free_address();
    let agent = cluster.agent("agent", &master, &address, &work_dir, FAST_AGENT_FLAGS);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = orphan.try_wait().expect("wait for the orphan") {
            break status;
        }
        assert!(
            start.elapsed() < SHORT,
            "the orphan still runs {:?} after the agent started; its log:\n{}",
            start.elapsed(),
            cluster.log(agent)
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(9),
        "the orphan was killed: {status:?}"
    );
    assert!(
        cluster.log_has(
            agent,
            "destroying an orphan executor process: no recovered run claims it"
        ),
        "{}",
        cluster.log(agent)
    );
    cluster.wait_log(agent, "registered with master", SHORT);
    assert!(
        stranger
            .try_wait()
            .expect("wait for the stranger")
            .is_none(),
        "a process of another agent's tag was killed"
    );
    let _ = stranger.kill();
    let _ = stranger.wait();
}
