//! Properties of the record framing (`revenant::checkpoint::record`) and of recovering a
//! record log through the whole of `recover`:
//!
//! - for any records and any cut of the file, exactly the complete records before the
//!   cut come back, a torn tail is reported iff the cut fell inside a record (or inside
//!   the file header), and the agent's truncation leaves the file ending at the last
//!   complete record while a read-only recovery leaves it as it was;
//! - every single-byte flip of a `task.updates` file is detected: a strict error naming
//!   the file or a counted error, never a panic, never a record that was not written;
//! - the worked example of `docs/checkpoint-format.md` is what the code writes.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use prost::Message;
use revenant::checkpoint::record::{self, FileKind, Tail, FILE_HEADER_BYTES};
use revenant::checkpoint::{State, WarningKind};
use revenant::ids::Uuid;
use revenant::proto::{
    status_update_record, StatusUpdate, StatusUpdateRecord, TaskState as ProtoTaskState,
};

const CASES: u32 = 192;

fn config() -> Config {
    Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    }
}

/// A record log of `kind` holding `payloads`, and the offset where each record ends.
fn log(kind: FileKind, payloads: &[Vec<u8>]) -> (Vec<u8>, Vec<usize>) {
    let mut data = record::file_header(kind).to_vec();
    let mut ends = Vec::new();
    for payload in payloads {
        record::frame_into(payload, &mut data);
        ends.push(data.len());
    }
    (data, ends)
}

/// What a reader must make of `data[..cut]`: how many records are complete, where the
/// valid prefix ends, and the tail.
fn expected_at_cut(ends: &[usize], cut: usize) -> (usize, u64, Tail) {
    if cut == 0 {
        return (0, 0, Tail::Clean);
    }
    if cut < FILE_HEADER_BYTES {
        return (
            0,
            0,
            Tail::Torn {
                offset: 0,
                bytes: cut as u64,
            },
        );
    }
    let complete = ends.iter().filter(|end| **end <= cut).count();
    let boundary = if complete == 0 {
        FILE_HEADER_BYTES
    } else {
        ends[complete - 1]
    };
    let tail = if boundary == cut {
        Tail::Clean
    } else {
        Tail::Torn {
            offset: boundary as u64,
            bytes: (cut - boundary) as u64,
        }
    };
    (complete, boundary as u64, tail)
}

fn arb_uuid() -> impl Strategy<Value = Uuid> {
    any::<[u8; 16]>().prop_map(Uuid)
}

fn arb_task_state() -> impl Strategy<Value = ProtoTaskState> {
    (0i32..=11).prop_map(|n| ProtoTaskState::try_from(n).unwrap())
}

/// A record the agent could have written: an UPDATE of [`TASK`] or an ACK.
fn arb_status_update_record() -> impl Strategy<Value = StatusUpdateRecord> {
    let update = (arb_uuid(), arb_task_state(), ".{0,40}", any::<f64>()).prop_map(
        |(uuid, state, message, timestamp)| {
            let mut update = update(TASK, state, 0);
            update.uuid = uuid.to_vec();
            let status = update.status.as_mut().unwrap();
            status.uuid = uuid.to_vec();
            status.message = message;
            status.timestamp = timestamp;
            update_record(&update)
        },
    );
    prop_oneof![update, arb_uuid().prop_map(ack_record)]
}

/// The updates and acks that recovering `records` must give.
fn fold(records: &[StatusUpdateRecord]) -> (Vec<StatusUpdate>, BTreeSet<Uuid>) {
    let mut updates = Vec::new();
    let mut acks = BTreeSet::new();
    for record in records {
        if record.r#type == status_update_record::Type::Ack as i32 {
            acks.insert(Uuid::from_bytes(&record.uuid).unwrap());
        } else {
            updates.push(record.update.clone().unwrap());
        }
    }
    (updates, acks)
}

// ---------------------------------------------------------------------------------------
// Cuts.

