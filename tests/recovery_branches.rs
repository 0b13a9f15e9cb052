//! One test per branch of state recovery (`revenant::checkpoint::recover`), on the real
//! filesystem seam, with checkpoints written by the agent's own writers. Strict and
//! non-strict are both checked wherever they differ.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use revenant::checkpoint::paths::{MetaPaths, RunPath};
use revenant::checkpoint::record::{self, FileKind};
use revenant::checkpoint::{lock_work_dir, State, WarningKind};
use revenant::ids::{ContainerId, ExecutorId, FrameworkId, TaskId};
use revenant::os::real::RealFs;
use revenant::os::LockError;
use revenant::proto::TaskState as ProtoTaskState;

fn warnings_of(state: &State, kind: &WarningKind) -> Vec<PathBuf> {
    state
        .warnings
        .iter()
        .filter(|warning| &warning.kind == kind)
        .map(|warning| warning.path.clone())
        .collect()
}

/// The offsets of the records of a record log, and the file's length.
fn record_offsets(path: &Path, kind: FileKind) -> (Vec<u64>, u64) {
    let data = fs::read(path).unwrap();
    let scan = record::scan(&data, kind).unwrap();
    assert_eq!(scan.tail, record::Tail::Clean);
    (
        scan.records.iter().map(|(offset, _)| *offset).collect(),
        data.len() as u64,
    )
}

// ---------------------------------------------------------------------------------------
// The whole tree, and nothing to recover.

#[test]
fn no_meta_directory_is_nothing_to_recover() {
    let fixture = Fixture::new();
    for strict in [false, true] {
        let result = fixture.recover(&options(strict, true, Some(BOOT_ID)));
        assert_eq!(result, Ok(None), "strict {strict}");
    }
    // Not even the work directory.
    let missing = MetaPaths::for_work_dir(&fixture.work_dir().join("nowhere"));
    let result =
        revenant::checkpoint::recover(&RealFs::default(), &missing, &options(true, true, None));
    assert_eq!(result, Ok(None));
    // And recovery created nothing.
    assert!(!fixture.paths().root().exists());
}

#[test]
fn full_tree_is_recovered_in_both_modes() {
    let fixture = Fixture::full();
    for strict in [false, true] {
        let state = fixture.recover_state(strict, true);
        assert_eq!(state.errors, 0);
        assert!(state.warnings.is_empty(), "{:#?}", state.warnings);
        assert!(!state.rebooted);
        assert_eq!(state.checkpointed_boot_id.as_deref(), Some(BOOT_ID));
        assert_eq!(
            state.resources.as_ref().unwrap().resources,
            checkpointed_resources()
        );

        let agent = state.agent.as_ref().unwrap();
        assert_eq!(agent.id.as_str(), AGENT);
        assert_eq!(agent.info.as_ref(), Some(&agent_info()));
        assert_eq!(agent.frameworks.len(), 1);
        let framework = &agent.frameworks[&FrameworkId::new(FRAMEWORK)];
        assert_eq!(framework.info.as_ref(), Some(&framework_info()));
        assert_eq!(framework.pid.as_deref(), Some(FRAMEWORK_PID));
        let executor = &framework.executors[&ExecutorId::new(EXECUTOR)];
        assert_eq!(executor.info.as_ref(), Some(&executor_info()));
        assert_eq!(
            executor.latest.as_ref().map(|c| c.as_str()),
            Some(CONTAINER)
        );
        let run = &executor.runs[&ContainerId::new(CONTAINER)];
        assert_eq!(run.forked_pid.as_ref(), Some(&forked_pid()));
        assert_eq!(run.libprocess_pid.as_deref(), Some(LIBPROCESS_PID));
        assert_eq!(run.http, Some(false));
        assert!(!run.completed);
        let task = task_of(&state);
        assert_eq!(task.info.as_ref(), Some(&task_info(TASK)));
        assert_eq!(task.updates, three_updates());
        assert_eq!(task.bytes_cut, 0);
    }
}

#[test]
fn framework_without_pid_recovers_an_empty_pid() {
    let fixture = Fixture::full();
    fixture
        .store
        .write_framework(&fixture.agent, &framework_info(), "")
        .unwrap();
    let state = fixture.recover_state(true, true);
    let framework = framework_of(&state);
    assert_eq!(framework.pid.as_deref(), Some(""));
    assert!(state.warnings.is_empty(), "{:#?}", state.warnings);
}

// ---------------------------------------------------------------------------------------
// Reboots.

#[test]
fn after_a_reboot_resources_are_recovered_but_not_the_agent() {
    let fixture = Fixture::full();
    for strict in [false, true] {
        let state = fixture
            .recover(&options(strict, true, Some("another-boot")))
            .unwrap()
            .unwrap();
        assert!(state.rebooted);
        assert!(state.agent.is_none());
        assert_eq!(state.checkpointed_boot_id.as_deref(), Some(BOOT_ID));
        assert_eq!(
            state.resources.as_ref().unwrap().resources,
            checkpointed_resources()
        );
        assert_eq!(state.errors, 0);
        assert_eq!(
            warnings_of(&state, &WarningKind::Rebooted),
            vec![fixture.paths().boot_id()]
        );
    }
}

#[test]
fn same_boot_or_no_boot_check_recovers_the_agent() {
    let fixture = Fixture::full();
    for current in [Some(BOOT_ID), None] {
        let state = fixture
            .recover(&options(true, true, current))
            .unwrap()
            .unwrap();
        assert!(!state.rebooted, "current {current:?}");
        assert!(state.agent.is_some(), "current {current:?}");
        assert!(warnings_of(&state, &WarningKind::Rebooted).is_empty());
    }
}

#[test]
fn boot_id_is_compared_trimmed() {
    let fixture = Fixture::full();
    // The writer stores "<id>\n"; a machine's id is compared without the newline.
    assert_eq!(
        fs::read_to_string(fixture.paths().boot_id()).unwrap(),
        format!("{BOOT_ID}\n")
    );
    let state = fixture.recover_state(true, true);
    assert!(!state.rebooted);
}

