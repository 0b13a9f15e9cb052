//! The bodies of the fuzz targets (`fuzz/`, docs/security.md SEC6): each takes arbitrary
//! bytes, drives one reader of outside input with them, and panics only when a property
//! of that reader fails. `fuzz/` calls them under libFuzzer; `tests/fuzz_corpora.rs`
//! replays the checked-in corpora through them on the stable toolchain.

use std::cell::RefCell;
use std::os::unix::ffi::OsStringExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use prost::Message;
use revenant::checkpoint::paths::{MetaPaths, RunPath};
use revenant::checkpoint::record::{self, FileKind, Tail};
use revenant::ids::{AgentId, ContainerId, ExecutorId, FrameworkId, TaskId};
use revenant::os::FileSystem;
use revenant::proto::{self, envelope::Body, Envelope};
use revenant::wire::{self, Read};

use crate::fs::SimFs;

thread_local! {
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

/// Runs `future` to completion on this thread's runtime (made once: a fuzzer calls the
/// targets millions of times).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    RUNTIME.with(|cell| {
        let mut runtime = cell.borrow_mut();
        let runtime = runtime.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a current-thread runtime")
        });
        runtime.block_on(future)
    })
}

/// A clock for the wire reader: the bytes come from memory, so no frame ever waits.
struct NoWaitClock;

impl revenant::os::Clock for NoWaitClock {
    fn now(&self) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }
    fn wall(&self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH
    }
    fn sleep(&self, _duration: Duration) -> revenant::os::LocalFuture<'static, ()> {
        // Never fires: a reader over a byte slice ends on its own.
        Box::pin(std::future::pending())
    }
}

/// Target `wire_codec`: the bytes as one connection's stream through the frame reader,
/// and as one frame's body through the decoder. Every decoded envelope encodes again to
/// a frame that decodes to the same envelope.
pub fn wire_codec(data: &[u8]) {
    if let Ok(body) = wire::decode(data) {
        round_trip(body);
    }
    block_on(async {
        let mut reader = tokio::io::BufReader::new(data);
        let mut first = true;
        // Every read consumes at least one byte, so this ends.
        for _ in 0..=data.len() {
            match wire::read_next(&mut reader, first, &NoWaitClock).await {
                Ok(Read::Envelope(body)) => round_trip(body),
                Ok(Read::Http) => {
                    assert!(first, "only a connection's first bytes may start HTTP");
                    assert!(data.starts_with(b"GET "), "HTTP starts with GET");
                    return;
                }
                Err(error) => {
                    let _ = error.to_string();
                    return;
                }
            }
            first = false;
        }
        panic!("the reader read more frames than there are bytes");
    });
}

fn round_trip(body: Body) {
    // A decoded body came from a frame within the maximum, and re-encoding is never
    // longer than what was read (prost drops unknown fields).
    let bytes = wire::encode(body).expect("a decoded envelope fits in a frame");
    let length = u32::from_le_bytes(bytes[..4].try_into().expect("a length")) as usize;
    assert_eq!(length, bytes.len() - 4);
    // Encoding what decoding gave back yields the same bytes (compared as bytes: a
    // timestamp may be NaN, which is not equal to itself).
    let again = Envelope::decode(&bytes[4..]).expect("an encoded envelope decodes");
    let body = again.body.expect("an encoded envelope has its body");
    let bytes_again = wire::encode(body).expect("fits again");
    assert_eq!(
        bytes_again, bytes,
        "an envelope changed across decode and encode"
    );
}

