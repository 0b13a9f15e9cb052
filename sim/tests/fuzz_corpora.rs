//! docs/security.md SEC6: every input of the checked-in fuzz corpora (`fuzz/corpus/<target>/`)
//! replayed through its target on the stable toolchain: no panic, every property holds.
//!
//! `cargo test --release -p revenant-sim --test fuzz_corpora -- --ignored write_seeds`
//! writes the hand-made seed inputs (named `seed-*`) into the corpora again.
// The corpora are real files of the repository, read outside any simulation.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

use prost::Message;
use revenant::checkpoint::record::{self, FileKind};
use revenant::proto::{self, envelope::Body};
use revenant_sim::fuzzing;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 3] = [
    ("wire_codec", fuzzing::wire_codec),
    ("record_reader", fuzzing::record_reader),
    ("inspect_recovery", fuzzing::inspect_recovery),
];

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

fn replay(target: &str, run: Target) {
    let dir = corpus(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 5,
        "{}: only {} inputs",
        dir.display(),
        files.len()
    );
    for file in &files {
        let data = std::fs::read(file).expect("a corpus file");
        let result = std::panic::catch_unwind(|| run(&data));
        assert!(result.is_ok(), "{target} panicked on {}", file.display());
    }
    eprintln!("{target}: {} inputs replayed", files.len());
}

#[test]
fn wire_codec_corpus() {
    replay(TARGETS[0].0, TARGETS[0].1);
}

#[test]
fn record_reader_corpus() {
    replay(TARGETS[1].0, TARGETS[1].1);
}

#[test]
fn inspect_recovery_corpus() {
    replay(TARGETS[2].0, TARGETS[2].1);
}

/// The starting point of `inspect_recovery` is a directory the agent would recover whole:
/// the fuzzer's edits start from something that reaches every reader.
#[test]
fn the_well_formed_meta_directory_recovers() {
    let fs = fuzzing::meta_directory(&[]);
    let work_dir = Path::new(fuzzing::WORK_DIR);
    let state = revenant::inspect::inspect(&fs, work_dir, true, Some(fuzzing::BOOT.to_owned()))
        .expect("recovers")
        .expect("a state");
    let text = revenant::inspect::render_text(work_dir, Some(&state));
    for expected in [
        "agent-1",
        "framework-1",
        "executor-1",
        "task-1",
        "TASK_RUNNING",
    ] {
        assert!(text.contains(expected), "{expected} missing in:\n{text}");
    }
}

fn frame(body: Body) -> Vec<u8> {
    revenant::wire::encode(body).expect("fits")
}

fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut out = Vec::new();
    // wire_codec: frames of several kinds, several frames on one stream, HTTP, damage.
    let register = frame(Body::RegisterExecutor(proto::RegisterExecutor {
        framework_id: "framework-1".into(),
        executor_id: "executor-1".into(),
        container_id: "container-1".into(),
        ..Default::default()
    }));
    let update = frame(Body::StatusUpdate(proto::StatusUpdateMessage {
        update: Some(proto::StatusUpdate {
            framework_id: "framework-1".into(),
            executor_id: "executor-1".into(),
            agent_id: "agent-1".into(),
            status: Some(proto::TaskStatus {
                task_id: "task-1".into(),
                state: proto::TaskState::TaskRunning as i32,
                uuid: vec![1; 16],
                message: "running".into(),
                ..Default::default()
            }),
            uuid: vec![1; 16],
            ..Default::default()
        }),
    }));
    let run = frame(Body::RunTask(proto::RunTask {
        framework: Some(proto::FrameworkInfo {
            id: "framework-1".into(),
            name: "f".into(),
            checkpoint: true,
            ..Default::default()
        }),
        executor: None,
        task: Some(proto::TaskInfo {
            task_id: "task-1".into(),
            command: Some(proto::CommandInfo {
                value: "sleep 1".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }));
    let ping = frame(Body::Ping(proto::Ping { sequence: 3 }));
    out.push(("wire_codec", "seed-register", register.clone()));
    out.push(("wire_codec", "seed-update", update.clone()));
    out.push(("wire_codec", "seed-run-task", run.clone()));
    out.push((
        "wire_codec",
        "seed-stream",
        [ping.clone(), register.clone(), update.clone()].concat(),
    ));
    out.push((
        "wire_codec",
        "seed-http",
        b"GET /state HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
    ));
    out.push((
        "wire_codec",
        "seed-oversized",
        u32::MAX.to_le_bytes().to_vec(),
    ));
    let mut truncated = update.clone();
    truncated.truncate(update.len() / 2);
    out.push(("wire_codec", "seed-truncated", truncated));
    let mut garbage = 3u32.to_le_bytes().to_vec();
    garbage.extend_from_slice(&[0xff, 0xff, 0xff]);
    out.push(("wire_codec", "seed-garbage", garbage));
    out.push((
        "wire_codec",
        "seed-empty-frame",
        0u32.to_le_bytes().to_vec(),
    ));

    // record_reader: well-formed logs of each kind, an info file, a torn and a corrupt tail.
    let mut updates = record::file_header(FileKind::TaskUpdates).to_vec();
    record::frame_into(
        &proto::StatusUpdateRecord {
            r#type: proto::status_update_record::Type::Ack as i32,
            update: None,
            uuid: vec![2; 16],
        }
        .encode_to_vec(),
        &mut updates,
    );
    record::frame_into(b"second", &mut updates);
    out.push(("record_reader", "seed-updates", updates.clone()));
    let mut torn = updates.clone();
    torn.truncate(updates.len() - 3);
    out.push(("record_reader", "seed-torn", torn));
    let mut corrupt = updates.clone();
    let middle = corrupt.len() - 4;
    corrupt[middle] ^= 0x55;
    out.push(("record_reader", "seed-corrupt", corrupt));
    out.push((
        "record_reader",
        "seed-info",
        record::info_file(
            &proto::AgentInfo {
                id: "agent-1".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
    ));
    let mut resources = record::file_header(FileKind::Resources).to_vec();
    record::frame_into(
        &proto::Resource {
            name: "cpus".into(),
            scalar: 1.0,
            role: "db".into(),
            reservation: "f".into(),
        }
        .encode_to_vec(),
        &mut resources,
    );
    out.push(("record_reader", "seed-resources", resources));
    out.push((
        "record_reader",
        "seed-header-prefix",
        record::file_header(FileKind::Info)[..5].to_vec(),
    ));

    // inspect_recovery: the well-formed directory, then edits of several files.
    let edit = |selector: u8, bytes: &[u8]| {
        let mut out = vec![selector];
        out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        out.extend_from_slice(bytes);
        out
    };
    out.push(("inspect_recovery", "seed-well-formed", Vec::new()));
    out.push((
        "inspect_recovery",
        "seed-forked-pid",
        edit(8, b"12 not-a-time boot"),
    ));
    out.push((
        "inspect_recovery",
        "seed-no-latest-run",
        edit(0x40 | 7, b""),
    ));
    out.push((
        "inspect_recovery",
        "seed-updates-garbage",
        [edit(0x80 | 11, b"\x08\x01\xfe\x12\x03abc"), edit(12, b"")].concat(),
    ));
    out.push(("inspect_recovery", "seed-agent-info", edit(3, &updates)));
    out.push((
        "inspect_recovery",
        "seed-fresh-link",
        [edit(0x20 | 2, b"../../etc"), edit(0x80 | 3, b"\x0a\x01a")].concat(),
    ));
    out
}

#[test]
#[ignore = "writes the seed inputs into fuzz/corpus/"]
fn write_seeds() {
    for (target, name, bytes) in seeds() {
        let dir = corpus(target);
        std::fs::create_dir_all(&dir).expect("corpus directory");
        std::fs::write(dir.join(name), bytes).expect("seed written");
    }
}

/// The seeds in the corpora are the ones this file makes (regenerate with `write_seeds`).
#[test]
fn seeds_are_current() {
    for (target, name, bytes) in seeds() {
        let path = corpus(target).join(name);
        let on_disk = std::fs::read(&path).unwrap_or_default();
        assert!(
            on_disk == bytes,
            "{} is stale: run the ignored write_seeds test",
            path.display()
        );
    }
}