// ---------------------------------------------------------------------------------------
// Missing links and files: the agent died between two steps. Warnings, never errors.

#[test]
fn missing_latest_agent_link_is_a_warning_and_recovery_goes_on() {
    let fixture = Fixture::full();
    fixture.store.forget_latest_agent().unwrap();
    for strict in [false, true] {
        let state = fixture.recover_state(strict, true);
        assert!(state.agent.is_none());
        assert_eq!(state.errors, 0);
        assert_eq!(
            warnings_of(&state, &WarningKind::Missing),
            vec![fixture.paths().latest_agent()]
        );
        // The rest of the tree is still recovered.
        assert_eq!(
            state.resources.as_ref().unwrap().resources,
            checkpointed_resources()
        );
        assert_eq!(state.checkpointed_boot_id.as_deref(), Some(BOOT_ID));
    }
}

#[test]
fn dangling_latest_agent_link_is_an_error() {
    let fixture = Fixture::full();
    let link = fixture.paths().latest_agent();
    fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("agent-gone", &link).unwrap();

    // docs/recovery-rules.md R40: which agent to recover is unknown, strict or not.
    for strict in [true, false] {
        let error = fixture
            .recover(&options(strict, true, Some(BOOT_ID)))
            .unwrap_err();
        assert_eq!(error.path, link, "strict {strict}");
        assert!(error.message.contains("agent-gone"), "{error}");
    }
}

/// A named path of the fixture's tree.
/// docs/recovery-rules.md R23: an unreadable `meta/boot_id` (an error other than "not
/// found": here a directory where the file should be) is only warned about, strict or
/// not. Recovery goes on with no boot id to compare and tells the operator (the
/// agent's log, `revenant inspect`) that it could not read it; a missing one is no
/// warning (`no_boot_id_is_no_warning` below). Mutation report round 9: the warning
/// dropped (the guard's "not found" made `true`) survived the simulator, whose
/// observers do not read the agent's words.
#[test]
fn an_unreadable_boot_id_is_warned_about_strict_or_not() {
    let fixture = Fixture::full();
    let boot_id = fixture.paths().boot_id();
    fs::remove_file(&boot_id).unwrap();
    fs::create_dir(&boot_id).unwrap();
    for strict in [false, true] {
        let state = fixture
            .recover(&options(strict, true, Some("another-boot")))
            .unwrap()
            .unwrap();
        assert!(!state.rebooted, "strict {strict}");
        assert!(state.agent.is_some(), "strict {strict}");
        assert_eq!(state.checkpointed_boot_id, None, "strict {strict}");
        assert_eq!(
            warnings_of(&state, &WarningKind::Error),
            vec![boot_id.clone()],
            "strict {strict}: {:#?}",
            state.warnings
        );
    }
}

/// A missing `meta/boot_id` is absence (an agent of an older release, or one stopped
/// before it wrote it): no warning, and nothing to compare.
#[test]
fn no_boot_id_is_no_warning() {
    let fixture = Fixture::full();
    fs::remove_file(fixture.paths().boot_id()).unwrap();
    for strict in [false, true] {
        let state = fixture
            .recover(&options(strict, true, Some("another-boot")))
            .unwrap()
            .unwrap();
        assert!(!state.rebooted, "strict {strict}");
        assert_eq!(state.checkpointed_boot_id, None, "strict {strict}");
        assert!(state.warnings.is_empty(), "{:#?}", state.warnings);
    }
}