/// Target `record_reader`: the bytes as a record log of each kind, and as an info file.
pub fn record_reader(data: &[u8]) {
    for kind in [FileKind::Info, FileKind::TaskUpdates, FileKind::Resources] {
        let Ok(scan) = record::scan(data, kind) else {
            continue;
        };
        assert!(scan.valid_length as usize <= data.len());
        for (offset, payload) in &scan.records {
            assert!(*offset as usize + payload.len() <= scan.valid_length as usize);
        }
        match &scan.tail {
            Tail::Clean => assert_eq!(scan.valid_length as usize, data.len()),
            Tail::Torn { offset, bytes } | Tail::Corrupt { offset, bytes, .. } => {
                assert_eq!(*offset, scan.valid_length);
                assert_eq!((offset + bytes) as usize, data.len());
            }
        }
        // The valid prefix, scanned again, is the same records and ends clean.
        let prefix = &data[..scan.valid_length as usize];
        if !prefix.is_empty() {
            let again = record::scan(prefix, kind).expect("the valid prefix has a good header");
            assert_eq!(again.records, scan.records);
            assert_eq!(again.tail, Tail::Clean);
        }
    }
    let _ = record::read_info(data);
}

/// The files of the meta directory `inspect_recovery` builds, in selector order.
#[derive(Clone, Copy, Debug)]
enum MetaFile {
    BootId,
    Resources,
    LatestAgent,
    AgentInfo,
    FrameworkInfo,
    FrameworkPid,
    ExecutorInfo,
    LatestRun,
    ForkedPid,
    LibprocessPid,
    TaskInfo,
    TaskUpdates,
    Sentinel,
    HttpMarker,
}

const META_FILES: [MetaFile; 14] = [
    MetaFile::BootId,
    MetaFile::Resources,
    MetaFile::LatestAgent,
    MetaFile::AgentInfo,
    MetaFile::FrameworkInfo,
    MetaFile::FrameworkPid,
    MetaFile::ExecutorInfo,
    MetaFile::LatestRun,
    MetaFile::ForkedPid,
    MetaFile::LibprocessPid,
    MetaFile::TaskInfo,
    MetaFile::TaskUpdates,
    MetaFile::Sentinel,
    MetaFile::HttpMarker,
];

/// The boot id of the meta directory `inspect_recovery` builds.
pub const BOOT: &str = "boot-1";

struct Ids {
    agent: AgentId,
    framework: FrameworkId,
    executor: ExecutorId,
    container: ContainerId,
    task: TaskId,
}

