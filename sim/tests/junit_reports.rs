#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
//! `sweep --junit` and `merge`, run as the built binary: two shards' reports merge into
//! one whose counts are the sum, a failing run carries its seed, oracle and reproduce
//! command, and the exit codes are 0 (green), 1 (a violation) and 2 (bad input).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use revenant_sim::junit;

fn sim(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_revenant-sim"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run revenant-sim")
}

fn scenario(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name)
        .display()
        .to_string()
}

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn shard_reports_merge_into_one() {
    let dir = tempfile::tempdir().unwrap();
    let retried = scenario("status_update_retried_until_acknowledged.toml");
    let mut reports: Vec<PathBuf> = Vec::new();
    for shard in ["1/2", "2/2"] {
        let file = dir.path().join(format!("shard-{}.xml", &shard[..1]));
        let output = sim(
            &[
                "sweep",
                &retried,
                "--seeds",
                "0..4",
                "--shard",
                shard,
                "--jobs",
                "1",
                "--junit",
                file.to_str().unwrap(),
            ],
            dir.path(),
        );
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        reports.push(file);
    }
    let merged_file = dir.path().join("merged.xml");
    let mut args = vec!["merge", "-o", merged_file.to_str().unwrap()];
    args.extend(reports.iter().map(|r| r.to_str().unwrap()));
    let output = sim(&args, dir.path());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let merged = junit::read(&merged_file).unwrap();
    let result = &merged["status_update_retried_until_acknowledged"];
    assert_eq!(result.runs, 4, "two shards of two seeds each");
    assert!(result.failures.is_empty());
    let xml = std::fs::read_to_string(&merged_file).unwrap();
    assert!(
        xml.contains("tests=\"1\"") && xml.contains("failures=\"0\""),
        "{xml}"
    );

    // Merging a shard twice would count its runs twice only if it failed somewhere; a
    // file that is not a sweep report is refused with its name.
    std::fs::write(
        dir.path().join("junk.xml"),
        "<testsuites name=\"x\"></testsuites>",
    )
    .unwrap();
    let output = sim(&["merge", "-o", "out.xml", "junk.xml"], dir.path());
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("junk.xml"), "{}", text(&output));
}

#[test]
fn a_failing_run_is_a_failure_with_its_seed_oracle_and_command() {
    let dir = tempfile::tempdir().unwrap();
    // The catalogue's retry scenario, expecting a state the task never reaches.
    let original =
        std::fs::read_to_string(scenario("status_update_retried_until_acknowledged.toml")).unwrap();
    let broken = original.replace("t1 = \"TASK_FINISHED\"", "t1 = \"TASK_FAILED\"");
    assert_ne!(broken, original);
    let file = dir.path().join("expects_the_wrong_state.toml");
    std::fs::write(&file, broken).unwrap();
    let report = dir.path().join("report.xml");
    let output = sim(
        &[
            "sweep",
            file.to_str().unwrap(),
            "--seeds",
            "0..2",
            "--jobs",
            "1",
            "--junit",
            report.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let xml = std::fs::read_to_string(&report).unwrap();
    assert!(xml.contains("failures=\"1\""), "{xml}");
    assert!(xml.contains("2 of 2 runs failed (seeds 0, 1)"), "{xml}");
    assert!(xml.contains("--seed 1"), "{xml}");
    let results = junit::read(&report).unwrap();
    let result = &results["expects_the_wrong_state"];
    assert_eq!(result.runs, 2);
    assert_eq!(
        result.failures.keys().copied().collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert!(
        result.failures[&0][0].starts_with('['),
        "{:?}",
        result.failures
    );

    // The merge of one failing report fails too, and a bad flag is exit 2.
    let output = sim(
        &["merge", "-o", "m.xml", report.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let output = sim(&["sweep", "--seeds", "ten"], dir.path());
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
}