type PathOf = (&'static str, fn(&Fixture) -> PathBuf);

/// Replaces the directory `dir` with a regular file, so that listing it fails with an
/// error other than "not found" (as an `EIO` would; tests run as root, whom
/// permissions do not stop).
fn make_unlistable(dir: &Path) {
    fs::remove_dir_all(dir).unwrap();
    fs::write(dir, b"not a directory").unwrap();
}

/// docs/recovery-rules.md R40: a listing recovery cannot read stops recovery with or
/// without `--strict`, naming the directory: what lies below is unknown, not absent.
/// Non-strict recovery used to count the error and go on as if the directory were
/// empty (the agent then took its live executors for orphans and reported their tasks
/// lost).
#[test]
fn an_unlistable_directory_stops_recovery_strict_or_not() {
    let cases: [PathOf; 5] = [
        ("frameworks", |f| f.paths().frameworks_dir(&f.agent)),
        ("executors", |f| {
            f.paths().executors_dir(&f.agent, &f.framework)
        }),
        ("runs", |f| {
            f.paths().runs_dir(&f.agent, &f.framework, &f.executor)
        }),
        ("pids", |f| f.paths().pids_dir(&f.run())),
        ("tasks", |f| f.paths().tasks_dir(&f.run())),
    ];
    for (name, dir_of) in cases {
        let fixture = Fixture::full();
        let dir = dir_of(&fixture);
        make_unlistable(&dir);
        for strict in [true, false] {
            let error = fixture
                .recover(&options(strict, true, Some(BOOT_ID)))
                .unwrap_err();
            assert_eq!(error.path, dir, "{name} strict {strict}");
            assert!(error.message.contains("failed to list"), "{name}: {error}");
        }
    }
}

/// docs/recovery-rules.md R40: a `latest` link recovery cannot read stops recovery with
/// or without `--strict` (a missing one is a warning, a dangling `runs/latest` too).
#[test]
fn an_unreadable_latest_link_stops_recovery_strict_or_not() {
    let cases: [PathOf; 2] = [
        ("slaves/latest", |f| f.paths().latest_agent()),
        ("runs/latest", |f| {
            f.paths().latest_run(&f.agent, &f.framework, &f.executor)
        }),
    ];
    for (name, link_of) in cases {
        let fixture = Fixture::full();
        let link = link_of(&fixture);
        fs::remove_file(&link).unwrap();
        // Not a link: reading it as one fails with EINVAL.
        fs::write(&link, b"not a link").unwrap();
        for strict in [true, false] {
            let error = fixture
                .recover(&options(strict, true, Some(BOOT_ID)))
                .unwrap_err();
            assert_eq!(error.path, link, "{name} strict {strict}");
            assert!(
                error.message.contains("failed to read link"),
                "{name}: {error}"
            );
        }
    }
}

/// Which info file to damage, and what the recovered tree must then look like.
#[derive(Clone, Copy, Debug)]
enum InfoFile {
    Agent,
    Framework,
    Executor,
    Task,
}

impl InfoFile {
    const ALL: [InfoFile; 4] = [
        InfoFile::Agent,
        InfoFile::Framework,
        InfoFile::Executor,
        InfoFile::Task,
    ];

    fn path(self, fixture: &Fixture) -> PathBuf {
        let paths = fixture.paths();
        match self {
            InfoFile::Agent => paths.agent_info(&fixture.agent),
            InfoFile::Framework => paths.framework_info(&fixture.agent, &fixture.framework),
            InfoFile::Executor => {
                paths.executor_info(&fixture.agent, &fixture.framework, &fixture.executor)
            }
            InfoFile::Task => paths.task_info(&fixture.run(), &fixture.task),
        }
    }

    /// Checks that the level of this file has no info, nothing below it was recovered,
    /// and the levels above were; returns the errors counted at this level.
    fn check_level_without_info(self, state: &State) -> u32 {
        let agent = state.agent.as_ref().expect("the agent level exists");
        if let InfoFile::Agent = self {
            assert!(agent.info.is_none());
            assert!(agent.frameworks.is_empty());
            return agent.errors;
        }
        assert!(agent.info.is_some());
        let framework = &agent.frameworks[&FrameworkId::new(FRAMEWORK)];
        if let InfoFile::Framework = self {
            assert!(framework.info.is_none());
            assert!(framework.pid.is_none());
            assert!(framework.executors.is_empty());
            return framework.errors;
        }
        assert!(framework.info.is_some());
        let executor = &framework.executors[&ExecutorId::new(EXECUTOR)];
        if let InfoFile::Executor = self {
            assert!(executor.info.is_none());
            assert!(executor.runs.is_empty());
            assert!(executor.latest.is_none());
            return executor.errors;
        }
        assert!(executor.info.is_some());
        let run = &executor.runs[&ContainerId::new(CONTAINER)];
        assert!(run.forked_pid.is_some());
        let task = &run.tasks[&TaskId::new(TASK)];
        assert!(task.info.is_none());
        assert!(task.updates.is_empty());
        assert!(task.acks.is_empty());
        task.errors
    }
}

#[test]
fn missing_info_files_are_warnings() {
    for file in InfoFile::ALL {
        let fixture = Fixture::full();
        let path = file.path(&fixture);
        fs::remove_file(&path).unwrap();
        for strict in [false, true] {
            let state = fixture.recover_state(strict, true);
            assert_eq!(state.errors, 0, "{file:?}");
            assert_eq!(
                warnings_of(&state, &WarningKind::Missing),
                vec![path.clone()],
                "{file:?} strict {strict}"
            );
            assert_eq!(file.check_level_without_info(&state), 0, "{file:?}");
        }
    }
}

#[test]
fn empty_info_files_are_warnings() {
    for file in InfoFile::ALL {
        let fixture = Fixture::full();
        let path = file.path(&fixture);
        fs::write(&path, b"").unwrap();
        for strict in [false, true] {
            let state = fixture.recover_state(strict, true);
            assert_eq!(state.errors, 0, "{file:?}");
            assert_eq!(
                warnings_of(&state, &WarningKind::Empty),
                vec![path.clone()],
                "{file:?} strict {strict}"
            );
            assert_eq!(file.check_level_without_info(&state), 0, "{file:?}");
        }
        // Recovery does not touch an empty info file.
        assert_eq!(fs::read(&path).unwrap(), b"");
    }
}

#[test]
fn missing_forked_pid_is_a_warning() {
    let fixture = Fixture::full();
    let path = fixture.paths().forked_pid(&fixture.run());
    fs::remove_file(&path).unwrap();
    for strict in [false, true] {
        let state = fixture.recover_state(strict, true);
        assert_eq!(state.errors, 0);
        assert_eq!(
            warnings_of(&state, &WarningKind::Missing),
            vec![path.clone()]
        );
        let executor = executor_of(&state);
        let run = &executor.runs[&ContainerId::new(CONTAINER)];
        assert!(run.forked_pid.is_none());
        // Everything else of the run is still there.
        assert_eq!(run.libprocess_pid.as_deref(), Some(LIBPROCESS_PID));
        assert_eq!(task_of(&state).updates.len(), 3);
    }
}

#[test]
fn run_created_but_never_launched_warns_of_the_forked_pid() {
    // The agent died right after `write_run` (the intent), before launching.
    let fixture = Fixture::new();
    fixture.store.write_agent_info(&agent_info()).unwrap();
    fixture
        .store
        .write_framework(&fixture.agent, &framework_info(), FRAMEWORK_PID)
        .unwrap();
    fixture
        .store
        .write_executor(&fixture.agent, &executor_info())
        .unwrap();
    fixture.store.write_run(&fixture.run()).unwrap();
    let state = fixture.recover_state(true, true);
    assert_eq!(
        warnings_of(&state, &WarningKind::Missing),
        vec![fixture.paths().forked_pid(&fixture.run())]
    );
    let executor = executor_of(&state);
    assert_eq!(
        executor.latest.as_ref().map(|c| c.as_str()),
        Some(CONTAINER)
    );
    let run = &executor.runs[&ContainerId::new(CONTAINER)];
    assert_eq!(run.forked_pid, None);
    assert_eq!(run.http, None, "never registered");
    assert!(run.tasks.is_empty());
}

#[test]
fn empty_forked_pid_is_a_warning() {
    let fixture = Fixture::full();
    let path = fixture.paths().forked_pid(&fixture.run());
    fs::write(&path, b"").unwrap();
    for strict in [false, true] {
        let state = fixture.recover_state(strict, true);
        assert_eq!(state.errors, 0);
        assert_eq!(warnings_of(&state, &WarningKind::Empty), vec![path.clone()]);
    }
}

#[test]
fn missing_latest_run_link_is_a_warning() {
    let fixture = Fixture::full();
    let link = fixture
        .paths()
        .latest_run(&fixture.agent, &fixture.framework, &fixture.executor);
    fs::remove_file(&link).unwrap();
    for strict in [false, true] {
        let state = fixture.recover_state(strict, true);
        assert_eq!(state.errors, 0);
        assert_eq!(
            warnings_of(&state, &WarningKind::Missing),
            vec![link.clone()]
        );
        let executor = executor_of(&state);
        assert!(executor.latest.is_none());
        // The runs themselves are still recovered.
        assert!(executor.runs.contains_key(&ContainerId::new(CONTAINER)));
    }
}

#[test]
fn dangling_latest_run_link_is_a_dangling_latest_warning() {
    let fixture = Fixture::full();
    let link = fixture
        .paths()
        .latest_run(&fixture.agent, &fixture.framework, &fixture.executor);
    fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("container-gone", &link).unwrap();
    for strict in [false, true] {
        let state = fixture.recover_state(strict, true);
        assert_eq!(state.errors, 0);
        assert_eq!(
            warnings_of(&state, &WarningKind::DanglingLatest),
            vec![link.clone()]
        );
        let executor = executor_of(&state);
        assert!(executor.latest.is_none());
        assert_eq!(executor.runs.len(), 1);
    }
}

// ---------------------------------------------------------------------------------------
// Corrupt or unreadable files: strict stops naming the file; non-strict counts them at
// their level, sums them upward, and goes on.

/// Errors counted at each level, from the task up to the whole state.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    resources: u32,
    agent: u32,
    framework: u32,
    executor: u32,
    run: u32,
    task: u32,
    total: u32,
}