fn check_scan_at_every_cut(payloads: &[Vec<u8>]) -> Result<(), TestCaseError> {
    for kind in [FileKind::TaskUpdates, FileKind::Resources, FileKind::Info] {
        let (data, ends) = log(kind, payloads);
        for cut in 0..=data.len() {
            let scan = record::scan(&data[..cut], kind)
                .map_err(|error| TestCaseError::fail(format!("cut {cut}: {error}")))?;
            let (complete, valid_length, tail) = expected_at_cut(&ends, cut);
            let got: Vec<&[u8]> = scan.records.iter().map(|(_, p)| *p).collect();
            let want: Vec<&[u8]> = payloads[..complete].iter().map(Vec::as_slice).collect();
            prop_assert_eq!(got, want, "cut {}", cut);
            for (index, (offset, _)) in scan.records.iter().enumerate() {
                let start = if index == 0 {
                    FILE_HEADER_BYTES
                } else {
                    ends[index - 1]
                };
                prop_assert_eq!(*offset, start as u64);
            }
            prop_assert_eq!(scan.valid_length, valid_length, "cut {}", cut);
            prop_assert_eq!(&scan.tail, &tail, "cut {}", cut);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn scan_of_any_cut_of_random_payloads(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..48), 0..6),
    ) {
        check_scan_at_every_cut(&payloads)?;
    }

    #[test]
    fn scan_of_any_cut_of_status_update_records(
        records in prop::collection::vec(arb_status_update_record(), 0..5),
    ) {
        let payloads: Vec<Vec<u8>> = records.iter().map(Message::encode_to_vec).collect();
        check_scan_at_every_cut(&payloads)?;
    }

    #[test]
    fn info_files_read_back_only_when_whole(payload in prop::collection::vec(any::<u8>(), 0..64)) {
        let data = record::info_file(&payload);
        prop_assert_eq!(
            record::read_info(&data),
            Ok(record::InfoRead::Message(&payload[..]))
        );
        // An info file is replaced atomically: any shorter prefix but the empty file is
        // an error, never a message.
        prop_assert_eq!(record::read_info(&data[..0]), Ok(record::InfoRead::Empty));
        for cut in 1..data.len() {
            prop_assert!(record::read_info(&data[..cut]).is_err(), "cut {}", cut);
        }
    }
}

/// Recovers the fixture's `task.updates` after writing `data[..cut]` to it, read-only
/// and then as the agent, in `strict` mode (a torn tail is never an error).
fn check_recover_at_cut(
    fixture: &Fixture,
    records: &[StatusUpdateRecord],
    data: &[u8],
    ends: &[usize],
    cut: usize,
    strict: bool,
) -> Result<(), TestCaseError> {
    let path = fixture.task_updates();
    fs::write(&path, &data[..cut]).unwrap();
    let (complete, valid_length, tail) = expected_at_cut(ends, cut);
    let (updates, acks) = fold(&records[..complete]);
    let check = |state: &State| -> Result<(), TestCaseError> {
        let task = task_of(state);
        prop_assert_eq!(&task.updates, &updates, "cut {}", cut);
        prop_assert_eq!(&task.acks, &acks, "cut {}", cut);
        prop_assert_eq!(task.bytes_cut, cut as u64 - valid_length, "cut {}", cut);
        prop_assert_eq!(state.errors, 0);
        let torn: Vec<_> = state
            .warnings
            .iter()
            .filter(|w| matches!(w.kind, WarningKind::TornTail { .. }))
            .collect();
        match &tail {
            Tail::Torn { offset, bytes } => {
                prop_assert_eq!(torn.len(), 1, "cut {}: {:?}", cut, state.warnings);
                prop_assert_eq!(&torn[0].path, &path);
                prop_assert_eq!(
                    &torn[0].kind,
                    &WarningKind::TornTail {
                        offset: *offset,
                        bytes: *bytes
                    }
                );
            }
            _ => prop_assert!(torn.is_empty(), "cut {}: {:?}", cut, state.warnings),
        }
        prop_assert_eq!(state.warnings.len(), torn.len(), "{:?}", state.warnings);
        Ok(())
    };

    // Read-only (inspect): the file is not changed.
    let state = fixture.recover_state(strict, false);
    check(&state)?;
    prop_assert_eq!(fs::read(&path).unwrap(), &data[..cut]);

    // The agent: the file ends at the last complete record afterwards (a torn header is
    // replaced by a whole one; an empty file stays empty).
    let state = fixture.recover_state(strict, true);
    check(&state)?;
    let after = fs::read(&path).unwrap();
    if cut == 0 {
        prop_assert!(after.is_empty());
    } else if cut < FILE_HEADER_BYTES {
        prop_assert_eq!(&after[..], &record::file_header(FileKind::TaskUpdates)[..]);
    } else {
        prop_assert_eq!(&after[..], &data[..valid_length as usize], "cut {}", cut);
    }

    // What is left is clean.
    let state = fixture.recover_state(true, true);
    prop_assert!(state.warnings.is_empty(), "{:?}", state.warnings);
    prop_assert_eq!(&task_of(&state).updates, &updates);
    Ok(())
}

