//! Corruption aimed at a record's length field (docs/simulator-reach.md rule 14b): a
//! `corrupt` fault with `op = "length_field"` flips bit 23 of the length field of the
//! first complete record of a `task.updates` log, so the damaged length runs past the
//! end of the file. The record's length check (a checksum of the length) tells such
//! damage apart from a torn tail; strict recovery must stop on it
//! (docs/recovery-rules.md R24).
//!
//! A well-framed record that does not decode (docs/simulator-reach.md rule 14u,
//! docs/recovery-rules.md R37 to R39): a `corrupt` fault with `op = "undecodable_record"`,
//! done while the agent is down, appends to one `task.updates` log of the latest agent a
//! record whose length check and payload check are right and whose payload is a status
//! update record of a kind no release wrote (as a newer release's record would look to
//! this one). Every injected record is kept (path, offset, bytes) for the
//! `undecodable_record` oracle.

use std::path::PathBuf;

use rand::rngs::StdRng;
use rand::Rng;
use revenant::checkpoint::record::{FILE_HEADER_BYTES, RECORD_HEADER_BYTES};
use revenant::os::FileSystem;

use crate::fs::SimFs;

/// What a `corrupt` fault's `op` may name.
pub const PARTS: &[&str] = &[
    "length_field",
    UNDECODABLE_RECORD,
    HEADER_PREFIX,
    HEADER_MAGIC,
    HEADER_ZEROES,
    HEADER_FOREIGN,
];

/// The `op` of a `corrupt` fault that cuts a log to the first 3 bytes of its own header
/// (docs/simulator-reach.md 15i): what a torn creation would leave, which recovery cuts
/// as a torn header and replaces by a whole one (docs/recovery-rules.md R51).
pub const HEADER_PREFIX: &str = "header_prefix";
/// The `op` that damages the first byte of a log's magic number, the rest of the file
/// left whole (docs/recovery-rules.md R52).
pub const HEADER_MAGIC: &str = "header_magic";
/// The `op` that leaves 3 zero bytes of a log: shorter than a header and not the start
/// of ours (docs/recovery-rules.md R52).
pub const HEADER_ZEROES: &str = "header_zeroes";
/// The `op` that leaves 7 bytes of a log: its magic number, its version and a first
/// kind byte that is not ours, too short to read a kind (docs/recovery-rules.md R52).
pub const HEADER_FOREIGN: &str = "header_foreign";

/// The header damages (docs/simulator-reach.md 15i), done while the agent is down.
pub const HEADER_DAMAGES: &[&str] = &[HEADER_PREFIX, HEADER_MAGIC, HEADER_ZEROES, HEADER_FOREIGN];

/// The `op` of a `corrupt` fault that appends a well-framed record that does not decode.
pub const UNDECODABLE_RECORD: &str = "undecodable_record";

/// An undecodable record the simulator appended to a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undecodable {
    /// When (simulated time).
    pub time: std::time::Duration,
    /// The log.
    pub path: PathBuf,
    /// Where the record starts.
    pub offset: u64,
    /// The whole record (header and payload).
    pub record: Vec<u8>,
}

thread_local! {
    static UNDECODABLE: std::cell::RefCell<Vec<Undecodable>> = const { std::cell::RefCell::new(Vec::new()) };
}