fn counts(state: &State) -> Counts {
    let mut counts = Counts {
        resources: state.resources.as_ref().map_or(0, |r| r.errors),
        total: state.errors,
        ..Counts::default()
    };
    let Some(agent) = &state.agent else {
        return counts;
    };
    counts.agent = agent.errors;
    let Some(framework) = agent.frameworks.get(&FrameworkId::new(FRAMEWORK)) else {
        return counts;
    };
    counts.framework = framework.errors;
    let Some(executor) = framework.executors.get(&ExecutorId::new(EXECUTOR)) else {
        return counts;
    };
    counts.executor = executor.errors;
    let Some(run) = executor.runs.get(&ContainerId::new(CONTAINER)) else {
        return counts;
    };
    counts.run = run.errors;
    counts.task = run.tasks.get(&TaskId::new(TASK)).map_or(0, |t| t.errors);
    counts
}

/// One error counted at the level of `level` and at every level above it.
fn one_error_at(level: &str) -> Counts {
    let mut counts = Counts {
        total: 1,
        ..Counts::default()
    };
    let order = ["task", "run", "executor", "framework", "agent"];
    if level == "resources" {
        counts.resources = 1;
        return counts;
    }
    let start = order.iter().position(|l| *l == level).unwrap();
    for l in &order[start..] {
        match *l {
            "task" => counts.task = 1,
            "run" => counts.run = 1,
            "executor" => counts.executor = 1,
            "framework" => counts.framework = 1,
            "agent" => counts.agent = 1,
            _ => unreachable!(),
        }
    }
    counts
}

/// Damages one file of a full tree, then checks strict and non-strict recovery.
/// `check` sees the non-strict state for the case's own assertions.
fn corrupt_case(
    name: &str,
    path_of: impl Fn(&Fixture) -> PathBuf,
    damage: impl Fn(&Path),
    level: &str,
    message_contains: &str,
    check: impl Fn(&Fixture, &State),
) {
    let fixture = Fixture::full();
    let path = path_of(&fixture);
    damage(&path);
    let before = snapshot(fixture.work_dir());

    let error = fixture
        .recover(&options(true, true, Some(BOOT_ID)))
        .expect_err(name);
    assert_eq!(error.path, path, "{name}: {error}");
    assert!(
        error.message.contains(message_contains),
        "{name}: {error} should contain {message_contains:?}"
    );
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{name}: the error names the file: {error}"
    );
    assert_eq!(
        snapshot(fixture.work_dir()),
        before,
        "{name}: strict recovery changed the directory"
    );

    let state = fixture.recover_state(false, false);
    assert_eq!(counts(&state), one_error_at(level), "{name}");
    let errors: Vec<_> = state
        .warnings
        .iter()
        .filter(|w| w.kind == WarningKind::Error)
        .collect();
    assert_eq!(errors.len(), 1, "{name}: {:#?}", state.warnings);
    assert_eq!(errors[0].path, path, "{name}");
    assert!(
        errors[0].message.contains(message_contains),
        "{name}: {}",
        errors[0].message
    );
    check(&fixture, &state);
    assert_eq!(
        snapshot(fixture.work_dir()),
        before,
        "{name}: recovery without truncate changed the directory"
    );
}

fn overwrite(bytes: &'static [u8]) -> impl Fn(&Path) {
    move |path| fs::write(path, bytes).unwrap()
}

fn flip_byte_at(offset_from_end: usize) -> impl Fn(&Path) {
    move |path| {
        let mut data = fs::read(path).unwrap();
        let index = data.len() - offset_from_end;
        data[index] ^= 0x20;
        fs::write(path, data).unwrap();
    }
}