impl Ids {
    fn new() -> Ids {
        Ids {
            agent: AgentId::new("agent-1"),
            framework: FrameworkId::new("framework-1"),
            executor: ExecutorId::new("executor-1"),
            container: ContainerId::new("container-1"),
            task: TaskId::new("task-1"),
        }
    }
    fn run(&self) -> RunPath<'_> {
        RunPath {
            agent: &self.agent,
            framework: &self.framework,
            executor: &self.executor,
            container: &self.container,
        }
    }
    fn path(&self, paths: &MetaPaths, file: MetaFile) -> PathBuf {
        let run = self.run();
        match file {
            MetaFile::BootId => paths.boot_id(),
            MetaFile::Resources => paths.resources_info(),
            MetaFile::LatestAgent => paths.latest_agent(),
            MetaFile::AgentInfo => paths.agent_info(&self.agent),
            MetaFile::FrameworkInfo => paths.framework_info(&self.agent, &self.framework),
            MetaFile::FrameworkPid => paths.framework_pid(&self.agent, &self.framework),
            MetaFile::ExecutorInfo => {
                paths.executor_info(&self.agent, &self.framework, &self.executor)
            }
            MetaFile::LatestRun => paths.latest_run(&self.agent, &self.framework, &self.executor),
            MetaFile::ForkedPid => paths.forked_pid(&run),
            MetaFile::LibprocessPid => paths.libprocess_pid(&run),
            MetaFile::TaskInfo => paths.task_info(&run, &self.task),
            MetaFile::TaskUpdates => paths.task_updates(&run, &self.task),
            MetaFile::Sentinel => paths.sentinel(&run),
            MetaFile::HttpMarker => paths.http_marker(&run),
        }
    }
    /// The well-formed content of `file`, as the agent writes it (none for the markers
    /// of a completed run and of an HTTP executor: the run is live).
    fn valid(&self, paths: &MetaPaths, file: MetaFile) -> Option<Vec<u8>> {
        let info = |message: &dyn Fn() -> Vec<u8>| record::info_file(&message());
        let content = match file {
            MetaFile::BootId => BOOT.as_bytes().to_vec(),
            MetaFile::Resources => {
                let mut out = record::file_header(FileKind::Resources).to_vec();
                let resource = proto::Resource {
                    name: "cpus".into(),
                    scalar: 1.0,
                    role: "db".into(),
                    reservation: "framework-1".into(),
                };
                record::frame_into(&resource.encode_to_vec(), &mut out);
                out
            }
            MetaFile::LatestAgent => paths.agent(&self.agent).into_os_string().into_vec(),
            MetaFile::AgentInfo => info(&|| {
                proto::AgentInfo {
                    id: self.agent.to_string(),
                    hostname: "host".into(),
                    port: 5051,
                    checkpoint: true,
                    ..Default::default()
                }
                .encode_to_vec()
            }),
            MetaFile::FrameworkInfo => info(&|| {
                proto::FrameworkInfo {
                    id: self.framework.to_string(),
                    name: "fuzz".into(),
                    checkpoint: true,
                    ..Default::default()
                }
                .encode_to_vec()
            }),
            MetaFile::FrameworkPid => b"scheduler@127.0.0.1:5050".to_vec(),
            MetaFile::ExecutorInfo => info(&|| {
                proto::ExecutorInfo {
                    executor_id: self.executor.to_string(),
                    framework_id: self.framework.to_string(),
                    ..Default::default()
                }
                .encode_to_vec()
            }),
            MetaFile::LatestRun => paths.run(&self.run()).into_os_string().into_vec(),
            MetaFile::ForkedPid => format!("4242 77 {BOOT}\n").into_bytes(),
            MetaFile::LibprocessPid => b"executor(1)@127.0.0.1:40000".to_vec(),
            MetaFile::TaskInfo => info(&|| {
                proto::Task {
                    task_id: self.task.to_string(),
                    framework_id: self.framework.to_string(),
                    executor_id: self.executor.to_string(),
                    agent_id: self.agent.to_string(),
                    ..Default::default()
                }
                .encode_to_vec()
            }),
            MetaFile::TaskUpdates => {
                let mut out = record::file_header(FileKind::TaskUpdates).to_vec();
                let update = proto::StatusUpdateRecord {
                    r#type: proto::status_update_record::Type::Update as i32,
                    update: Some(proto::StatusUpdate {
                        framework_id: self.framework.to_string(),
                        executor_id: self.executor.to_string(),
                        agent_id: self.agent.to_string(),
                        status: Some(proto::TaskStatus {
                            task_id: self.task.to_string(),
                            state: proto::TaskState::TaskRunning as i32,
                            uuid: vec![7; 16],
                            ..Default::default()
                        }),
                        uuid: vec![7; 16],
                        ..Default::default()
                    }),
                    uuid: Vec::new(),
                };
                record::frame_into(&update.encode_to_vec(), &mut out);
                let ack = proto::StatusUpdateRecord {
                    r#type: proto::status_update_record::Type::Ack as i32,
                    update: None,
                    uuid: vec![7; 16],
                };
                record::frame_into(&ack.encode_to_vec(), &mut out);
                out
            }
            MetaFile::Sentinel | MetaFile::HttpMarker => return None,
        };
        Some(content)
    }
    /// `payload` framed as `file`'s records are (so that the fuzzer reaches the message
    /// decoding behind the checksums), or as is for a text file or a link.
    fn framed(file: MetaFile, payload: &[u8]) -> Vec<u8> {
        let kind = match file {
            MetaFile::Resources => FileKind::Resources,
            MetaFile::TaskUpdates => FileKind::TaskUpdates,
            MetaFile::AgentInfo
            | MetaFile::FrameworkInfo
            | MetaFile::ExecutorInfo
            | MetaFile::TaskInfo => return record::info_file(payload),
            _ => return payload.to_vec(),
        };
        let mut out = record::file_header(kind).to_vec();
        for chunk in payload.split(|b| *b == 0xfe) {
            record::frame_into(chunk, &mut out);
        }
        out
    }
}

