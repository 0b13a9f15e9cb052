//! `revenant inspect`, run as the built binary on work directories written by the
//! agent's own writers: the report, the JSON, `--strict`, and that it never changes a
//! byte of what it reads.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

fn inspect(work_dir: &Path, flags: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_revenant"))
        .arg("inspect")
        .arg("--work-dir")
        .arg(work_dir)
        .args(flags)
        .output()
        .expect("run revenant inspect")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("utf-8 stderr")
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        stderr(output)
    );
}

/// The report with the temporary directory replaced by `<DIR>`.
fn report(fixture: &Fixture, flags: &[&str]) -> String {
    let output = inspect(fixture.work_dir(), flags);
    assert_success(&output);
    assert_eq!(stderr(&output), "", "nothing on stderr");
    stdout(&output).replace(&fixture.work_dir().display().to_string(), "<DIR>")
}

fn json(fixture: &Fixture, flags: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(flags);
    let output = inspect(fixture.work_dir(), &all);
    assert_success(&output);
    serde_json::from_str(&stdout(&output)).expect("inspect --json prints JSON")
}

#[test]
fn inspect_reports_a_work_dir() {
    let fixture = Fixture::full();
    let expected = "\
meta directory: <DIR>/meta
boot id: 6a1f3c52-0d6e-4c8e-9a51-2b7d0f4e9c11
checkpointed resources: cpus(analytics):2; disk(analytics):1024
agent agent-1 at node-7.example:5051
  framework framework-1 (batch) pid scheduler@10.0.0.5:5050
    executor executor-1 latest run container-1
      run container-1: forked pid 4242 (start 987654) boot 6a1f3c52-0d6e-4c8e-9a51-2b7d0f4e9c11; at executor(1)@10.0.0.7:40123
        task task-1 TASK_FINISHED: 3 update(s), 2 acknowledged, 1 unacknowledged
          unacknowledged TASK_FINISHED uuid 03030303-0303-0303-0303-030303030303 message \"TASK_FINISHED of task-1\"
errors: 0
warnings: 0
";
    assert_eq!(report(&fixture, &["--ignore-boot-id"]), expected);
    // The alias of the flag, as Mesos spells it.
    let output = Command::new(env!("CARGO_BIN_EXE_revenant"))
        .args(["inspect", "--ignore-boot-id", "--work_dir"])
        .arg(fixture.work_dir())
        .output()
        .unwrap();
    assert_success(&output);
    assert!(stdout(&output).contains("agent agent-1 at node-7.example:5051"));
}