#[test]
fn garbage_framework_info() {
    corrupt_case(
        "framework.info",
        |f| f.paths().framework_info(&f.agent, &f.framework),
        overwrite(b"this is not a checkpoint"),
        "framework",
        "bad magic",
        |_, state| {
            let framework = framework_of(state);
            assert!(framework.info.is_none());
            assert!(framework.executors.is_empty());
            // The resources beside it are still recovered.
            assert_eq!(state.resources.as_ref().unwrap().resources.len(), 2);
        },
    );
}

#[test]
fn garbage_agent_info() {
    corrupt_case(
        "slave.info",
        |f| f.paths().agent_info(&f.agent),
        flip_byte_at(3),
        "agent",
        "checksum",
        |_, state| {
            let agent = state.agent.as_ref().unwrap();
            assert!(agent.info.is_none());
            assert!(agent.frameworks.is_empty());
        },
    );
}

#[test]
fn garbage_executor_info() {
    corrupt_case(
        "executor.info",
        |f| f.paths().executor_info(&f.agent, &f.framework, &f.executor),
        // A valid framing whose payload is not an ExecutorInfo.
        |path: &Path| fs::write(path, record::info_file(&[0xff, 0xff, 0xff])).unwrap(),
        "executor",
        "failed to decode executor info",
        |_, state| {
            let executor = executor_of(state);
            assert!(executor.info.is_none());
            assert!(executor.runs.is_empty());
        },
    );
}

#[test]
fn info_file_with_two_records_is_corrupt() {
    corrupt_case(
        "task.info",
        |f| f.paths().task_info(&f.run(), &f.task),
        |path: &Path| {
            let mut data = fs::read(path).unwrap();
            let record = data[record::FILE_HEADER_BYTES..].to_vec();
            data.extend_from_slice(&record);
            fs::write(path, data).unwrap();
        },
        "task",
        "expected one record, found 2",
        |_, state| assert!(task_of(state).info.is_none()),
    );
}

#[test]
fn truncated_info_file_is_corrupt_not_torn() {
    // Info files are replaced atomically: a short one is corruption, not a torn append.
    corrupt_case(
        "slave.info truncated",
        |f| f.paths().agent_info(&f.agent),
        |path: &Path| {
            let data = fs::read(path).unwrap();
            fs::write(path, &data[..data.len() - 1]).unwrap();
        },
        "agent",
        "incomplete",
        |_, state| assert!(state.agent.as_ref().unwrap().info.is_none()),
    );
}

#[test]
fn corrupt_forked_pid_text() {
    corrupt_case(
        "forked.pid",
        |f| f.paths().forked_pid(&f.run()),
        overwrite(b"4242 not-a-start-time boot\n"),
        "run",
        "bad start time",
        |_, state| {
            let run = run_of(state);
            assert!(run.forked_pid.is_none());
            // The tasks of the run are still recovered.
            assert_eq!(task_of(state).updates, three_updates());
        },
    );
}

#[test]
fn forked_pid_with_trailing_fields_is_corrupt() {
    corrupt_case(
        "forked.pid trailing",
        |f| f.paths().forked_pid(&f.run()),
        // The fourth field is the executor secret's verifier (docs/security.md SEC17):
        // a well-formed one, then a field too many.
        overwrite(
            b"4242 1 boot abababababababababababababababababababababababababababababababab extra\n",
        ),
        "run",
        "trailing",
        |_, _| {},
    );
}

#[test]
fn libprocess_pid_that_is_not_text() {
    corrupt_case(
        "libprocess.pid",
        |f| f.paths().libprocess_pid(&f.run()),
        overwrite(&[0xff, 0xfe, 0x00, 0x80]),
        "run",
        "not UTF-8",
        |_, state| {
            let run = run_of(state);
            assert!(run.libprocess_pid.is_none());
            assert_eq!(run.http, None);
        },
    );
}

#[test]
fn corrupt_record_in_task_updates() {
    // Flip a payload byte of the second record: the first survives, the rest is not read.
    corrupt_case(
        "task.updates",
        |f| f.task_updates(),
        |path: &Path| {
            let (offsets, _) = record_offsets(path, FileKind::TaskUpdates);
            let mut data = fs::read(path).unwrap();
            data[offsets[1] as usize + record::RECORD_HEADER_BYTES + 2] ^= 0x01;
            fs::write(path, data).unwrap();
        },
        "task",
        "checksum mismatch",
        |fixture, state| {
            let task = task_of(state);
            assert_eq!(task.updates, three_updates()[..1].to_vec());
            assert!(task.acks.is_empty());
            // Everything from the bad record on is discarded (the second of five).
            let data = fs::read(fixture.task_updates()).unwrap();
            let scan = record::scan(&data, FileKind::TaskUpdates).unwrap();
            assert_eq!(scan.records.len(), 1);
            let record::Tail::Corrupt { offset, bytes, .. } = scan.tail else {
                panic!("expected a corrupt tail, got {:?}", scan.tail);
            };
            assert_eq!(offset, scan.valid_length);
            assert_eq!(task.bytes_cut, bytes);
        },
    );
}

#[test]
fn corrupt_length_of_last_record_is_an_error_not_a_torn_tail() {
    corrupt_case(
        "task.updates last length",
        |f| f.task_updates(),
        |path: &Path| {
            let (offsets, _) = record_offsets(path, FileKind::TaskUpdates);
            let mut data = fs::read(path).unwrap();
            data[*offsets.last().unwrap() as usize] ^= 0x01;
            fs::write(path, data).unwrap();
        },
        "task",
        "length check failed",
        |_, state| {
            assert!(
                !state
                    .warnings
                    .iter()
                    .any(|w| matches!(w.kind, WarningKind::TornTail { .. })),
                "{:#?}",
                state.warnings
            );
            let task = task_of(state);
            assert_eq!(task.updates.len(), 3);
            assert_eq!(task.acks.len(), 1, "the last ACK is not read");
        },
    );
}