fn is_link(file: MetaFile) -> bool {
    matches!(file, MetaFile::LatestAgent | MetaFile::LatestRun)
}

/// Puts `content` at `path` (a link for the `latest` files), making its parents.
fn put(fs: &SimFs, path: &Path, file: MetaFile, content: Option<&[u8]>) {
    let _ = fs.remove_file(path);
    let Some(content) = content else {
        return;
    };
    if let Some(parent) = path.parent() {
        let mut missing = Vec::new();
        let mut dir = parent;
        while !fs.exists(dir) {
            missing.push(dir.to_path_buf());
            match dir.parent() {
                Some(up) => dir = up,
                None => break,
            }
        }
        for dir in missing.iter().rev() {
            let _ = fs.create_dir(dir);
        }
    }
    if is_link(file) {
        use std::os::unix::ffi::OsStrExt;
        let _ = fs.symlink(Path::new(std::ffi::OsStr::from_bytes(content)), path);
    } else {
        let _ = fs.write(path, content);
    }
}

/// Target `inspect_recovery`: a well-formed meta directory of one agent, framework,
/// executor, run and task on the simulator's filesystem, changed by the bytes, then
/// `inspect`'s read-only recovery (strict and not) and both of its reports.
///
/// The bytes are a list of edits, each `[selector, length low, length high, bytes...]`:
/// the selector's low bits pick the file (modulo the 14 files); bit 7 set writes the
/// bytes framed as that file's records (split into records at each `0xfe`), clear
/// writes them as they are; bit 6 set removes the file instead; bit 5 set first drops
/// the whole well-formed directory (only on the first edit).
pub fn inspect_recovery(data: &[u8]) {
    let fs = meta_directory(data);
    let work_dir = Path::new(WORK_DIR);
    for strict in [false, true] {
        for boot in [Some(BOOT.to_owned()), None] {
            if let Ok(state) = revenant::inspect::inspect(&fs, work_dir, strict, boot) {
                let _ = revenant::inspect::render_text(work_dir, state.as_ref());
                let _ = revenant::inspect::render_json(work_dir, state.as_ref());
            }
        }
    }
}

/// The work directory `inspect_recovery` builds its meta directory in.
pub const WORK_DIR: &str = "/var/lib/revenant";

/// The simulated filesystem `inspect_recovery` recovers: the well-formed meta directory
/// (one agent, framework, executor, live run and task, booted as `boot-1`) changed by
/// the edits in `data`.
pub fn meta_directory(data: &[u8]) -> SimFs {
    let fs = SimFs::new();
    let work_dir = Path::new(WORK_DIR);
    let paths = MetaPaths::for_work_dir(work_dir);
    let ids = Ids::new();
    let mut rest = data;
    let fresh = data.first().is_some_and(|selector| selector & 0x20 != 0);
    if !fresh {
        for file in META_FILES {
            put(
                &fs,
                &ids.path(&paths, file),
                file,
                ids.valid(&paths, file).as_deref(),
            );
        }
    }
    while rest.len() >= 3 {
        let selector = rest[0];
        let length = u16::from_le_bytes([rest[1], rest[2]]) as usize;
        let bytes = &rest[3..(3 + length).min(rest.len())];
        rest = &rest[(3 + length).min(rest.len())..];
        let file = META_FILES[(selector & 0x1f) as usize % META_FILES.len()];
        let path = ids.path(&paths, file);
        if selector & 0x40 != 0 {
            put(&fs, &path, file, None);
        } else if selector & 0x80 != 0 {
            put(&fs, &path, file, Some(&Ids::framed(file, bytes)));
        } else {
            put(&fs, &path, file, Some(bytes));
        }
    }
    fs
}
