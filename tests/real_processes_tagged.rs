//! The real process seam's listing of tagged processes (`OsProcesses::tagged`,
//! docs/lifecycle-rules.md rule 20) against the contract the `Processes` trait
//! documents: a process launched with `REVENANT_AGENT_TAG=<tag>` is listed, with the
//! run ids of its environment, for as long as it lives, whoever launched it; so are the
//! processes it starts (they inherit the tag); other tags and untagged processes are
//! not; a killed process is no longer listed.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use revenant::os::real::OsProcesses;
use revenant::os::{LaunchSpec, Processes, Signal};

fn spec(dir: &std::path::Path, script: &str, tag: Option<&str>) -> LaunchSpec {
    let mut environment = BTreeMap::new();
    if let Some(tag) = tag {
        environment.insert(revenant::os::AGENT_TAG_VARIABLE.to_owned(), tag.to_owned());
    }
    environment.insert(revenant::os::FRAMEWORK_VARIABLE.to_owned(), "f1".to_owned());
    environment.insert(revenant::os::EXECUTOR_VARIABLE.to_owned(), "e1".to_owned());
    environment.insert(revenant::os::CONTAINER_VARIABLE.to_owned(), "c1".to_owned());
    LaunchSpec {
        program: "sh".to_owned(),
        arguments: vec!["-c".to_owned(), script.to_owned()],
        environment,
        working_dir: dir.to_path_buf(),
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn tagged_processes_are_listed_until_killed() {
    let dir = tempfile::tempdir().unwrap();
    // A tag no other test or process on the machine uses.
    let tag = dir.path().join("work").display().to_string();
    let other = format!("{tag}-other");
    let launcher = OsProcesses::default();
    // The executor starts a child of its own (as a task), which inherits the tag.
    let executor = launcher
        .launch(&spec(dir.path(), "sleep 60 & wait", Some(&tag)))
        .unwrap();
    let untagged = launcher
        .launch(&spec(dir.path(), "exec sleep 60", None))
        .unwrap();
    let stranger = launcher
        .launch(&spec(dir.path(), "exec sleep 60", Some(&other)))
        .unwrap();

    // Another handle, as a restarted agent has: the listing reads /proc, not memory.
    let restarted = OsProcesses::default();
    wait_for("the executor and its child are listed", || {
        restarted.tagged(&tag).unwrap().len() == 2
    });
    let listed = restarted.tagged(&tag).unwrap();
    assert!(listed.iter().any(|p| p.process == executor), "{listed:?}");
    for found in &listed {
        assert_eq!(
            (
                found.framework.as_str(),
                found.executor.as_str(),
                found.container.as_str()
            ),
            ("f1", "e1", "c1")
        );
    }
    assert!(listed
        .iter()
        .all(|p| p.process != untagged && p.process != stranger));
    assert_eq!(
        restarted
            .tagged(&other)
            .unwrap()
            .into_iter()
            .map(|p| p.process)
            .collect::<Vec<_>>(),
        vec![stranger.clone()]
    );

    // Killing the executor kills its session (the child too): nothing is listed any
    // more, zombies included (the launcher reaps its own children).
    restarted.signal(&executor, Signal::Kill).unwrap();
    wait_for(
        "the killed executor and its child are gone from the listing",
        || launcher.tagged(&tag).unwrap().is_empty(),
    );
    assert!(!launcher.is_alive(&executor));

    for process in [untagged, stranger] {
        launcher.signal(&process, Signal::Kill).unwrap();
    }
}