#[test]
fn well_framed_but_invalid_status_update_record() {
    // An UPDATE record without a uuid: framed correctly, meaningless.
    corrupt_case(
        "task.updates invalid record",
        |f| f.task_updates(),
        |path: &Path| {
            let mut bad = update_record(&three_updates()[0]);
            bad.update.as_mut().unwrap().uuid.clear();
            let mut data = fs::read(path).unwrap();
            record::frame_into(&prost::Message::encode_to_vec(&bad), &mut data);
            fs::write(path, data).unwrap();
        },
        "task",
        "without a 16-byte uuid",
        |_, state| {
            let task = task_of(state);
            assert_eq!(task.updates, three_updates());
            assert_eq!(task.acks.len(), 2);
        },
    );
}

#[test]
fn corrupt_record_in_resources_info() {
    corrupt_case(
        "resources.info",
        |f| f.paths().resources_info(),
        flip_byte_at(1),
        "resources",
        "checksum mismatch",
        |_, state| {
            assert_eq!(
                state.resources.as_ref().unwrap().resources,
                checkpointed_resources()[..1].to_vec()
            );
            // The agent is recovered regardless.
            assert_eq!(task_of(state).updates.len(), 3);
        },
    );
}

#[test]
fn errors_in_several_places_are_summed_upward() {
    let fixture = Fixture::full();
    // A second task with a corrupt task.info, and a corrupt forked.pid: the run counts
    // three errors (two tasks, its own), the whole tree three plus one in resources.
    let run = fixture.run();
    let second = TaskId::new("task-2");
    fixture
        .store
        .write_task(&run, &task_info("task-2"))
        .unwrap();
    fs::write(fixture.paths().task_info(&run, &second), b"garbage").unwrap();
    fs::write(
        fixture.task_updates(),
        b"RVNT\x01\x00\x02\x00garbage!garbage!",
    )
    .unwrap();
    fs::write(fixture.paths().forked_pid(&run), b"x y z\n").unwrap();
    flip_byte_at(1)(&fixture.paths().resources_info());

    let state = fixture.recover_state(false, false);
    let executor = executor_of(&state);
    let run_state = &executor.runs[&ContainerId::new(CONTAINER)];
    assert_eq!(run_state.tasks[&second].errors, 1);
    assert_eq!(run_state.tasks[&TaskId::new(TASK)].errors, 1);
    assert_eq!(run_state.errors, 3);
    assert_eq!(executor.errors, 3);
    assert_eq!(state.agent.as_ref().unwrap().errors, 3);
    assert_eq!(state.resources.as_ref().unwrap().errors, 1);
    assert_eq!(state.errors, 4);
    assert_eq!(warnings_of(&state, &WarningKind::Error).len(), 4);

    // Strict stops at the first, in walk order: resources come first.
    let error = fixture
        .recover(&options(true, false, Some(BOOT_ID)))
        .unwrap_err();
    assert_eq!(error.path, fixture.paths().resources_info());
}

#[test]
fn unsupported_format_version_is_a_clear_error_naming_the_file() {
    let set_version = |path: &Path| {
        let mut data = fs::read(path).unwrap();
        data[4..6].copy_from_slice(&7u16.to_le_bytes());
        fs::write(path, data).unwrap();
    };
    corrupt_case(
        "slave.info version",
        |f| f.paths().agent_info(&f.agent),
        set_version,
        "agent",
        "unsupported checkpoint format version 7",
        |_, _| {},
    );
    corrupt_case(
        "task.updates version",
        |f| f.task_updates(),
        set_version,
        "task",
        "unsupported checkpoint format version 7",
        |_, state| assert!(task_of(state).updates.is_empty()),
    );
    corrupt_case(
        "resources.info version",
        |f| f.paths().resources_info(),
        set_version,
        "resources",
        "unsupported checkpoint format version 7",
        |_, state| assert!(state.resources.as_ref().unwrap().resources.is_empty()),
    );
}

#[test]
fn a_file_of_another_kind_is_refused() {
    // resources.info holds kind 3; copied over task.updates it must not be read as updates.
    corrupt_case(
        "task.updates of the wrong kind",
        |f| f.task_updates(),
        |path: &Path| {
            let meta = path.ancestors().find(|p| p.ends_with("meta")).unwrap();
            fs::copy(meta.join("resources/resources.info"), path).unwrap();
        },
        "task",
        "expected TaskUpdates",
        |_, _| {},
    );
}

#[test]
fn corrupt_tail_is_truncated_only_with_truncate() {
    let fixture = Fixture::full();
    let path = fixture.task_updates();
    let (offsets, _) = record_offsets(&path, FileKind::TaskUpdates);
    flip_byte_at(1)(&path);
    let state = fixture.recover_state(false, true);
    assert_eq!(state.errors, 1);
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        *offsets.last().unwrap(),
        "the agent cuts the log at the corrupt record"
    );
    // The next recovery finds a clean log holding the records before it.
    let state = fixture.recover_state(true, true);
    assert_eq!(state.errors, 0);
    assert_eq!(task_of(&state).updates, three_updates());
    assert_eq!(task_of(&state).acks.len(), 1);
}

// ---------------------------------------------------------------------------------------
// Torn tails: a crash mid-append. Cut off and reported; never an error, strict or not.

#[test]
fn torn_final_record_of_task_updates() {
    for cut_bytes in [1u64, 5, 13] {
        for strict in [false, true] {
            let fixture = Fixture::full();
            let path = fixture.task_updates();
            let (offsets, length) = record_offsets(&path, FileKind::TaskUpdates);
            let last = *offsets.last().unwrap();
            assert!(length - last > cut_bytes);
            let torn_length = length - cut_bytes;
            fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(torn_length)
                .unwrap();
            let torn_bytes = fs::read(&path).unwrap();

            // inspect: truncate off, the file is left as it is.
            let state = fixture.recover_state(strict, false);
            let expected = WarningKind::TornTail {
                offset: last,
                bytes: torn_length - last,
            };
            assert_eq!(
                warnings_of(&state, &expected),
                vec![path.clone()],
                "{:#?}",
                state.warnings
            );
            assert_eq!(state.errors, 0);
            let task = task_of(&state);
            assert_eq!(task.updates, three_updates());
            assert_eq!(task.acks.len(), 1, "the torn ACK is cut off");
            assert_eq!(task.bytes_cut, torn_length - last);
            assert_eq!(
                fs::read(&path).unwrap(),
                torn_bytes,
                "inspect changed the log"
            );

            // The agent: the log is truncated to its last complete record.
            let state = fixture.recover_state(strict, true);
            assert_eq!(warnings_of(&state, &expected), vec![path.clone()]);
            assert_eq!(fs::metadata(&path).unwrap().len(), last);
            assert_eq!(fs::read(&path).unwrap(), torn_bytes[..last as usize]);

            // And the next recovery finds it clean.
            let state = fixture.recover_state(strict, true);
            assert!(state.warnings.is_empty(), "{:#?}", state.warnings);
            assert_eq!(task_of(&state).bytes_cut, 0);
        }
    }
}