#[test]
fn inspect_json_has_the_recovered_tree() {
    let fixture = Fixture::full();
    let value = json(&fixture, &["--ignore-boot-id"]);
    let meta = fixture.paths().root().display().to_string();
    assert_eq!(value["meta_dir"], meta.as_str());
    assert_eq!(value["recovered"], true);
    assert_eq!(value["checkpointed_boot_id"], BOOT_ID);
    assert_eq!(value["rebooted"], false);
    assert_eq!(value["errors"], 0);
    assert_eq!(value["warnings"], Value::Array(vec![]));
    assert_eq!(
        value["resources"],
        serde_json::json!([
            {"name": "cpus", "scalar": 2.0, "role": "analytics", "reservation": "reserved-for-analytics"},
            {"name": "disk", "scalar": 1024.0, "role": "analytics", "reservation": "reserved-for-analytics"},
        ])
    );

    let agent = &value["agent"];
    assert_eq!(agent["id"], AGENT);
    assert_eq!(agent["hostname"], "node-7.example");
    assert_eq!(agent["port"], 5051);
    assert_eq!(agent["errors"], 0);
    let frameworks = agent["frameworks"].as_array().unwrap();
    assert_eq!(frameworks.len(), 1);
    let framework = &frameworks[0];
    assert_eq!(framework["id"], FRAMEWORK);
    assert_eq!(framework["name"], "batch");
    assert_eq!(framework["pid"], FRAMEWORK_PID);
    let executor = &framework["executors"][0];
    assert_eq!(executor["id"], EXECUTOR);
    assert_eq!(executor["has_info"], true);
    assert_eq!(executor["latest"], CONTAINER);
    let runs = executor["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run["id"], CONTAINER);
    assert_eq!(
        run["forked_pid"],
        serde_json::json!({"pid": 4242, "start_time": 987654, "boot_id": BOOT_ID})
    );
    assert_eq!(run["libprocess_pid"], LIBPROCESS_PID);
    assert_eq!(run["http"], false);
    assert_eq!(run["completed"], false);
    let task = &run["tasks"][0];
    assert_eq!(task["id"], TASK);
    assert_eq!(task["has_info"], true);
    assert_eq!(task["latest_state"], "TASK_FINISHED");
    assert_eq!(task["bytes_cut"], 0);
    assert_eq!(task["errors"], 0);
    let states: Vec<&str> = task["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]);
    assert_eq!(
        task["acknowledged"],
        serde_json::json!([uuid(1).to_string(), uuid(2).to_string()])
    );
    assert_eq!(
        task["unacknowledged"],
        serde_json::json!([{
            "uuid": uuid(3).to_string(),
            "state": "TASK_FINISHED",
            "reason": "REASON_NONE",
            "message": "TASK_FINISHED of task-1",
        }])
    );
}

#[test]
fn inspect_strict_on_a_corrupt_task_updates_fails_naming_the_file() {
    let fixture = Fixture::full();
    let path = fixture.task_updates();
    let mut data = fs::read(&path).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0x10;
    fs::write(&path, &data).unwrap();
    let before = snapshot(fixture.work_dir());

    let output = inspect(fixture.work_dir(), &["--strict", "--ignore-boot-id"]);
    assert!(!output.status.success());
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    let err = stderr(&output);
    assert!(
        err.contains(&path.display().to_string()),
        "stderr names the file: {err}"
    );
    assert!(err.contains("checksum mismatch"), "{err}");

    // --json does not change that.
    let output = inspect(
        fixture.work_dir(),
        &["--strict", "--json", "--ignore-boot-id"],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains(&path.display().to_string()));

    // Without --strict the error is counted and the rest shown.
    let text = report(&fixture, &["--ignore-boot-id"]);
    assert!(text.contains("errors: 1\n"), "{text}");
    assert!(
        text.contains("task task-1 TASK_FINISHED: 3 update(s), 1 acknowledged, 2 unacknowledged"),
        "{text}"
    );
    assert!(
        text.contains("task.updates: record checksum mismatch"),
        "{text}"
    );
    let value = json(&fixture, &["--ignore-boot-id"]);
    assert_eq!(value["errors"], 1);
    assert_eq!(value["warnings"][0]["kind"], "error");
    assert_eq!(
        value["warnings"][0]["path"],
        path.display().to_string().as_str()
    );

    assert_eq!(
        snapshot(fixture.work_dir()),
        before,
        "inspect changed bytes"
    );
}

#[test]
fn inspect_never_modifies_the_directory() {
    let fixture = Fixture::full();
    // A torn final record in task.updates and in resources.info: the agent would cut
    // them off; inspect must only report them.
    for path in [fixture.task_updates(), fixture.paths().resources_info()] {
        let length = fs::metadata(&path).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(length - 3)
            .unwrap();
    }
    // And a leftover temp file of an interrupted replace.
    let temp = revenant::os::temp_path_for(&fixture.paths().forked_pid(&fixture.run()));
    fs::write(&temp, b"99 1 x\n").unwrap();
    let before = snapshot(fixture.work_dir());

    let text = report(&fixture, &["--ignore-boot-id"]);
    assert!(text.contains("byte(s) of torn or corrupt tail"), "{text}");
    assert!(text.contains("torn final record"), "{text}");
    assert!(text.contains("errors: 0\n"), "{text}");
    assert!(text.contains("warnings: 2\n"), "{text}");
    let value = json(&fixture, &["--ignore-boot-id"]);
    assert!(
        value["warnings"][0]["kind"]["torn_tail"].is_object(),
        "{value}"
    );
    let _ = inspect(fixture.work_dir(), &["--strict", "--ignore-boot-id"]);
    let _ = inspect(fixture.work_dir(), &[]);

    assert_eq!(
        snapshot(fixture.work_dir()),
        before,
        "inspect changed bytes"
    );
}

#[test]
fn inspect_of_a_work_dir_without_meta() {
    let fixture = Fixture::new();
    let text = report(&fixture, &[]);
    assert_eq!(
        text,
        "meta directory: <DIR>/meta\nnothing to recover (no meta directory: a first start)\n"
    );
    let value = json(&fixture, &[]);
    assert_eq!(value["recovered"], false);
    assert!(!fixture.paths().root().exists(), "inspect created meta/");
}

#[test]
fn inspect_of_a_missing_work_dir_fails() {
    let fixture = Fixture::new();
    let missing = fixture.work_dir().join("nowhere");
    let output = inspect(&missing, &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("does not exist"));
    assert!(!missing.exists());
}

#[test]
fn inspect_reports_a_reboot_unless_told_to_ignore_it() {
    let fixture = Fixture::full();
    // The fixture's boot id is made up, so on a machine with a boot id it differs.
    let machine = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok();
    let text = report(&fixture, &[]);
    if machine.is_some() {
        assert!(text.contains("the machine rebooted since"), "{text}");
        assert!(text.contains("agent: none recovered"), "{text}");
        assert!(
            text.contains("checkpointed resources: cpus(analytics):2"),
            "{text}"
        );
        let value = json(&fixture, &[]);
        assert_eq!(value["rebooted"], true);
        assert_eq!(value["agent"], Value::Null);
    }
    // Written with this machine's boot id, it is recovered without the flag.
    if let Some(machine) = machine {
        fixture.store.write_boot_id(machine.trim()).unwrap();
        let text = report(&fixture, &[]);
        assert!(text.contains("agent agent-1 at"), "{text}");
        assert!(!text.contains("rebooted"), "{text}");
    }
}

/// docs/recovery-rules.md R1, R2: once the agent has detected a reboot it removes
/// `slaves/latest` and then writes the new boot id. From then on neither the agent's
/// recovery nor `inspect` (even with `--ignore-boot-id`) finds the pre-reboot agent.
#[test]
fn after_a_detected_reboot_neither_recovery_nor_inspect_finds_the_old_agent() {
    let fixture = Fixture::full();
    // What a rebooted agent does before it registers as new.
    fixture.store.forget_latest_agent().unwrap();
    let machine = fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| id.trim().to_owned())
        .unwrap_or_else(|_| "the-new-boot".to_owned());
    fixture.store.write_boot_id(&machine).unwrap();
    assert!(!fixture.paths().latest_agent().exists());
    let state = fixture
        .recover(&options(true, true, Some(&machine)))
        .unwrap()
        .unwrap();
    assert!(!state.rebooted);
    assert!(state.agent.is_none(), "the agent's recovery finds no agent");
    let text = report(&fixture, &["--ignore-boot-id"]);
    assert!(text.contains("agent: none recovered"), "{text}");
    assert!(text.contains("no latest agent"), "{text}");
    let value = json(&fixture, &["--ignore-boot-id"]);
    assert_eq!(value["agent"], Value::Null);
    assert_eq!(value["rebooted"], false);
}

/// A task the agent launched but that has no update yet: text and JSON give one answer
/// (TASK_STAGING), as `docs/checkpoint-format.md` says of a task without updates.
#[test]
fn a_task_without_updates_is_staging_in_text_and_json() {
    let fixture = Fixture::new();
    let store = &fixture.store;
    store.write_boot_id(BOOT_ID).unwrap();
    store.write_agent_info(&agent_info()).unwrap();
    store
        .write_framework(&fixture.agent, &framework_info(), FRAMEWORK_PID)
        .unwrap();
    store
        .write_executor(&fixture.agent, &executor_info())
        .unwrap();
    let run = fixture.run();
    store.write_run(&run).unwrap();
    store.write_task(&run, &task_info(TASK)).unwrap();
    let text = report(&fixture, &["--ignore-boot-id"]);
    assert!(
        text.contains(&format!("task {TASK} TASK_STAGING: 0 update(s)")),
        "{text}"
    );
    let value = json(&fixture, &["--ignore-boot-id"]);
    let task = &value["agent"]["frameworks"][0]["executors"][0]["runs"][0]["tasks"][0];
    assert_eq!(task["id"], TASK);
    assert_eq!(task["latest_state"], "TASK_STAGING");
}