thread_local! {
    static OPERATOR_REPAIRS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static AGENT_DIR_DELETED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static RECONFIGURED_INCOMPATIBLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Records that an operator restarted the agent with resources less than before in this
/// run (`reconfigure_agent`, docs/simulator-reach.md 15f), for
/// [`repair_incompatible_restart`].
pub fn reconfigured_incompatibly() {
    RECONFIGURED_INCOMPATIBLY.with(|d| d.set(true));
}

/// How the fault log names an additive change of the agent's resources
/// (docs/simulator-reach.md 15f).
pub const ADDITIVE_RECONFIGURATION: &str = "agent crash to reconfigure it: additive change";

/// How the fault log names an incompatible change of the agent's resources
/// (docs/simulator-reach.md 15f).
pub const INCOMPATIBLE_RECONFIGURATION: &str = "agent crash to reconfigure it: incompatible change";

/// The start of the error a recovery stops with on an incompatible change of the agent's
/// info (docs/recovery-rules.md R9; `AgentError::Incompatible`).
pub const INCOMPATIBLE_INFO: &str = "incompatible agent info:";

/// docs/simulator-reach.md 15f, docs/recovery-rules.md R47: in a swarm, once recovery
/// has stopped on an incompatible
/// change of the agent's resources the operator made (docs/recovery-rules.md R9), the
/// operator does what the error says (start afresh as a new agent: remove
/// `meta/slaves/latest`, durably), and the supervisor starts the agent again. Only for
/// that error (`message`), in a run whose operator made such a change. Returns whether
/// it did.
pub fn repair_incompatible_restart(fs: &SimFs, work_dir: &std::path::Path, message: &str) -> bool {
    if !OPERATOR_REPAIRS.with(std::cell::Cell::get)
        || !RECONFIGURED_INCOMPATIBLY.with(std::cell::Cell::get)
        || !message.starts_with(INCOMPATIBLE_INFO)
    {
        return false;
    }
    let slaves = work_dir.join("meta/slaves");
    if fs.remove_file(&slaves.join("latest")).is_err() {
        return false;
    }
    fs.sync_dir(&slaves).is_ok()
}

/// Records that an operator removed the latest agent's directory in this run
/// (`delete_agent_dir`), for [`operator_repair`].
pub fn agent_dir_deleted() {
    AGENT_DIR_DELETED.with(|d| d.set(true));
}

/// Starts a run with no undecodable record injected; `swarm`: whether the operator
/// repairs a recovery stopped by one ([`operator_repair`]).
pub fn begin(swarm: bool) {
    UNDECODABLE.with(|u| u.borrow_mut().clear());
    OPERATOR_REPAIRS.with(|r| r.set(swarm));
    AGENT_DIR_DELETED.with(|d| d.set(false));
    RECONFIGURED_INCOMPATIBLY.with(|d| d.set(false));
}

/// docs/simulator-reach.md rule 14u: in a swarm, once a strict recovery has stopped
/// after an undecodable record was injected, the operator does what the agent's error
/// says (start afresh as a new agent: remove `meta/slaves/latest`, durably) so that the
/// run goes on with an agent. Returns whether it did (the supervisor then starts the
/// agent again).
///
/// The same repair follows a recovery stopped by the operator's own damage, an agent
/// directory removed under its `latest` link (docs/simulator-reach.md 15e,
/// docs/recovery-rules.md R46).
pub fn operator_repair(fs: &SimFs, work_dir: &std::path::Path) -> bool {
    let damaged = !undecodable_so_far().is_empty() || AGENT_DIR_DELETED.with(std::cell::Cell::get);
    if !OPERATOR_REPAIRS.with(std::cell::Cell::get) || !damaged {
        return false;
    }
    let slaves = work_dir.join("meta/slaves");
    if fs.remove_file(&slaves.join("latest")).is_err() {
        return false;
    }
    fs.sync_dir(&slaves).is_ok()
}

/// docs/simulator-reach.md 15e: the repair of a recovery stopped on a dangling
/// `meta/slaves/latest` (docs/recovery-rules.md R46) when the stop counts as a disk
/// failure, because a disk fault was armed for that start (one recovery never reached,
/// as it stops at the link first). The operator sees the same stop and the same
/// dangling link, so does the same: removes the link, durably. Only when this run's
/// operator removed the agent's directory and the link still names a directory that is
/// not there (read without meeting the armed faults). Returns whether it did.
pub fn repair_dangling_latest(fs: &SimFs, work_dir: &std::path::Path) -> bool {
    if !OPERATOR_REPAIRS.with(std::cell::Cell::get) || !AGENT_DIR_DELETED.with(std::cell::Cell::get)
    {
        return false;
    }
    let slaves = work_dir.join("meta/slaves");
    let tree = fs.tree();
    let dangles = match tree.get(&slaves.join("latest")) {
        Some(crate::fs::Entry::Symlink(target)) => !tree.contains_key(&slaves.join(target)),
        _ => false,
    };
    dangles && operator_repair(fs, work_dir)
}

/// The undecodable records injected so far in this run.
pub fn undecodable_so_far() -> Vec<Undecodable> {
    UNDECODABLE.with(|u| u.borrow().clone())
}

/// One `task.updates` log of the latest agent under `work_dir` holding at least a whole
/// header, drawn with `rng` (one draw); `None` when there is none.
fn draw_log(fs: &SimFs, work_dir: &std::path::Path, rng: &mut StdRng) -> Option<PathBuf> {
    let slaves = work_dir.join("meta/slaves");
    let latest = slaves.join(fs.read_link(&slaves.join("latest")).ok()?);
    let files: Vec<PathBuf> = fs
        .tree()
        .into_keys()
        .filter(|p| p.starts_with(&latest))
        .filter(|p| p.file_name().is_some_and(|n| n == "task.updates"))
        .filter(|p| fs.read(p).is_ok_and(|d| d.len() >= FILE_HEADER_BYTES))
        .collect();
    if files.is_empty() {
        return None;
    }
    Some(files[rng.gen_range(0..files.len())].clone())
}

/// Appends a well-framed record that does not decode to one `task.updates` log under the
/// latest agent of `work_dir` (drawn with `rng`), durably; `now` is recorded with it.
pub fn undecodable_record(
    fs: &SimFs,
    work_dir: &std::path::Path,
    rng: &mut StdRng,
    now: std::time::Duration,
) -> Option<String> {
    use prost::Message as _;
    let path = draw_log(fs, work_dir, rng)?;
    let mut data = fs.read(&path).ok()?;
    // A record kind no release wrote (types 0 and 1 are UPDATE and ACK), with a uuid
    // drawn so that each injected record's bytes are its own.
    let uuid: Vec<u8> = (0..16).map(|_| rng.gen::<u8>()).collect();
    let payload = revenant::proto::StatusUpdateRecord {
        r#type: 7,
        update: None,
        uuid,
    }
    .encode_to_vec();
    let record = revenant::checkpoint::record::frame(&payload);
    // A torn tail stays behind the new record only if the log had one; recovery would
    // cut the tail first, so the record goes where the last whole record ends.
    let offset = whole_records_end(&data) as u64;
    data.truncate(offset as usize);
    data.extend_from_slice(&record);
    fs.write(&path, &data).ok()?;
    fs.sync_file(&path).ok()?;
    UNDECODABLE.with(|u| {
        u.borrow_mut().push(Undecodable {
            time: now,
            path: path.clone(),
            offset,
            record,
        })
    });
    let shown = path.strip_prefix(work_dir).unwrap_or(&path);
    Some(format!(
        "corrupt: a well-framed record that does not decode appended at byte {offset} of {}",
        shown.display()
    ))
}

/// docs/simulator-reach.md 15i: an operator (or a failing disk) damages the header of
/// one `task.updates` log of the latest agent under `work_dir` (drawn with `rng` among
/// those holding at least a header), durably, as `how` (one of [`HEADER_DAMAGES`])
/// says. The description starts with "corrupt", so the run counts as one with injected
/// corruption.
pub fn header(
    fs: &SimFs,
    work_dir: &std::path::Path,
    rng: &mut StdRng,
    how: &str,
) -> Option<String> {
    let path = draw_log(fs, work_dir, rng)?;
    let mut data = fs.read(&path).ok()?;
    let what = match how {
        HEADER_PREFIX => {
            data.truncate(3);
            "cut to the first 3 bytes of its header"
        }
        HEADER_MAGIC => {
            data[0] ^= 0x20;
            "first byte of its magic number damaged"
        }
        HEADER_ZEROES => {
            data = vec![0; 3];
            "left as 3 zero bytes"
        }
        HEADER_FOREIGN => {
            data.truncate(7);
            data[6] = 9;
            "cut to 7 bytes: its magic number, its version and a kind byte not ours"
        }
        _ => return None,
    };
    fs.write(&path, &data).ok()?;
    fs.sync_file(&path).ok()?;
    let shown = path.strip_prefix(work_dir).unwrap_or(&path);
    Some(format!("corrupt the header of {}: {what}", shown.display()))
}

/// docs/simulator-reach.md 15j: an operator empties (durably, through a temp file
/// renamed over it) one executor's latest run's `pids/forked.pid` under `work_dir`
/// (`executor`'s, or one drawn with `rng`), as a clean-up that truncated it does; says
/// which, or `None` when there is no such file. Recovery must take the empty file for
/// a missing one (docs/recovery-rules.md R53).
pub fn empty_forked_pid(
    fs: &SimFs,
    work_dir: &std::path::Path,
    executor: Option<&str>,
    rng: &mut StdRng,
) -> Option<String> {
    let files: Vec<PathBuf> = crate::wake_faults::latest_runs(fs, work_dir)
        .into_iter()
        .filter(|(runs, _)| {
            executor.is_none_or(|e| runs.parent().and_then(|p| p.file_name()) == Some(e.as_ref()))
        })
        .map(|(runs, container)| runs.join(container).join("pids/forked.pid"))
        .filter(|path| fs.read(path).is_ok_and(|text| !text.is_empty()))
        .collect();
    if files.is_empty() {
        return None;
    }
    let path = files[rng.gen_range(0..files.len())].clone();
    let temporary = path.with_extension("pid.operator");
    fs.write(&temporary, b"").ok()?;
    fs.sync_file(&temporary).ok()?;
    fs.rename(&temporary, &path).ok()?;
    fs.sync_dir(path.parent()?).ok()?;
    let shown = path.strip_prefix(work_dir).unwrap_or(&path);
    Some(format!("forked.pid emptied: {}", shown.display()))
}

/// Where the last whole record of a checkpoint log ends (a torn tail after it is not
/// counted).
fn whole_records_end(data: &[u8]) -> usize {
    let mut at = FILE_HEADER_BYTES;
    while let Some(header) = data.get(at..at + RECORD_HEADER_BYTES) {
        let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if at + RECORD_HEADER_BYTES + length > data.len() {
            break;
        }
        at += RECORD_HEADER_BYTES + length;
    }
    at.min(data.len())
}

/// The offset of the first complete record of `data` (a checkpoint log), if any.
fn first_complete_record(data: &[u8]) -> Option<usize> {
    let rest = data.get(FILE_HEADER_BYTES..)?;
    if rest.len() < RECORD_HEADER_BYTES {
        return None;
    }
    let length = u32::from_le_bytes(rest[0..4].try_into().ok()?) as usize;
    (RECORD_HEADER_BYTES + length <= rest.len()).then_some(FILE_HEADER_BYTES)
}

/// Damages the length field of the first complete record of one `task.updates` log
/// (drawn with `rng` among those that have one); the description names the file.
pub fn length_field(fs: &SimFs, rng: &mut StdRng) -> Option<String> {
    let files: Vec<(PathBuf, Vec<u8>, usize)> = fs
        .tree()
        .into_keys()
        .filter(|p| p.file_name().is_some_and(|n| n == "task.updates"))
        .filter_map(|p| {
            let data = fs.read(&p).ok()?;
            let at = first_complete_record(&data)?;
            Some((p, data, at))
        })
        .collect();
    if files.is_empty() {
        return None;
    }
    let (path, mut data, at) = files[rng.gen_range(0..files.len())].clone();
    // Bit 23 of the little-endian length: the length grows by 8 MiB, past the end of
    // the file and below the largest record a log may hold.
    data[at + 2] ^= 0x80;
    fs.write(&path, &data).ok()?;
    fs.sync_file(&path).ok()?;
    Some(format!(
        "corrupt the length field of the record at byte {at} of {}",
        path.display()
    ))
}