#[test]
fn torn_header_of_a_new_task_updates_is_rewritten() {
    // A crash while the log's header was being written: nothing to recover, and the agent
    // starts the log afresh with a whole header.
    let fixture = Fixture::full();
    let path = fixture.task_updates();
    fs::write(&path, &record::file_header(FileKind::TaskUpdates)[..3]).unwrap();
    let state = fixture.recover_state(true, false);
    assert_eq!(
        warnings_of(
            &state,
            &WarningKind::TornTail {
                offset: 0,
                bytes: 3
            }
        ),
        vec![path.clone()]
    );
    assert_eq!(fs::metadata(&path).unwrap().len(), 3);
    let state = fixture.recover_state(true, true);
    assert!(task_of(&state).updates.is_empty());
    assert_eq!(
        fs::read(&path).unwrap(),
        record::file_header(FileKind::TaskUpdates)
    );
}

#[test]
fn missing_task_updates_is_a_task_without_updates() {
    let fixture = Fixture::full();
    fs::remove_file(fixture.task_updates()).unwrap();
    let state = fixture.recover_state(true, true);
    let task = task_of(&state);
    assert!(task.info.is_some());
    assert!(task.updates.is_empty());
    assert_eq!(task.latest_state(), None);
    assert_eq!(state.errors, 0);
}

#[test]
fn torn_final_record_of_resources_info() {
    for strict in [false, true] {
        let fixture = Fixture::full();
        let path = fixture.paths().resources_info();
        let (offsets, length) = record_offsets(&path, FileKind::Resources);
        let last = offsets[1];
        let torn_length = length - 2;
        let mut data = fs::read(&path).unwrap();
        data.truncate(torn_length as usize);
        fs::write(&path, &data).unwrap();

        let expected = WarningKind::TornTail {
            offset: last,
            bytes: torn_length - last,
        };
        let state = fixture.recover_state(strict, false);
        assert_eq!(warnings_of(&state, &expected), vec![path.clone()]);
        assert_eq!(state.errors, 0);
        assert_eq!(
            state.resources.as_ref().unwrap().resources,
            checkpointed_resources()[..1].to_vec()
        );
        assert_eq!(fs::read(&path).unwrap(), data, "inspect changed the log");

        let state = fixture.recover_state(strict, true);
        assert_eq!(warnings_of(&state, &expected), vec![path.clone()]);
        assert_eq!(fs::metadata(&path).unwrap().len(), last);
        // Appending after the cut yields a well-formed log again.
        fixture
            .store
            .append_resources(&[resource("mem", 512.0, "analytics")])
            .unwrap();
        let state = fixture.recover_state(true, true);
        assert!(state.warnings.is_empty(), "{:#?}", state.warnings);
        assert_eq!(
            state.resources.as_ref().unwrap().resources,
            vec![
                checkpointed_resources()[0].clone(),
                resource("mem", 512.0, "analytics")
            ]
        );
    }
}

#[test]
fn resources_survive_a_reboot_even_with_a_torn_tail() {
    let fixture = Fixture::full();
    let path = fixture.paths().resources_info();
    let length = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(length - 1)
        .unwrap();
    let state = fixture
        .recover(&options(true, true, Some("rebooted")))
        .unwrap()
        .unwrap();
    assert!(state.rebooted);
    assert!(state.agent.is_none());
    assert_eq!(state.resources.as_ref().unwrap().resources.len(), 1);
    assert_eq!(state.warnings.len(), 2, "{:#?}", state.warnings);
}

// ---------------------------------------------------------------------------------------
// Runs, acknowledgements.

#[test]
fn completed_run_is_recovered_as_completed() {
    let fixture = Fixture::full();
    fixture.store.write_sentinel(&fixture.run()).unwrap();
    // A second, newer run which is not completed, launched over HTTP.
    let newer = ContainerId::new("container-2");
    let newer_run = RunPath {
        container: &newer,
        ..fixture.run()
    };
    fixture.store.write_run(&newer_run).unwrap();
    fixture
        .store
        .write_forked_pid(&newer_run, &forked_pid())
        .unwrap();
    fixture.store.write_http_marker(&newer_run).unwrap();

    for strict in [false, true] {
        let state = fixture.recover_state(strict, true);
        assert!(state.warnings.is_empty(), "{:#?}", state.warnings);
        let executor = executor_of(&state);
        assert_eq!(executor.latest, Some(newer.clone()));
        assert_eq!(executor.runs.len(), 2);
        let old = &executor.runs[&ContainerId::new(CONTAINER)];
        assert!(old.completed);
        assert_eq!(old.http, Some(false));
        let new = &executor.runs[&newer];
        assert!(!new.completed);
        assert_eq!(new.http, Some(true));
        assert!(new.tasks.is_empty());
    }
}