#[test]
fn recover_of_task_updates_cut_anywhere() {
    // One tree for every case; only task.updates changes.
    let fixture = Fixture::full();
    let mut runner = TestRunner::new(config());
    let strategy = (
        prop::collection::vec(arb_status_update_record(), 0..5),
        any::<prop::sample::Index>(),
        any::<bool>(),
    );
    runner
        .run(&strategy, |(records, cut, strict)| {
            let payloads: Vec<Vec<u8>> = records.iter().map(Message::encode_to_vec).collect();
            let (data, ends) = log(FileKind::TaskUpdates, &payloads);
            let cut = cut.index(data.len() + 1);
            check_recover_at_cut(&fixture, &records, &data, &ends, cut, strict)
        })
        .unwrap();
}

#[test]
fn recover_of_task_updates_at_every_cut_of_one_log() {
    // Exhaustively, for the fixture's own log: every cut, both modes.
    let fixture = Fixture::full();
    let data = fs::read(fixture.task_updates()).unwrap();
    let scan = record::scan(&data, FileKind::TaskUpdates).unwrap();
    let records: Vec<StatusUpdateRecord> = scan
        .records
        .iter()
        .map(|(_, payload)| StatusUpdateRecord::decode(*payload).unwrap())
        .collect();
    assert_eq!(records.len(), 5);
    let payloads: Vec<Vec<u8>> = records.iter().map(Message::encode_to_vec).collect();
    let (rebuilt, ends) = log(FileKind::TaskUpdates, &payloads);
    assert_eq!(
        rebuilt, data,
        "the writers frame as record::frame_into does"
    );
    for cut in 0..=data.len() {
        for strict in [false, true] {
            check_recover_at_cut(&fixture, &records, &data, &ends, cut, strict)
                .unwrap_or_else(|error| panic!("cut {cut} strict {strict}: {error}"));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Single-byte flips.

const MASKS: [u8; 4] = [0x01, 0x80, 0xff, 0x5a];

/// Every prefix of `records`, folded: what a recovery may legitimately return.
fn prefixes(records: &[StatusUpdateRecord]) -> Vec<(Vec<StatusUpdate>, BTreeSet<Uuid>)> {
    (0..=records.len()).map(|n| fold(&records[..n])).collect()
}

#[test]
fn every_single_byte_flip_of_task_updates_is_detected() {
    let fixture = Fixture::full();
    let path = fixture.task_updates();
    let original = fs::read(&path).unwrap();
    let scan = record::scan(&original, FileKind::TaskUpdates).unwrap();
    let original_payloads: Vec<&[u8]> = scan.records.iter().map(|(_, p)| *p).collect();
    let records: Vec<StatusUpdateRecord> = original_payloads
        .iter()
        .map(|payload| StatusUpdateRecord::decode(*payload).unwrap())
        .collect();
    let allowed = prefixes(&records);

    let mut flips = 0;
    for offset in 0..original.len() {
        for mask in MASKS {
            let mut data = original.clone();
            data[offset] ^= mask;
            flips += 1;
            let at = format!("offset {offset} mask {mask:#04x}");

            // The framing alone: a header error, or a corrupt (never clean, never torn)
            // tail after a prefix of the original records.
            match record::scan(&data, FileKind::TaskUpdates) {
                Err(_) => assert!(offset < FILE_HEADER_BYTES, "{at}"),
                Ok(scan) => {
                    assert!(
                        matches!(scan.tail, Tail::Corrupt { .. }),
                        "{at}: {:?}",
                        scan.tail
                    );
                    let got: Vec<&[u8]> = scan.records.iter().map(|(_, p)| *p).collect();
                    assert!(original_payloads.starts_with(&got), "{at}");
                }
            }

            fs::write(&path, &data).unwrap();
            // Strict: an error naming the file.
            let error = fixture
                .recover(&options(true, false, Some(BOOT_ID)))
                .expect_err(&at);
            assert_eq!(error.path, path, "{at}: {error}");

            // Non-strict: one counted error, summed to the top, and a prefix of what was
            // written.
            let state = fixture.recover_state(false, false);
            let task = task_of(&state);
            assert_eq!(task.errors, 1, "{at}");
            assert_eq!(state.errors, 1, "{at}");
            assert_eq!(agent_of(&state).errors, 1, "{at}");
            assert!(
                state
                    .warnings
                    .iter()
                    .any(|w| w.kind == WarningKind::Error && w.path == path),
                "{at}: {:?}",
                state.warnings
            );
            let recovered = (task.updates.clone(), task.acks.clone());
            assert!(
                allowed.contains(&recovered),
                "{at}: recovered records that were not a prefix of those written"
            );
            assert_eq!(fs::read(&path).unwrap(), data, "{at}: read-only changed it");
        }
    }
    assert_eq!(flips, original.len() * MASKS.len());
    fs::write(&path, &original).unwrap();
    assert_eq!(fixture.recover_state(true, true).errors, 0);
}

#[test]
fn every_single_byte_flip_of_resources_and_info_files_is_detected() {
    let fixture = Fixture::full();
    let files = [
        fixture.paths().resources_info(),
        fixture.paths().agent_info(&fixture.agent),
        fixture
            .paths()
            .framework_info(&fixture.agent, &fixture.framework),
        fixture.paths().task_info(&fixture.run(), &fixture.task),
    ];
    for path in files {
        let original = fs::read(&path).unwrap();
        for offset in 0..original.len() {
            for mask in MASKS {
                let mut data = original.clone();
                data[offset] ^= mask;
                fs::write(&path, &data).unwrap();
                let at = format!("{} offset {offset} mask {mask:#04x}", path.display());
                let error = fixture
                    .recover(&options(true, false, Some(BOOT_ID)))
                    .expect_err(&at);
                assert_eq!(error.path, path, "{at}");
                let state = fixture.recover_state(false, false);
                assert_eq!(state.errors, 1, "{at}");
            }
        }
        fs::write(&path, &original).unwrap();
    }
    assert_eq!(fixture.recover_state(true, true).errors, 0);
}

// ---------------------------------------------------------------------------------------
// The documented format.

/// The worked example of `docs/checkpoint-format.md`: a `task.updates` file holding one
/// ACK record for the uuid 00 01 .. 0f.
fn worked_example() -> Vec<u8> {
    let uuid = Uuid(std::array::from_fn(|i| i as u8));
    let payload = ack_record(uuid).encode_to_vec();
    let (data, _) = log(FileKind::TaskUpdates, &[payload]);
    data
}

/// The bytes of the hex dump between the worked-example markers of the format doc:
/// lines of `OFFSET: XX XX ...`, with anything after ` |` ignored.
fn documented_bytes(doc: &str) -> Vec<u8> {
    let begin = doc
        .find("<!-- worked-example:begin -->")
        .expect("begin marker");
    let end = doc.find("<!-- worked-example:end -->").expect("end marker");
    let mut bytes = Vec::new();
    for line in doc[begin..end].lines() {
        let Some((offset, rest)) = line.split_once(": ") else {
            continue;
        };
        if offset.len() != 4 || !offset.chars().all(|c| c.is_ascii_hexdigit()) {
            continue;
        }
        assert_eq!(
            usize::from_str_radix(offset, 16).unwrap(),
            bytes.len(),
            "offset column of {line:?}"
        );
        let hex = rest.split(" |").next().unwrap();
        for byte in hex.split_whitespace() {
            bytes.push(u8::from_str_radix(byte, 16).unwrap());
        }
    }
    bytes
}

#[test]
fn format_doc_worked_example_is_what_the_code_writes() {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/checkpoint-format.md");
    let doc = fs::read_to_string(&doc_path).unwrap();
    let documented = documented_bytes(&doc);
    let written = worked_example();
    assert_eq!(
        documented,
        written,
        "the doc's worked example is stale; the code writes:\n{}",
        hex_dump(&written)
    );
    // And it reads back as the ACK it is.
    let scan = record::scan(&documented, FileKind::TaskUpdates).unwrap();
    assert_eq!(scan.tail, Tail::Clean);
    let record = StatusUpdateRecord::decode(scan.records[0].1).unwrap();
    assert_eq!(record.r#type, status_update_record::Type::Ack as i32);
    // The doc's cut and damaged variants of it.
    assert_eq!(documented.len(), 40);
    let torn = record::scan(&documented[..30], FileKind::TaskUpdates).unwrap();
    assert_eq!(
        torn.tail,
        Tail::Torn {
            offset: 8,
            bytes: 22
        }
    );
    assert_eq!(torn.valid_length, 8);
    let mut damaged = documented.clone();
    damaged[8] = 0x15;
    let corrupt = record::scan(&damaged, FileKind::TaskUpdates).unwrap();
    assert!(
        matches!(&corrupt.tail, Tail::Corrupt { offset: 8, reason, .. } if reason == "record length check failed"),
        "{:?}",
        corrupt.tail
    );
    // The doc also states the two checksums of the record header in words.
    let crc_of_length = crc32c::crc32c(&documented[8..12]);
    assert!(
        doc.contains(&format!("0x{crc_of_length:08x}")),
        "the doc names crc32c of the length bytes as 0x{crc_of_length:08x}"
    );
    // crc32c's standard check value, which the doc quotes so that readers can check
    // their CRC implementation.
    assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    assert!(doc.contains("0xe3069283"));
}

fn hex_dump(data: &[u8]) -> String {
    data.chunks(16)
        .enumerate()
        .map(|(line, chunk)| {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            format!("{:04x}: {}\n", line * 16, hex.join(" "))
        })
        .collect()
}
