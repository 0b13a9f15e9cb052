//! The four sweep findings fixed after issue 9 (docs/recovery-rules.md R14,
//! docs/task-lifecycle.md L23), each kept as a regression scenario at its original seed:
//! the real agent passes it, and with the old behaviour switched back on
//! (`revenant::breakage`, test-only) it fails under exactly the oracle that found it.
#![allow(clippy::disallowed_methods)]

use std::path::Path;

use revenant::breakage::Breakage;
use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::scenario::Scenario;

fn oracles_failing(scenario: &str, breakage: Breakage) -> Vec<&'static str> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(scenario);
    let scenario = Scenario::load(&path).expect("scenario parses");
    let seed = scenario.pinned_seeds[0];
    let mut oracles: Vec<&'static str> = cluster::run(
        &scenario,
        seed,
        &RunOptions {
            breakage,
            ..RunOptions::default()
        },
    )
    .violations
    .iter()
    .map(|v| v.oracle)
    .collect();
    oracles.sort_unstable();
    oracles.dedup();
    oracles
}

fn holds_and_fails_when_broken(scenario: &str, breakage: Breakage, oracle: &str) {
    assert_eq!(
        oracles_failing(scenario, Breakage::default()),
        Vec::<&str>::new(),
        "{scenario}"
    );
    assert_eq!(
        oracles_failing(scenario, breakage),
        vec![oracle],
        "{scenario} with the old behaviour"
    );
}

fn no_recovery_sync() -> Breakage {
    Breakage {
        skip_recovery_sync: true,
        ..Breakage::default()
    }
}

#[test]
fn a_launch_log_recovered_unsynced_is_made_durable_before_it_is_acted_on() {
    holds_and_fails_when_broken(
        "regression_recovered_unsynced_task_log.toml",
        no_recovery_sync(),
        "durability",
    );
    holds_and_fails_when_broken(
        "regression_recovered_unsynced_task_log_shared_executor.toml",
        no_recovery_sync(),
        "durability",
    );
}

#[test]
fn an_update_recovered_unsynced_is_made_durable_before_it_is_reacknowledged() {
    holds_and_fails_when_broken(
        "regression_recovered_unsynced_update_record.toml",
        no_recovery_sync(),
        "durability",
    );
}

#[test]
fn a_task_whose_terminal_update_is_unacknowledged_is_not_launched_again() {
    holds_and_fails_when_broken(
        "regression_launch_of_task_with_unacknowledged_terminal_update.toml",
        Breakage {
            relaunch_ended_task: true,
            ..Breakage::default()
        },
        "terminal",
    );
}

/// docs/recovery-rules.md R14, on the simulated disk directly: a tree whose last
/// writes were never synced (a new task directory and its files named but their
/// directories not synced, an appended record not synced, as a death inside a group
/// commit leaves them) is recovered whole from the page cache; after `make_durable` a
/// power loss that keeps only what is durable leaves all of it, while without it the
/// same power loss takes the task away.
#[test]
fn make_durable_leaves_nothing_recovered_to_a_power_loss() {
    use std::rc::Rc;

    use revenant::checkpoint::paths::{MetaPaths, RunPath};
    use revenant::checkpoint::{make_durable, recover, CheckpointStore, RecoverOptions};
    use revenant::ids::{AgentId, ContainerId, ExecutorId, FrameworkId, TaskId, Uuid};
    use revenant::os::FileSystem;
    use revenant::proto::{AgentInfo, ExecutorInfo, FrameworkInfo, StatusUpdate, Task, TaskStatus};
    use revenant_sim::fs::SimFs;

    let work = Path::new("/var/lib/revenant");
    let build = || {
        let fs = SimFs::new();
        fs.create_dir_all_durably(work).unwrap();
        let paths = MetaPaths::for_work_dir(work);
        let store = CheckpointStore::new(Rc::new(fs.clone()), paths.clone());
        let (agent, framework) = (AgentId::new("a1"), FrameworkId::new("f1"));
        let (executor, container) = (ExecutorId::new("e1"), ContainerId::new("c1"));
        store.write_boot_id("boot-1").unwrap();
        store
            .write_agent_info(&AgentInfo {
                id: "a1".into(),
                ..AgentInfo::default()
            })
            .unwrap();
        store
            .write_framework(
                &agent,
                &FrameworkInfo {
                    id: "f1".into(),
                    checkpoint: true,
                    ..FrameworkInfo::default()
                },
                "",
            )
            .unwrap();
        store
            .write_executor(
                &agent,
                &ExecutorInfo {
                    executor_id: "e1".into(),
                    framework_id: "f1".into(),
                    ..ExecutorInfo::default()
                },
            )
            .unwrap();
        let run = RunPath {
            agent: &agent,
            framework: &framework,
            executor: &executor,
            container: &container,
        };
        store.write_run(&run).unwrap();
        store
            .write_task(
                &run,
                &Task {
                    task_id: "t1".into(),
                    ..Task::default()
                },
            )
            .unwrap();
        // A death inside a group commit: the record is appended, never synced.
        store.defer_log_syncs();
        let update = StatusUpdate {
            status: Some(TaskStatus {
                task_id: "t1".into(),
                ..TaskStatus::default()
            }),
            uuid: Uuid([7; 16]).to_vec(),
            ..StatusUpdate::default()
        };
        store
            .append_update(&run, &TaskId::new("t1"), &update)
            .unwrap();
        store.abandon_deferred();
        // A second task whose directory and files were named without the directory
        // syncs (written by hand: the store always syncs them).
        let tasks = paths.task_info(&run, &TaskId::new("t2"));
        let dir = tasks.parent().unwrap();
        fs.create_dir(dir).unwrap();
        let info = revenant::checkpoint::record::info_file(&prost::Message::encode_to_vec(&Task {
            task_id: "t2".into(),
            ..Task::default()
        }));
        fs.write(&tasks, &info).unwrap();
        fs.sync_file(&tasks).unwrap();
        (fs, paths)
    };
    let options = RecoverOptions {
        strict: true,
        truncate: true,
        current_boot_id: Some("boot-1".into()),
    };
    let tasks_of = |fs: &SimFs, paths: &MetaPaths| {
        let state = recover(fs, paths, &options).unwrap().unwrap();
        let run = &state.agent.as_ref().unwrap().frameworks[&FrameworkId::new("f1")].executors
            [&ExecutorId::new("e1")]
            .runs[&ContainerId::new("c1")];
        run.tasks
            .iter()
            .map(|(id, task)| (id.to_string(), task.updates.len()))
            .collect::<Vec<_>>()
    };
    let whole = vec![("t1".to_owned(), 1), ("t2".to_owned(), 0)];

    let (fs, paths) = build();
    assert_eq!(
        tasks_of(&fs, &paths),
        whole,
        "the page cache holds everything"
    );
    let state = recover(&fs, &paths, &options).unwrap().unwrap();
    // Every log and every directory recovery read is synced, and counted once.
    let synced = state.read.logs.len() + state.read.dirs.len();
    assert!(synced > 0);
    assert_eq!(make_durable(&fs, &state).unwrap(), synced);
    fs.power_loss_durable_only();
    assert_eq!(
        tasks_of(&fs, &paths),
        whole,
        "made durable, kept by the power loss"
    );

    let (fs, paths) = build();
    fs.power_loss_durable_only();
    assert_ne!(
        tasks_of(&fs, &paths),
        whole,
        "without make_durable the power loss takes some"
    );
}