#[test]
fn acks_are_recovered_and_unacknowledged_is_what_is_left() {
    let fixture = Fixture::full();
    let state = fixture.recover_state(true, true);
    let task = task_of(&state);
    assert_eq!(
        task.acks.iter().copied().collect::<Vec<_>>(),
        vec![uuid(1), uuid(2)]
    );
    let unacknowledged: Vec<_> = task.unacknowledged().cloned().collect();
    assert_eq!(unacknowledged, vec![three_updates()[2].clone()]);
    assert_eq!(task.latest_state(), Some(ProtoTaskState::TaskFinished));

    // Acknowledge the last one, out of order with an unknown uuid in between.
    fixture
        .store
        .append_ack(&fixture.run(), &fixture.task, uuid(99))
        .unwrap();
    fixture
        .store
        .append_ack(&fixture.run(), &fixture.task, uuid(3))
        .unwrap();
    let state = fixture.recover_state(true, true);
    let task = task_of(&state);
    assert_eq!(task.acks.len(), 4);
    assert_eq!(task.unacknowledged().count(), 0);
    assert_eq!(task.updates.len(), 3);
}

#[test]
fn a_task_with_no_updates_yet_has_nothing_unacknowledged() {
    let fixture = Fixture::full();
    let second = TaskId::new("task-2");
    fixture
        .store
        .write_task(&fixture.run(), &task_info("task-2"))
        .unwrap();
    let state = fixture.recover_state(true, true);
    let task = &run_of(&state).tasks[&second];
    assert_eq!(task.info.as_ref(), Some(&task_info("task-2")));
    assert!(task.updates.is_empty());
    assert_eq!(task.unacknowledged().count(), 0);
    assert_eq!(task.latest_state(), None);
}

// ---------------------------------------------------------------------------------------
// The work-directory lock.

#[test]
fn second_lock_on_a_work_dir_fails_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let work_dir = dir.path().join("work");
    let fs = RealFs::default();
    let first = lock_work_dir(&fs, &work_dir, "pid 1234 started 2026-11-22T10:00:00Z").unwrap();
    assert!(work_dir.is_dir(), "the work directory is created");

    let error = match lock_work_dir(&fs, &work_dir, "pid 5678") {
        Ok(_) => panic!("a second lock was granted"),
        Err(error) => error,
    };
    match &error {
        LockError::Held { path, holder } => {
            assert_eq!(path, &work_dir.join("revenant.lock"));
            assert_eq!(holder, "pid 1234 started 2026-11-22T10:00:00Z");
        }
        other => panic!("expected Held, got {other:?}"),
    }
    assert!(error.to_string().contains("pid 1234"), "{error}");
    // Another seam instance (another "process" as far as the lock goes) is refused too.
    assert!(matches!(
        lock_work_dir(&RealFs::default(), &work_dir, "pid 9"),
        Err(LockError::Held { .. })
    ));

    drop(first);
    let second = lock_work_dir(&fs, &work_dir, "pid 5678").unwrap();
    assert_eq!(
        fs::read_to_string(work_dir.join("revenant.lock")).unwrap(),
        "pid 5678",
        "the new holder replaces the old"
    );
    drop(second);
}

#[test]
fn lock_on_an_unwritable_place_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    fs::write(&file, b"").unwrap();
    // The work directory cannot be created below a regular file.
    let error = match lock_work_dir(&RealFs::default(), &file.join("work"), "me") {
        Ok(_) => panic!("locked below a file"),
        Err(error) => error,
    };
    assert!(matches!(error, LockError::Io { .. }), "{error:?}");
}

#[test]
fn records_appended_after_an_invalid_record_are_not_lost() {
    // A record that is framed correctly but invalid (here an UPDATE without a uuid) is
    // counted as an error. The agent must cut it off as it does a corrupt record: if it
    // stayed, everything appended after it would be hidden from every later recovery.
    let fixture = Fixture::full();
    let path = fixture.task_updates();
    let valid_length = fs::metadata(&path).unwrap().len();
    let mut bad = update_record(&three_updates()[0]);
    bad.update.as_mut().unwrap().uuid.clear();
    let mut data = fs::read(&path).unwrap();
    record::frame_into(&prost::Message::encode_to_vec(&bad), &mut data);
    fs::write(&path, &data).unwrap();
    let bad_bytes = data.len() as u64 - valid_length;

    // Read-only: reported, counted, nothing changed.
    let state = fixture.recover_state(false, false);
    assert_eq!(state.errors, 1);
    assert_eq!(task_of(&state).bytes_cut, bad_bytes);
    assert_eq!(fs::read(&path).unwrap(), data);

    // The agent: counted once, and cut off.
    let state = fixture.recover_state(false, true);
    assert_eq!(state.errors, 1);
    assert_eq!(task_of(&state).bytes_cut, bad_bytes);
    assert_eq!(fs::metadata(&path).unwrap().len(), valid_length);

    // What the agent appends next is recovered next time.
    fixture
        .store
        .append_ack(&fixture.run(), &fixture.task, uuid(3))
        .unwrap();
    let state = fixture.recover_state(true, true);
    assert_eq!(state.errors, 0, "{:#?}", state.warnings);
    let task = task_of(&state);
    assert!(task.acks.contains(&uuid(3)));
    assert_eq!(task.unacknowledged().count(), 0);
}

#[test]
fn resources_appended_after_an_undecodable_record_are_not_lost() {
    let fixture = Fixture::full();
    let path = fixture.paths().resources_info();
    let valid_length = fs::metadata(&path).unwrap().len();
    let mut data = fs::read(&path).unwrap();
    record::frame_into(&[0xff, 0xff, 0xff], &mut data);
    fs::write(&path, &data).unwrap();

    let state = fixture.recover_state(false, true);
    assert_eq!(state.resources.as_ref().unwrap().errors, 1);
    assert_eq!(fs::metadata(&path).unwrap().len(), valid_length);
    fixture
        .store
        .append_resources(&[resource("mem", 64.0, "analytics")])
        .unwrap();
    let state = fixture.recover_state(true, true);
    assert_eq!(state.errors, 0, "{:#?}", state.warnings);
    assert_eq!(state.resources.as_ref().unwrap().resources.len(), 3);
}
