//! [`SimFs`]: the simulated filesystem of one machine, in memory, with the crash states
//! that the durability contract of [`revenant::os::FileSystem`] allows.
//!
//! # Shape
//!
//! Inodes are separate from names: a directory maps names to inode numbers, a file inode
//! holds bytes, a symlink inode holds its target. Paths are resolved one component at a
//! time; a symlink met in any component is followed (a relative target from the link's
//! own directory, an absolute one from the root), `..` goes to the physical parent (as
//! Linux does after a symlink), and more than [`SYMLINK_FOLLOWS_MAX`] links in one
//! resolution fail with `ELOOP`. A trailing slash means "must be a directory" with the
//! kernel's per-call rules (`EISDIR` for a file created as `x/`, `ENOTDIR` elsewhere),
//! and `remove_dir_all` behaves as std's does (a symlink is removed, not followed). A
//! relative path is taken from the root (the simulated process's working directory is
//! `/`). Errors are built from the Linux errno that the real call would return
//! (`io::Error::from_raw_os_error`), so their `kind()` and `raw_os_error()` are what
//! [`revenant::os::real::RealFs`] gives: the conformance suite in
//! [`revenant::os::conformance`] checks both, and `sim/tests/fs_conformance.rs` runs
//! random operations on both and compares every result and the whole tree.
//!
//! A [`SimFs`] is a cheap handle (`Rc<RefCell<..>>`): the simulator keeps one to cut the
//! power while the agent uses another. There are no threads, no hash maps and no
//! randomness of its own: the same operations and the same seed give the same tree.
//!
//! # Durability model
//!
//! Every file inode holds `data` (what the kernel accepted: every read sees it),
//! `durable` (what survives a power loss) and the log of operations applied to it since
//! its last sync (`truncate` to a length, `append` of bytes; `write` is a truncate to 0
//! followed by an append). Every directory holds its live entries, its durable entries
//! and the log of name operations since its last sync (`link` of a name to an inode for
//! create, `create_dir`, `symlink` and the destination side of a rename into it; `unlink`
//! for `remove_*` and the source side of a rename out of it; `rename` of one name to
//! another inside it, as a single operation). `sync_file` and `sync_dir` are both fsync:
//! on a file inode they copy `data` to `durable`, on a directory they make the current
//! entries durable; either clears the inode's log. A failed sync (an injected fault)
//! does nothing: the log stays pending, so the data may or may not survive a power loss
//! and a later successful sync makes it durable. (Linux may instead drop the dirty pages
//! after a failed fsync, so that a retried fsync succeeds without the data: the model
//! does not show that case, and the agent must treat a failed sync as fatal rather than
//! retry it.)
//!
//! A crash of the agent *process* loses nothing and needs no call: the state simply
//! stays. A [`SimFs::power_loss`] (reboot) chooses, with the RNG it is handed, one of the
//! following crash states, every inode independently:
//!
//! - a file holds its durable bytes followed by a prefix of its log, and when the first
//!   operation left out is an append, any number of that append's leading bytes (a torn
//!   append). So after the reboot a file holds a content it really had at some moment
//!   since its last sync, or such a content with part of the next append;
//! - a directory holds its durable entries with a prefix of its log applied: a set of
//!   names it really had at some moment since its last sync. A rename inside one
//!   directory is one operation, so it is atomic: the name refers to the old inode or the
//!   new one. A rename across directories is two operations, one in each directory's log,
//!   and each side follows its own directory's sync: after the reboot the inode may be
//!   under both names (a hard link), under either, or under none. Should a directory be
//!   reached twice (or through a cycle), the first entry met in a walk from the root in
//!   byte order keeps it and the later entries are dropped, so the result is a tree;
//! - with zero-fill ([`SimFs::power_loss_zero_filled`], docs/crash-points.md CP-7): of a
//!   file's bytes that no sync covers and that survived in length (kept or torn appends,
//!   and a `write`'s new content), one run, of any length and at any place among them,
//!   reads as zeroes: the file's new size reached the disk and those data blocks did
//!   not, as ext4 in `data=writeback` mode and XFS leave an un-synced extending write.
//!   Synced bytes never change. Without zero-fill, no byte is zeroed;
//! - a symlink's target is written with the link, so a surviving link name has its target;
//! - whatever is no longer reachable from the root is gone; every lock is released.
//!
//! This is legal under the contract: a write or append that was not synced "is not
//! durable", so it may be lost, kept, or (for the last append) torn; a name whose
//! directory was not synced may be lost (or an unlinked one come back); a file's data and
//! its name are synced separately, so either may survive without the other; and what is
//! durable is never lost, because every state the model picks starts from the durable
//! one. The model allows fewer states than a real disk may show in two respects: without
//! zero-fill a file only ever holds contents it really had, and with it the bytes of an
//! un-synced extending write read as zeroes but never as stale blocks of other files
//! (ext3 in `data=writeback` mode can show those); and a directory's names change in the
//! order they were made. It allows more than ext4 in one: ext4 journals a rename
//! across directories as one transaction. Timestamps are not part of the durability
//! model: a file keeps the modification time it had at the power loss.
//!
//! # Faults
//!
//! [`SimFs::inject`] adds a [`Fault`]: operations of a set of kinds ([`OpSet`]), under a
//! path prefix, the next N times, each with a probability drawn from the seeded fault RNG
//! ([`SimFs::set_fault_seed`]), fail with `EIO`, `ENOSPC` or any errno, *before* they have
//! any effect. A failed `sync_file` therefore leaves the file's pending data
//! non-durable. Writes beyond [`SimFs::set_capacity_bytes`] fail with `ENOSPC` too
//! (after `write` has created and truncated the file, as the real one does).
//! [`SimFs::counters`] counts every call by kind, failed or not.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fmt::{self, Write as _};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::time::SystemTime;

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use revenant::os::{FileLock, FileSystem, LockError};

use crate::disk_work::{Actor, Work};

/// How many symlinks one path resolution follows at most before failing with `ELOOP`
/// (Linux's `MAXSYMLINKS`).
pub const SYMLINK_FOLLOWS_MAX: usize = 40;

/// The capacity of a new [`SimFs`]: 16 GiB.
pub const CAPACITY_BYTES_DEFAULT: u64 = 16 << 30;

/// The number of inodes below which the collection of unreachable inodes never runs.
const GC_INODES_MIN: usize = 1024;

pub use crate::fs_op::Op;

/// The wall clock a [`SimFs`] stamps modification times with.
pub type WallClock = Rc<dyn Fn() -> SystemTime>;

/// A set of [`Op`] kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpSet(u32);

impl OpSet {
    /// No operation.
    pub const NONE: OpSet = OpSet(0);
    /// Every operation that can fail (everything but `exists` and `is_dir`).
    pub const ALL: OpSet = OpSet((1 << Op::ALL.len()) - 1);
    /// Operations that change data: `write`, `append`, `truncate`.
    pub const WRITES: OpSet = OpSet::of(&[Op::Write, Op::Append, Op::Truncate]);
    /// `sync_file` and `sync_dir`.
    pub const SYNCS: OpSet = OpSet::of(&[Op::SyncFile, Op::SyncDir]);
    /// Every operation that changes the filesystem (data, names, syncs, times, locks).
    pub const MUTATIONS: OpSet = OpSet::of(&[
        Op::Write,
        Op::Append,
        Op::SyncFile,
        Op::SyncDir,
        Op::CreateDir,
        Op::Rename,
        Op::Symlink,
        Op::RemoveFile,
        Op::RemoveDirAll,
        Op::Truncate,
        Op::Touch,
        Op::Lock,
    ]);

    /// The set of `ops`.
    pub const fn of(ops: &[Op]) -> OpSet {
        let mut bits = 0;
        let mut index = 0;
        while index < ops.len() {
            bits |= ops[index].bit();
            index += 1;
        }
        OpSet(bits)
    }

    /// This set and `other`.
    pub const fn union(self, other: OpSet) -> OpSet {
        OpSet(self.0 | other.0)
    }

    /// Whether `op` is in the set.
    pub const fn contains(self, op: Op) -> bool {
        self.0 & op.bit() != 0
    }
}

impl From<Op> for OpSet {
    fn from(op: Op) -> OpSet {
        OpSet(op.bit())
    }
}

/// The error an injected [`Fault`] fails an operation with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultError {
    /// `EIO`: the device failed.
    Io,
    /// `ENOSPC`: the device is full.
    NoSpace,
    /// Any other errno.
    Os(i32),
}

impl FaultError {
    /// The error as the operation returns it.
    pub fn to_io_error(self) -> io::Error {
        match self {
            FaultError::Io => errno(libc::EIO),
            FaultError::NoSpace => errno(libc::ENOSPC),
            FaultError::Os(code) => errno(code),
        }
    }
}

/// A rule that makes matching operations fail before they have any effect.
#[derive(Clone, Debug)]
pub struct Fault {
    ops: OpSet,
    path_prefix: Option<PathBuf>,
    error: FaultError,
    remaining: Option<u64>,
    probability: f64,
    torn: bool,
    /// With `torn`: at most this many bytes stay (docs/simulator-reach.md rule 13k).
    torn_at_most: Option<usize>,
    /// Kept by [`SimFs::clear_faults`] (docs/simulator-reach.md rule 12k).
    sticky: bool,
}

impl Fault {
    /// Every operation, on any path, every time, fails with `error`. Narrow it with
    /// [`Fault::on`], [`Fault::under`], [`Fault::times`] and [`Fault::with_probability`].
    pub fn new(error: FaultError) -> Fault {
        Fault {
            ops: OpSet::ALL,
            path_prefix: None,
            error,
            remaining: None,
            probability: 1.0,
            torn: false,
            torn_at_most: None,
            sticky: false,
        }
    }

    /// (docs/simulator-reach.md rule 3) An append it fails first writes a prefix of its
    /// bytes, as a real `write` may
    /// return short on `ENOSPC` or `EIO` and the next call then fail: at least one byte
    /// and fewer than all (the length drawn from the fault RNG), so that the file ends in
    /// a partial record. The other operations it fails still fail before any effect.
    pub fn torn(mut self) -> Fault {
        self.torn = true;
        self
    }

    /// Kept when the faults are cleared for a new agent incarnation, so that it fails
    /// the next start's operations (docs/simulator-reach.md rule 12k).
    pub fn across_restarts(mut self) -> Fault {
        self.sticky = true;
        self
    }

    /// As [`Fault::torn`], with at most `bytes` bytes (at least 1) of the append left, so
    /// that the tear can land inside a record's header (docs/simulator-reach.md rule 13k).
    pub fn torn_at_most(mut self, bytes: usize) -> Fault {
        self.torn = true;
        self.torn_at_most = Some(bytes.max(1));
        self
    }

    /// Only operations of these kinds.
    pub fn on(mut self, ops: impl Into<OpSet>) -> Fault {
        self.ops = ops.into();
        self
    }

    /// Only operations on a path under `prefix` (compared component by component, as
    /// given, before symlinks are resolved; a rename matches on either path).
    pub fn under(mut self, prefix: impl Into<PathBuf>) -> Fault {
        self.path_prefix = Some(prefix.into());
        self
    }

    /// Only the next `count` matching operations that it fails; then the rule is spent.
    pub fn times(mut self, count: u64) -> Fault {
        self.remaining = Some(count);
        self
    }

    /// Fail each matching operation with this probability (drawn from the fault RNG).
    pub fn with_probability(mut self, probability: f64) -> Fault {
        assert!(
            (0.0..=1.0).contains(&probability),
            "a fault probability must be in [0, 1], not {probability}"
        );
        self.probability = probability;
        self
    }

    fn matches(&self, op: Op, path: &Path, other: Option<&Path>) -> bool {
        if !self.ops.contains(op) {
            return false;
        }
        match &self.path_prefix {
            None => true,
            Some(prefix) => {
                path.starts_with(prefix) || other.is_some_and(|p| p.starts_with(prefix))
            }
        }
    }
}

/// How many operations of each kind a [`SimFs`] was asked to do (failed ones included).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Calls per kind.
    pub per_op: BTreeMap<Op, u64>,
    /// Calls that an injected fault (or the capacity) failed.
    pub faults_injected: u64,
    /// Power losses so far.
    pub power_losses: u64,
}

impl Counters {
    /// Calls of one kind.
    pub fn count(&self, op: Op) -> u64 {
        self.per_op.get(&op).copied().unwrap_or(0)
    }

    /// `read` calls.
    pub fn reads(&self) -> u64 {
        self.count(Op::Read)
    }

    /// `write`, `append` and `truncate` calls.
    pub fn writes(&self) -> u64 {
        self.count(Op::Write) + self.count(Op::Append) + self.count(Op::Truncate)
    }

    /// `sync_file` and `sync_dir` calls.
    pub fn syncs(&self) -> u64 {
        self.count(Op::SyncFile) + self.count(Op::SyncDir)
    }

    /// Every call.
    pub fn total(&self) -> u64 {
        self.per_op.values().sum()
    }
}

/// What a power loss kept and lost.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PowerLoss {
    /// Un-synced file operations (truncates and appends) before the power loss.
    pub file_ops_pending: u64,
    /// Of those, how many survived whole.
    pub file_ops_kept: u64,
    /// Appends that survived in part.
    pub appends_torn: u64,
    /// Un-synced name operations before the power loss.
    pub dir_ops_pending: u64,
    /// Of those, how many survived.
    pub dir_ops_kept: u64,
    /// Inodes that are gone (no name left that reaches them).
    pub inodes_lost: u64,
    /// Files whose un-synced appended bytes came back, in part or whole, as zeroes
    /// (docs/crash-points.md CP-7; only with a zero-fill chooser).
    pub files_zeroed: u64,
    /// Of those files' bytes, how many read as zeroes.
    pub bytes_zeroed: u64,
}

// Written by hand so that a power loss without zero-fill reads as it did before
// CP-7 (traces name what a reboot left): the zero-fill counts appear only when
// nonzero.
impl fmt::Debug for PowerLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("PowerLoss");
        out.field("file_ops_pending", &self.file_ops_pending)
            .field("file_ops_kept", &self.file_ops_kept)
            .field("appends_torn", &self.appends_torn)
            .field("dir_ops_pending", &self.dir_ops_pending)
            .field("dir_ops_kept", &self.dir_ops_kept)
            .field("inodes_lost", &self.inodes_lost);
        if self.files_zeroed > 0 {
            out.field("files_zeroed", &self.files_zeroed)
                .field("bytes_zeroed", &self.bytes_zeroed);
        }
        out.finish()
    }
}

/// Zero-fill of one crash state (docs/crash-points.md CP-7): handed the number of a
/// file's un-synced appended bytes that survived (`n`), each call returns a number in
/// `0..=n`. Two calls per such file: how many of those bytes read as zeroes, then
/// (unless none or all) how far into them the zeroed run starts.
pub type ZeroFill<'a> = &'a mut dyn FnMut(u64) -> u64;

/// One entry of a [`SimFs::tree`] listing.
#[derive(Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory.
    Dir,
    /// A file and its bytes.
    File(Vec<u8>),
    /// A symlink and its target.
    Symlink(PathBuf),
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Dir => write!(f, "Dir"),
            Entry::File(data) => write!(f, "File(\"{}\")", data.escape_ascii()),
            Entry::Symlink(target) => write!(f, "Symlink({target:?})"),
        }
    }
}

type Ino = u64;

/// The root directory's inode.
const ROOT: Ino = 1;

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// An operation on a file's bytes, as logged since its last sync.
#[derive(Clone, Debug)]
enum FileOp {
    /// Cut or extend (with zeroes) to a length.
    Truncate(u64),
    /// Add bytes at the end.
    Append(Vec<u8>),
}

impl FileOp {
    fn apply(&self, data: &mut Vec<u8>) {
        match self {
            FileOp::Truncate(length) => {
                data.resize(usize::try_from(*length).expect("a length fits memory"), 0)
            }
            FileOp::Append(bytes) => data.extend_from_slice(bytes),
        }
    }
}

/// An operation on a directory's names, as logged since its last sync.
#[derive(Clone, Debug)]
enum DirOp {
    /// A name now refers to an inode (replacing what it referred to).
    Link(OsString, Ino),
    /// A name is gone.
    Unlink(OsString),
    /// A name moved to another name of the same directory, in one step.
    Rename(OsString, OsString, Ino),
}

impl DirOp {
    fn apply(&self, entries: &mut BTreeMap<OsString, Ino>) {
        match self {
            DirOp::Link(name, ino) => {
                entries.insert(name.clone(), *ino);
            }
            DirOp::Unlink(name) => {
                entries.remove(name);
            }
            DirOp::Rename(from, to, ino) => {
                entries.remove(from);
                entries.insert(to.clone(), *ino);
            }
        }
    }

    fn linked(&self) -> Option<Ino> {
        match self {
            DirOp::Link(_, ino) | DirOp::Rename(_, _, ino) => Some(*ino),
            DirOp::Unlink(_) => None,
        }
    }
}

#[derive(Clone, Debug, Default)]
struct FileNode {
    data: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<FileOp>,
}

#[derive(Clone, Debug, Default)]
struct DirNode {
    entries: BTreeMap<OsString, Ino>,
    durable: BTreeMap<OsString, Ino>,
    pending: Vec<DirOp>,
}

#[derive(Clone, Debug)]
enum Node {
    File(FileNode),
    Dir(DirNode),
    Symlink(PathBuf),
}

#[derive(Clone, Debug)]
struct Inode {
    node: Node,
    modified: SystemTime,
    /// Live names referring to this inode.
    links: u32,
}

/// The result of resolving a path.
struct Lookup {
    /// The directory holding the last name.
    parent: Ino,
    /// The last name; `None` when the path ends at a directory without naming it (the
    /// root, or a `..`).
    name: Option<OsString>,
    /// What the last name refers to, if it exists.
    ino: Option<Ino>,
    /// The path ends with a slash, so it must be a directory.
    dir_only: bool,
}

impl Lookup {
    fn existing(&self) -> io::Result<Ino> {
        self.ino.ok_or_else(|| errno(libc::ENOENT))
    }
}

/// Whether the path ends with a slash (or `/.`): `Path::components` drops it, but the
/// kernel reads it as "this must be a directory".
fn ends_with_slash(path: &Path) -> bool {
    let bytes = path.as_os_str().as_bytes();
    bytes.len() > 1 && (bytes.ends_with(b"/") || bytes.ends_with(b"/."))
}

/// A path's step, borrowing its name from the path (a lookup copies only the last
/// name it returns: docs/recovery-latency.md P40).
enum Step<'a> {
    Parent,
    Name(&'a OsStr),
}

fn steps(path: &Path) -> VecDeque<Step<'_>> {
    path.components()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(Step::Name(name)),
            Component::ParentDir => Some(Step::Parent),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// docs/crash-points.md CP-7: the bytes of `data` from `fresh_from` on were appended
/// (or written) since the file's last sync and survived the power loss in length; a run
/// of them, of a length and at a place `zero` picks, reads as zeroes instead (the new
/// size reached the disk, those blocks of data did not).
fn zero_fill(
    data: &mut [u8],
    fresh_from: usize,
    zero: &mut dyn FnMut(u64) -> u64,
    report: &mut PowerLoss,
) {
    let Some(fresh) = data.len().checked_sub(fresh_from).filter(|n| *n > 0) else {
        return;
    };
    let zeroed = (zero(fresh as u64) as usize).min(fresh);
    if zeroed == 0 {
        return;
    }
    let start = if zeroed < fresh {
        fresh_from + (zero((fresh - zeroed) as u64) as usize).min(fresh - zeroed)
    } else {
        fresh_from
    };
    data[start..start + zeroed].fill(0);
    report.files_zeroed += 1;
    report.bytes_zeroed += zeroed as u64;
}

/// The inodes of one filesystem.
#[derive(Clone)]
struct Tree {
    inodes: BTreeMap<Ino, Inode>,
    next_ino: Ino,
    /// Run the collection of unreachable inodes when there are this many.
    gc_threshold: usize,
}

impl Tree {
    fn new(now: SystemTime) -> Tree {
        let mut inodes = BTreeMap::new();
        inodes.insert(
            ROOT,
            Inode {
                node: Node::Dir(DirNode::default()),
                modified: now,
                links: 1,
            },
        );
        Tree {
            inodes,
            next_ino: ROOT + 1,
            gc_threshold: GC_INODES_MIN,
        }
    }

    fn inode(&self, ino: Ino) -> &Inode {
        self.inodes
            .get(&ino)
            .unwrap_or_else(|| panic!("inode {ino} is referenced but does not exist"))
    }

    fn inode_mut(&mut self, ino: Ino) -> &mut Inode {
        self.inodes
            .get_mut(&ino)
            .unwrap_or_else(|| panic!("inode {ino} is referenced but does not exist"))
    }

    fn is_dir(&self, ino: Ino) -> bool {
        matches!(self.inode(ino).node, Node::Dir(_))
    }

    fn dir(&self, ino: Ino) -> &DirNode {
        match &self.inode(ino).node {
            Node::Dir(dir) => dir,
            _ => panic!("inode {ino} is not a directory"),
        }
    }

    fn dir_mut(&mut self, ino: Ino) -> &mut DirNode {
        match &mut self.inode_mut(ino).node {
            Node::Dir(dir) => dir,
            _ => panic!("inode {ino} is not a directory"),
        }
    }

    fn file(&self, ino: Ino) -> &FileNode {
        match &self.inode(ino).node {
            Node::File(file) => file,
            _ => panic!("inode {ino} is not a file"),
        }
    }

    /// Resolves `path`. Symlinks in every component but the last are followed; the last
    /// is followed when `follow_last` is set. A trailing slash is only recorded
    /// (`dir_only`): what it means depends on the call, as in the kernel.
    fn lookup(&self, path: &Path, follow_last: bool) -> io::Result<Lookup> {
        self.lookup_with(path, follow_last, false)
    }

    /// [`Tree::lookup`]; with `creating_file` (an `open` with `O_CREAT`) a last
    /// component that must be a directory (a trailing slash in the path or in the target
    /// of the last link) is `EISDIR` before it is even looked up, as in the kernel.
    fn lookup_with(
        &self,
        path: &Path,
        follow_last: bool,
        creating_file: bool,
    ) -> io::Result<Lookup> {
        let bytes = path.as_os_str().as_bytes();
        if bytes.is_empty() {
            return Err(errno(libc::ENOENT));
        }
        let mut dir_only = ends_with_slash(path);
        let mut ancestors = vec![ROOT];
        let mut queue = steps(path);
        let mut follows = 0;
        while let Some(step) = queue.pop_front() {
            let current = *ancestors.last().expect("the root is never popped");
            let name = match step {
                Step::Parent => {
                    if ancestors.len() > 1 {
                        ancestors.pop();
                    }
                    continue;
                }
                Step::Name(name) => name,
            };
            let is_last = queue.is_empty();
            if is_last && dir_only && creating_file {
                return Err(errno(libc::EISDIR));
            }
            let Some(child) = self.dir(current).entries.get(name).copied() else {
                if is_last {
                    return Ok(Lookup {
                        parent: current,
                        name: Some(name.to_os_string()),
                        ino: None,
                        dir_only,
                    });
                }
                return Err(errno(libc::ENOENT));
            };
            match &self.inode(child).node {
                Node::Dir(_) => {
                    if is_last {
                        return Ok(Lookup {
                            parent: current,
                            name: Some(name.to_os_string()),
                            ino: Some(child),
                            dir_only,
                        });
                    }
                    ancestors.push(child);
                }
                Node::File(_) => {
                    if !is_last {
                        return Err(errno(libc::ENOTDIR));
                    }
                    return Ok(Lookup {
                        parent: current,
                        name: Some(name.to_os_string()),
                        ino: Some(child),
                        dir_only,
                    });
                }
                Node::Symlink(target) => {
                    if is_last && !follow_last {
                        return Ok(Lookup {
                            parent: current,
                            name: Some(name.to_os_string()),
                            ino: Some(child),
                            dir_only,
                        });
                    }
                    follows += 1;
                    if follows > SYMLINK_FOLLOWS_MAX {
                        return Err(errno(libc::ELOOP));
                    }
                    if target.as_os_str().is_empty() {
                        return Err(errno(libc::ENOENT));
                    }
                    if target.is_absolute() {
                        ancestors.truncate(1);
                    }
                    // A relative target continues from the link's directory, which is
                    // `current`, still on top of `ancestors`. A slash at the end of the
                    // target of the last link means what it would in the path.
                    if is_last && ends_with_slash(target) {
                        dir_only = true;
                    }
                    let mut next = steps(target);
                    next.extend(queue.drain(..));
                    queue = next;
                }
            }
        }
        let dir = *ancestors.last().expect("the root is never popped");
        Ok(Lookup {
            parent: dir,
            name: None,
            ino: Some(dir),
            dir_only,
        })
    }

    /// Resolves `path`, following it to the end (as `open` and `stat` do), to an inode
    /// that exists: `ENOENT` if it does not, `ENOTDIR` if the path ends with a slash
    /// and is not a directory.
    fn resolve(&self, path: &Path) -> io::Result<Ino> {
        let lookup = self.lookup(path, true)?;
        let ino = lookup.existing()?;
        if lookup.dir_only && !self.is_dir(ino) {
            return Err(errno(libc::ENOTDIR));
        }
        Ok(ino)
    }

    /// Whether `ino` is `ancestor` or lies below it in the live tree.
    fn subtree_contains(&self, ancestor: Ino, ino: Ino) -> bool {
        let mut todo = vec![ancestor];
        while let Some(dir) = todo.pop() {
            if dir == ino {
                return true;
            }
            if let Node::Dir(node) = &self.inode(dir).node {
                todo.extend(
                    node.entries
                        .values()
                        .copied()
                        .filter(|&child| self.is_dir(child)),
                );
            }
        }
        false
    }

    /// Drops the inodes that no live, durable or pending name can reach.
    fn collect_garbage(&mut self) {
        let mut keep = BTreeSet::new();
        let mut todo = vec![ROOT];
        while let Some(ino) = todo.pop() {
            if !keep.insert(ino) {
                continue;
            }
            if let Node::Dir(dir) = &self.inode(ino).node {
                let reachable = dir
                    .entries
                    .values()
                    .chain(dir.durable.values())
                    .copied()
                    .chain(dir.pending.iter().filter_map(DirOp::linked));
                todo.extend(reachable.filter(|child| !keep.contains(child)));
            }
        }
        self.inodes.retain(|ino, _| keep.contains(ino));
        self.gc_threshold = GC_INODES_MIN.max(2 * self.inodes.len());
    }

    fn new_inode(&mut self, node: Node, now: SystemTime) -> Ino {
        if self.inodes.len() >= self.gc_threshold {
            // Safe here: every inode a caller holds is reachable by a live name.
            self.collect_garbage();
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(
            ino,
            Inode {
                node,
                modified: now,
                links: 0,
            },
        );
        ino
    }

    /// Turns the tree into one crash state, `choose(n)` picking a number in `0..=n` for
    /// every choice (see the module doc), and with `zero` the zeroes of rule CP-7 of
    /// docs/crash-points.md (from its own choices: `choose` is asked exactly what it is
    /// asked without). Returns what was kept and lost.
    fn crash(
        &mut self,
        choose: &mut dyn FnMut(u64) -> u64,
        mut zero: Option<ZeroFill<'_>>,
    ) -> PowerLoss {
        let mut report = PowerLoss::default();
        for inode in self.inodes.values_mut() {
            match &mut inode.node {
                Node::File(file) => {
                    let mut data = std::mem::take(&mut file.durable);
                    let pending = std::mem::take(&mut file.pending);
                    // Where the bytes no sync covers begin: the durable length, or less
                    // after a kept truncate (a `write` starts with one to 0).
                    let mut fresh_from = data.len();
                    if !pending.is_empty() {
                        let kept = choose(pending.len() as u64) as usize;
                        assert!(kept <= pending.len(), "chose {kept} of {}", pending.len());
                        for op in &pending[..kept] {
                            if let FileOp::Truncate(length) = op {
                                fresh_from = fresh_from.min(*length as usize);
                            }
                            op.apply(&mut data);
                        }
                        if let Some(FileOp::Append(bytes)) = pending.get(kept) {
                            if !bytes.is_empty() {
                                let torn = choose(bytes.len() as u64 - 1) as usize;
                                assert!(torn < bytes.len(), "tore {torn} of {}", bytes.len());
                                if torn > 0 {
                                    data.extend_from_slice(&bytes[..torn]);
                                    report.appends_torn += 1;
                                }
                            }
                        }
                        report.file_ops_pending += pending.len() as u64;
                        report.file_ops_kept += kept as u64;
                    }
                    if let Some(zero) = zero.as_mut() {
                        zero_fill(&mut data, fresh_from, &mut **zero, &mut report);
                    }
                    file.data = data.clone();
                    file.durable = data;
                }
                Node::Dir(dir) => {
                    let mut entries = std::mem::take(&mut dir.durable);
                    let pending = std::mem::take(&mut dir.pending);
                    if !pending.is_empty() {
                        let kept = choose(pending.len() as u64) as usize;
                        assert!(kept <= pending.len(), "chose {kept} of {}", pending.len());
                        for op in &pending[..kept] {
                            op.apply(&mut entries);
                        }
                        report.dir_ops_pending += pending.len() as u64;
                        report.dir_ops_kept += kept as u64;
                    }
                    dir.entries = entries.clone();
                    dir.durable = entries;
                }
                Node::Symlink(_) => {}
            }
            inode.links = 0;
        }

        // Keep what the root reaches; a directory reached a second time (a rename across
        // directories that kept both sides, or a cycle) keeps only its first name.
        let mut reached = BTreeSet::from([ROOT]);
        let mut queue = VecDeque::from([ROOT]);
        while let Some(dir) = queue.pop_front() {
            let entries: Vec<(OsString, Ino)> = self
                .dir(dir)
                .entries
                .iter()
                .map(|(name, ino)| (name.clone(), *ino))
                .collect();
            let mut dropped = Vec::new();
            for (name, child) in entries {
                if self.is_dir(child) {
                    if reached.contains(&child) {
                        dropped.push(name);
                        continue;
                    }
                    queue.push_back(child);
                }
                reached.insert(child);
                self.inode_mut(child).links += 1;
            }
            let node = self.dir_mut(dir);
            for name in dropped {
                node.entries.remove(&name);
                node.durable.remove(&name);
            }
        }
        self.inode_mut(ROOT).links = 1;
        let before = self.inodes.len();
        self.inodes.retain(|ino, _| reached.contains(ino));
        report.inodes_lost = (before - self.inodes.len()) as u64;
        self.gc_threshold = GC_INODES_MIN.max(2 * self.inodes.len());
        report
    }

    /// The bytes of every file a live name reaches (a file under two names once).
    fn live_bytes(&self) -> u64 {
        self.inodes
            .values()
            .filter(|inode| inode.links > 0)
            .map(|inode| match &inode.node {
                Node::File(file) => file.data.len() as u64,
                _ => 0,
            })
            .sum()
    }

    /// Every live path below the root, with what it is.
    fn listing(&self) -> BTreeMap<PathBuf, Entry> {
        let mut listing = BTreeMap::new();
        self.walk(|path, inode| {
            let entry = match &inode.node {
                Node::Dir(_) => Entry::Dir,
                Node::File(file) => Entry::File(file.data.clone()),
                Node::Symlink(target) => Entry::Symlink(target.clone()),
            };
            listing.insert(path, entry);
        });
        listing
    }

    /// The live path [`Tree::walk`] names `path` by, and its inode: `path` taken
    /// component by component from the root through directories, never following a
    /// symlink (as the walk does not); `None` when there is no such live path.
    fn lexical(&self, path: &Path) -> Option<(PathBuf, Ino)> {
        let mut components = path.components();
        if components.next() != Some(Component::RootDir) {
            return None;
        }
        let mut at = PathBuf::from("/");
        let mut ino = ROOT;
        for component in components {
            let Component::Normal(name) = component else {
                return None;
            };
            if !self.is_dir(ino) {
                return None;
            }
            ino = *self.dir(ino).entries.get(name)?;
            at.push(name);
        }
        Some((at, ino))
    }

    /// Visits every live path below the root (not the root itself), parents first, in
    /// byte order.
    fn walk(&self, visit: impl FnMut(PathBuf, &Inode)) {
        self.walk_from(PathBuf::from("/"), ROOT, visit);
    }

    /// Visits every live path strictly below directory `dir` (at `path`), in the order
    /// [`Tree::walk`] visits them: a subtree's part of the whole walk.
    fn walk_from(&self, path: PathBuf, dir: Ino, mut visit: impl FnMut(PathBuf, &Inode)) {
        let mut todo = vec![(path, dir)];
        while let Some((path, dir)) = todo.pop() {
            let children: Vec<_> = self.dir(dir).entries.iter().collect();
            for (name, &child) in children.into_iter().rev() {
                let child_path = path.join(name);
                if self.is_dir(child) {
                    todo.push((child_path.clone(), child));
                }
                visit(child_path, self.inode(child));
            }
        }
    }
}

struct HeldLock {
    id: u64,
    holder: String,
}

struct State {
    tree: Tree,
    clock: WallClock,
    capacity_bytes: u64,
    /// The bytes of every live file (see [`Tree::live_bytes`]), kept up to date.
    used_bytes: u64,
    locks: BTreeMap<Ino, HeldLock>,
    next_lock_id: u64,
    faults: Vec<Fault>,
    fault_rng: StdRng,
    counters: Counters,
    /// How long a group sync started with `start_sync_files` takes, in simulated time
    /// (zero: it syncs at once).
    group_sync_latency: std::time::Duration,
    /// How many times each inode's data, length or entries changed (docs/design.md D87).
    versions: BTreeMap<Ino, u64>,
    /// The version of each inode that each agent process's last completed sync of it
    /// covered (docs/recovery-latency.md P67).
    synced: BTreeMap<(Actor, Ino), u64>,
    /// The logs each agent process appended to and that were not yet found synced at
    /// one of its renames (docs/recovery-latency.md P14; see [`SimFs::rename`]).
    appended: BTreeMap<Actor, BTreeSet<PathBuf>>,
}

impl State {
    fn now(&self) -> SystemTime {
        (self.clock)()
    }

    /// Counts the call and fails it if a fault says so.
    fn begin(&mut self, op: Op, path: &Path, other: Option<&Path>) -> io::Result<()> {
        self.begin_torn(op, path, other).map_err(|(error, _)| error)
    }

    /// As [`State::begin`]; the error comes with whether the fault that fired tears
    /// (see [`Fault::torn`]).
    fn begin_torn(
        &mut self,
        op: Op,
        path: &Path,
        other: Option<&Path>,
    ) -> Result<(), (io::Error, Option<usize>)> {
        *self.counters.per_op.entry(op).or_default() += 1;
        let mut index = 0;
        while index < self.faults.len() {
            let fault = &self.faults[index];
            let fires = fault.matches(op, path, other)
                && (fault.probability >= 1.0 || self.fault_rng.gen_bool(fault.probability));
            if fires {
                let fault = &mut self.faults[index];
                // How many bytes a tear may keep at most (none: not torn).
                let torn = fault
                    .torn
                    .then_some(fault.torn_at_most.unwrap_or(usize::MAX));
                let error = fault.error;
                if let Some(remaining) = &mut fault.remaining {
                    *remaining -= 1;
                    if *remaining == 0 {
                        self.faults.remove(index);
                    }
                }
                self.counters.faults_injected += 1;
                crate::fault_log::fired(op, path);
                return Err((error.to_io_error(), torn));
            }
            index += 1;
        }
        Ok(())
    }

    /// Fails with `ENOSPC` if a live file growing from `old` to `new` bytes overflows.
    fn ensure_space(&mut self, old: usize, new: usize) -> io::Result<()> {
        if new > old && self.used_bytes + (new - old) as u64 > self.capacity_bytes {
            self.counters.faults_injected += 1;
            return Err(errno(libc::ENOSPC));
        }
        Ok(())
    }

    fn add_link(&mut self, ino: Ino) {
        let inode = self.tree.inode_mut(ino);
        inode.links += 1;
        if let (1, Node::File(file)) = (inode.links, &inode.node) {
            self.used_bytes += file.data.len() as u64;
        }
    }

    fn drop_link(&mut self, ino: Ino) {
        let inode = self.tree.inode_mut(ino);
        inode.links -= 1;
        if let (0, Node::File(file)) = (inode.links, &inode.node) {
            self.used_bytes -= file.data.len() as u64;
        }
    }

    /// Points `name` in `dir` at `ino`, replacing what it pointed at.
    fn link(&mut self, dir: Ino, name: &OsStr, ino: Ino) {
        let now = self.now();
        let node = self.tree.dir_mut(dir);
        node.pending.push(DirOp::Link(name.to_os_string(), ino));
        let old = node.entries.insert(name.to_os_string(), ino);
        self.changed(dir);
        self.tree.inode_mut(dir).modified = now;
        self.add_link(ino);
        if let Some(old) = old {
            self.drop_link(old);
        }
    }

    /// Removes `name` from `dir`.
    fn unlink(&mut self, dir: Ino, name: &OsStr) {
        let now = self.now();
        let node = self.tree.dir_mut(dir);
        let old = node
            .entries
            .remove(name)
            .expect("unlink of a name that exists");
        node.pending.push(DirOp::Unlink(name.to_os_string()));
        self.changed(dir);
        self.tree.inode_mut(dir).modified = now;
        self.drop_link(old);
    }

    fn new_inode(&mut self, node: Node) -> Ino {
        let now = self.now();
        self.tree.new_inode(node, now)
    }

    /// Applies `op` to the file `ino`, logging it as pending.
    fn apply(&mut self, ino: Ino, op: FileOp) {
        let now = self.now();
        let inode = self.tree.inode_mut(ino);
        let Node::File(file) = &mut inode.node else {
            panic!("inode {ino} is not a file");
        };
        let old_length = file.data.len() as u64;
        op.apply(&mut file.data);
        let new_length = file.data.len() as u64;
        // An operation that changed nothing leaves no crash state of its own.
        let changed = match &op {
            FileOp::Truncate(_) => old_length != new_length,
            FileOp::Append(bytes) => !bytes.is_empty(),
        };
        if changed {
            file.pending.push(op);
        }
        inode.modified = now;
        if inode.links > 0 {
            self.used_bytes = self.used_bytes - old_length + new_length;
        }
        if changed {
            self.changed(ino);
        }
    }

    /// Inode `ino`'s data, length or entries changed (docs/design.md D87).
    fn changed(&mut self, ino: Ino) {
        *self.versions.entry(ino).or_default() += 1;
    }

    /// What a sync of `path` by `actor` would cover: the inode and its version, and
    /// whether nothing changed since `actor`'s last completed sync of it
    /// (docs/recovery-latency.md P67). `None` when the path does not resolve.
    fn sync_coverage(&self, actor: Actor, path: &Path) -> Option<(Ino, u64, bool)> {
        let ino = self.tree.resolve(path).ok()?;
        let version = self.versions.get(&ino).copied().unwrap_or(0);
        let repeated = self.synced.get(&(actor, ino)) == Some(&version);
        Some((ino, version, repeated))
    }

    /// A sync of `path` by `actor` is about to run: records it when it repeats `actor`'s
    /// last completed sync of the inode (P67). Returns what it covers.
    fn judge_sync(&mut self, actor: Actor, path: &Path) -> Option<(Ino, u64)> {
        let (ino, version, repeated) = self.sync_coverage(actor, path)?;
        if repeated {
            let dir = self.tree.is_dir(ino);
            crate::disk_work::done(actor, path, Work::RepeatedSync { dir });
        }
        Some((ino, version))
    }

    /// Resolves `path` (following it) to a file, creating an empty one if the name is
    /// missing. `EISDIR` for a directory.
    fn open_for_write(&mut self, path: &Path, create: bool) -> io::Result<Ino> {
        if !create {
            let ino = self.tree.resolve(path)?;
            if self.tree.is_dir(ino) {
                return Err(errno(libc::EISDIR));
            }
            return Ok(ino);
        }
        let lookup = self.tree.lookup_with(path, true, true)?;
        match lookup.ino {
            Some(ino) if self.tree.is_dir(ino) => Err(errno(libc::EISDIR)),
            Some(ino) => Ok(ino),
            None => {
                let name = lookup.name.expect("a missing path has a last name");
                let ino = self.new_inode(Node::File(FileNode::default()));
                self.link(lookup.parent, &name, ino);
                Ok(ino)
            }
        }
    }

    /// The first log `actor` appended to that still holds bytes no sync covered; the
    /// logs found synced (or gone) are forgotten until its next append to them.
    fn first_unsynced_append(&mut self, actor: Actor) -> Option<PathBuf> {
        let paths = self.appended.remove(&actor)?;
        let mut pending = BTreeSet::new();
        for path in paths {
            let Ok(ino) = self.tree.resolve(&path) else {
                continue;
            };
            if let Node::File(file) = &self.tree.inode(ino).node {
                if !file.pending.is_empty() {
                    pending.insert(path);
                }
            }
        }
        let first = pending.first().cloned();
        if !pending.is_empty() {
            self.appended.insert(actor, pending);
        }
        first
    }

    /// fsync of whatever `path` resolves to.
    fn sync(&mut self, path: &Path) -> io::Result<()> {
        let ino = self.tree.resolve(path)?;
        match &mut self.tree.inode_mut(ino).node {
            Node::File(file) => {
                file.durable = file.data.clone();
                file.pending.clear();
            }
            Node::Dir(dir) => {
                dir.durable = dir.entries.clone();
                dir.pending.clear();
            }
            Node::Symlink(_) => unreachable!("a followed path never ends at a symlink"),
        }
        Ok(())
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        let source = self.tree.lookup(from, false)?;
        let destination = self.tree.lookup(to, false)?;
        let ino = source.existing()?;
        let (Some(from_name), Some(to_name)) = (&source.name, &destination.name) else {
            // The root, or a path ending in `..`.
            return Err(errno(libc::EBUSY));
        };
        // The kernel's order of checks (`do_renameat2`, then `vfs_rename`).
        let source_is_dir = self.tree.is_dir(ino);
        if (source.dir_only || destination.dir_only) && !source_is_dir {
            return Err(errno(libc::ENOTDIR));
        }
        if source_is_dir && self.tree.subtree_contains(ino, destination.parent) {
            // Into itself.
            return Err(errno(libc::EINVAL));
        }
        if let Some(replaced) = destination.ino {
            if self.tree.is_dir(replaced)
                && replaced != ino
                && self.tree.subtree_contains(replaced, source.parent)
            {
                // Over one of its own ancestors.
                return Err(errno(libc::ENOTEMPTY));
            }
            if replaced == ino {
                // Two names of one inode (or one name twice): POSIX says do nothing.
                return Ok(());
            }
            match (source_is_dir, self.tree.is_dir(replaced)) {
                (true, false) => return Err(errno(libc::ENOTDIR)),
                (false, true) => return Err(errno(libc::EISDIR)),
                (true, true) if !self.tree.dir(replaced).entries.is_empty() => {
                    return Err(errno(libc::ENOTEMPTY))
                }
                _ => {}
            }
        }
        if source.parent == destination.parent {
            let now = self.now();
            let node = self.tree.dir_mut(source.parent);
            node.entries.remove(from_name);
            let replaced = node.entries.insert(to_name.clone(), ino);
            node.pending
                .push(DirOp::Rename(from_name.clone(), to_name.clone(), ino));
            self.changed(source.parent);
            self.tree.inode_mut(source.parent).modified = now;
            if let Some(replaced) = replaced {
                self.drop_link(replaced);
            }
        } else {
            // Link first, so that the inode never has zero names on the way.
            self.link(destination.parent, to_name, ino);
            self.unlink(source.parent, from_name);
        }
        Ok(())
    }
}

/// What a sync started earlier covers (see [`SimFs::sync_requested`]).
#[derive(Clone, Copy, Debug)]
pub struct SyncRequest(Option<(Ino, u64)>);

/// The simulated filesystem of one machine. Cloning gives another handle to the same
/// filesystem. See the module doc for the durability model.
#[derive(Clone)]
pub struct SimFs {
    state: Rc<RefCell<State>>,
    /// The agent process this handle is (docs/design.md D87); `None` for the
    /// simulator's own handles.
    actor: Option<Actor>,
}

impl Default for SimFs {
    fn default() -> SimFs {
        SimFs::new()
    }
}

impl fmt::Debug for SimFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.dump())
    }
}

impl SimFs {
    /// An empty filesystem (just `/`) of [`CAPACITY_BYTES_DEFAULT`], whose clock stands
    /// at the Unix epoch, with fault seed 0.
    pub fn new() -> SimFs {
        SimFs::with_clock(Rc::new(|| SystemTime::UNIX_EPOCH))
    }

    /// An empty filesystem that stamps modification times with `clock`.
    pub fn with_clock(clock: WallClock) -> SimFs {
        let now = clock();
        SimFs {
            state: Rc::new(RefCell::new(State {
                tree: Tree::new(now),
                clock,
                capacity_bytes: CAPACITY_BYTES_DEFAULT,
                used_bytes: 0,
                locks: BTreeMap::new(),
                next_lock_id: 0,
                faults: Vec::new(),
                fault_rng: StdRng::seed_from_u64(0),
                counters: Counters::default(),
                group_sync_latency: std::time::Duration::ZERO,
                versions: BTreeMap::new(),
                synced: BTreeMap::new(),
                appended: BTreeMap::new(),
            })),
            actor: None,
        }
    }

    /// Another handle on this filesystem, for the process incarnation `incarnation` of
    /// agent `agent` (docs/design.md D87): the disk work it wastes is recorded in
    /// [`crate::disk_work`] (docs/recovery-latency.md P67-P69).
    pub fn for_agent(&self, agent: u32, incarnation: u64) -> SimFs {
        SimFs {
            state: Rc::clone(&self.state),
            actor: Some(Actor { agent, incarnation }),
        }
    }

    /// A group sync of `path` is started now by this handle's process and will run
    /// later with [`SimFs::sync_file_requested`] (a pipelined group's sync, whose
    /// simulated latency puts the `fsync` after its start). What it will cover is fixed
    /// now, and judged now (docs/recovery-latency.md P67): a later sync that completes
    /// first does not make this one repeated, since the process asked for it before.
    /// Counts no operation and meets no fault.
    pub fn sync_requested(&self, path: &Path) -> SyncRequest {
        let Some(actor) = self.actor else {
            return SyncRequest(None);
        };
        SyncRequest(self.state.borrow_mut().judge_sync(actor, path))
    }

    /// The `sync_file` of a sync started earlier (see [`SimFs::sync_requested`]): the
    /// same operation, which records what the request covered.
    pub fn sync_file_requested(&self, path: &Path, request: &SyncRequest) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        state.begin(Op::SyncFile, path, None)?;
        state.sync(path)?;
        self.synced(&mut state, request.0);
        Ok(())
    }

    /// A sync by this handle's process completed, covering `covered`.
    fn synced(&self, state: &mut State, covered: Option<(Ino, u64)>) {
        if let (Some(actor), Some((ino, version))) = (self.actor, covered) {
            let last = state.synced.entry((actor, ino)).or_insert(version);
            *last = (*last).max(version);
        }
    }

    /// Replaces the clock.
    pub fn set_clock(&self, clock: WallClock) {
        self.state.borrow_mut().clock = clock;
    }

    /// Sets the capacity: [`FileSystem::disk_usage`] is the live bytes over it, and a
    /// write that would pass it fails with `ENOSPC`.
    pub fn set_capacity_bytes(&self, capacity_bytes: u64) {
        assert!(capacity_bytes > 0, "a filesystem of zero bytes");
        self.state.borrow_mut().capacity_bytes = capacity_bytes;
    }

    /// The bytes of every file a live name reaches.
    pub fn used_bytes(&self) -> u64 {
        let state = self.state.borrow();
        debug_assert_eq!(state.used_bytes, state.tree.live_bytes());
        state.used_bytes
    }

    /// How long a group sync started by an agent process
    /// ([`revenant::os::FileSystem::start_sync_files`], group commit pipelined) takes
    /// in simulated time; zero (the default) syncs at once. A power loss meanwhile
    /// loses what the group had not yet made durable.
    pub fn set_group_sync_latency(&self, latency: std::time::Duration) {
        self.state.borrow_mut().group_sync_latency = latency;
    }

    /// See [`SimFs::set_group_sync_latency`].
    pub fn group_sync_latency(&self) -> std::time::Duration {
        self.state.borrow().group_sync_latency
    }

    /// Seeds the RNG that probabilistic faults draw from.
    pub fn set_fault_seed(&self, seed: u64) {
        self.state.borrow_mut().fault_rng = StdRng::seed_from_u64(seed);
    }

    /// Adds a fault rule; rules are tried in the order they were added.
    pub fn inject(&self, fault: Fault) {
        if fault.remaining == Some(0) {
            return;
        }
        self.state.borrow_mut().faults.push(fault);
    }

    /// The next `count` operations of any kind fail with `error`.
    pub fn fail_next(&self, count: u64, error: FaultError) {
        self.inject(Fault::new(error).on(OpSet::ALL).times(count));
    }

    /// The next `count` calls of `sync_file` fail with `EIO` (and make nothing durable).
    pub fn fail_next_file_syncs(&self, count: u64) {
        self.inject(Fault::new(FaultError::Io).on(Op::SyncFile).times(count));
    }

    /// Removes every fault rule but those made [`Fault::across_restarts`].
    pub fn clear_faults(&self) {
        self.state.borrow_mut().faults.retain(|f| f.sticky);
    }

    /// Whether any fault rule is armed.
    pub fn has_faults(&self) -> bool {
        !self.state.borrow().faults.is_empty()
    }

    /// How many operations were asked for, by kind.
    pub fn counters(&self) -> Counters {
        self.state.borrow().counters.clone()
    }

    /// Sets every operation count to zero (fault and power-loss counts too).
    pub fn reset_counters(&self) {
        self.state.borrow_mut().counters = Counters::default();
    }

    /// `remove_dir_all` as a real disk does it (docs/simulator-reach.md rule 2): one unlink at a time, children before
    /// their directory, in byte order, depth first, then the directory itself. `step`
    /// is called before each unlink (after the call itself is counted and checked
    /// against the injected faults); an error from it stops the removal there, leaving
    /// the unlinks already done in place, as a process that dies part-way through
    /// `rm -rf` leaves them. Each unlink is its own entry in its directory's log, so a
    /// power loss may keep any prefix of them per directory. Otherwise as std's
    /// `remove_dir_all`: `lstat` the path (which follows it only when it ends with a
    /// slash); a symlink is removed, not followed; a file is an error; a directory is
    /// emptied (without following the symlinks in it) and then removed by name, a name
    /// that is gone by then being no error.
    pub fn remove_dir_all_stepwise(
        &self,
        path: &Path,
        step: &mut dyn FnMut() -> io::Result<()>,
    ) -> io::Result<()> {
        let ino = {
            let mut state = self.state.borrow_mut();
            state.begin(Op::RemoveDirAll, path, None)?;
            // docs/recovery-latency.md P69: whether the removal found the path there.
            if let Some(actor) = self.actor {
                let absent = match state.tree.lookup(path, false) {
                    Ok(lookup) => lookup.ino.is_none(),
                    Err(error) => error.kind() == io::ErrorKind::NotFound,
                };
                crate::disk_work::done(actor, path, Work::Removal { absent });
            }
            let lookup = state.tree.lookup(path, false)?;
            let ino = if lookup.dir_only {
                state.tree.resolve(path)?
            } else {
                lookup.existing()?
            };
            match &state.tree.inode(ino).node {
                Node::File(_) => return Err(errno(libc::ENOTDIR)),
                Node::Symlink(_) => {
                    drop(state);
                    step()?;
                    let mut state = self.state.borrow_mut();
                    let name = lookup.name.as_ref().expect("a symlink has a name");
                    state.unlink(lookup.parent, name);
                    return Ok(());
                }
                Node::Dir(_) => ino,
            }
        };
        self.empty_stepwise(ino, step)?;
        step()?;
        let mut state = self.state.borrow_mut();
        let lookup = match state.tree.lookup(path, false) {
            Ok(lookup) => lookup,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        };
        let Some(ino) = lookup.ino else {
            return Ok(());
        };
        let Some(name) = &lookup.name else {
            return Err(errno(libc::EBUSY));
        };
        match &state.tree.inode(ino).node {
            Node::Dir(dir) if !dir.entries.is_empty() => Err(errno(libc::ENOTEMPTY)),
            Node::Dir(_) => {
                state.unlink(lookup.parent, name);
                Ok(())
            }
            _ => Err(errno(libc::ENOTDIR)),
        }
    }

    /// Unlinks everything below the directory `dir`, one [`Self::remove_dir_all_stepwise`]
    /// step per unlink.
    fn empty_stepwise(&self, dir: Ino, step: &mut dyn FnMut() -> io::Result<()>) -> io::Result<()> {
        loop {
            let next = {
                let state = self.state.borrow();
                let first = state.tree.dir(dir).entries.iter().next();
                first.map(|(name, child)| (name.clone(), *child, state.tree.is_dir(*child)))
            };
            let Some((name, child, is_dir)) = next else {
                return Ok(());
            };
            if is_dir {
                self.empty_stepwise(child, step)?;
            }
            step()?;
            self.state.borrow_mut().unlink(dir, &name);
        }
    }

    /// Cuts the power: the filesystem becomes one of the crash states the durability
    /// contract allows, chosen by `rng` (see the module doc), and every lock is released.
    /// The same state and the same RNG state give the same result.
    pub fn power_loss(&self, rng: &mut impl RngCore) -> PowerLoss {
        self.crash_with(&mut |n| rng.gen_range(0..=n), None)
    }

    /// [`SimFs::power_loss`], and un-synced appended bytes that survive in length may
    /// read as zeroes, in part or whole (docs/crash-points.md CP-7), drawn from `zeroes`:
    /// `rng` is asked exactly what [`SimFs::power_loss`] asks it, so the kept and lost
    /// operations are those it leaves.
    pub fn power_loss_zero_filled(
        &self,
        rng: &mut impl RngCore,
        zeroes: &mut impl RngCore,
    ) -> PowerLoss {
        self.crash_with(
            &mut |n| rng.gen_range(0..=n),
            Some(&mut |n: u64| zeroes.gen_range(0..=n)),
        )
    }

    /// Cuts the power, each choice made by `choose` as in [`SimFs::power_loss_with`],
    /// and each zero-fill choice of rule CP-7 by `zero` (handed the largest legal answer
    /// `n`; an answer above it is taken as `n`).
    pub fn power_loss_zero_filled_with(
        &self,
        choose: &mut dyn FnMut(u64) -> u64,
        zero: &mut dyn FnMut(u64) -> u64,
    ) -> PowerLoss {
        self.crash_with(
            &mut |n| choose(n).min(n),
            Some(&mut |n: u64| zero(n).min(n)),
        )
    }

    /// Cuts the power, losing everything that is not durable: the harshest crash state.
    pub fn power_loss_durable_only(&self) -> PowerLoss {
        self.crash_with(&mut |_| 0, None)
    }

    /// Cuts the power after the disk took every pending operation: the mildest crash
    /// state (only the locks are lost).
    pub fn power_loss_keep_all(&self) -> PowerLoss {
        self.crash_with(&mut |n| n, None)
    }

    /// Cuts the power, each choice of the crash state made by `choose` (handed the
    /// largest legal answer `n`, it returns one in `0..=n`; an answer above `n` is taken
    /// as `n`): a systematic search picks crash states with it.
    pub fn power_loss_with(&self, choose: &mut dyn FnMut(u64) -> u64) -> PowerLoss {
        self.crash_with(&mut |n| choose(n).min(n), None)
    }

    /// A separate filesystem holding a copy of this one's tree (live, durable and
    /// pending state) and clock, without locks, faults or counts: a crash state can be
    /// tried on the copy without touching this one.
    pub fn fork(&self) -> SimFs {
        let state = self.state.borrow();
        let copy = SimFs::with_clock(state.clock.clone());
        {
            let mut inner = copy.state.borrow_mut();
            inner.tree = state.tree.clone();
            inner.capacity_bytes = state.capacity_bytes;
            inner.used_bytes = state.used_bytes;
        }
        copy
    }

    fn crash_with(
        &self,
        choose: &mut dyn FnMut(u64) -> u64,
        zero: Option<ZeroFill<'_>>,
    ) -> PowerLoss {
        let mut state = self.state.borrow_mut();
        let report = state.tree.crash(choose, zero);
        state.used_bytes = state.tree.live_bytes();
        state.locks.clear();
        state.counters.power_losses += 1;
        report
    }

    /// Makes everything durable, as `sync(1)` does.
    pub fn sync_everything(&self) {
        let mut state = self.state.borrow_mut();
        for inode in state.tree.inodes.values_mut() {
            match &mut inode.node {
                Node::File(file) => {
                    file.durable = file.data.clone();
                    file.pending.clear();
                }
                Node::Dir(dir) => {
                    dir.durable = dir.entries.clone();
                    dir.pending.clear();
                }
                Node::Symlink(_) => {}
            }
        }
    }

    /// A live path's modification time, for the oracles (counts no operation, meets
    /// no fault); `None` when nothing is there.
    pub fn mtime(&self, path: &Path) -> Option<SystemTime> {
        let state = self.state.borrow();
        let ino = state.tree.resolve(path).ok()?;
        Some(state.tree.inode(ino).modified)
    }

    /// Every live path, with what it is (what a process sees now).
    pub fn tree(&self) -> BTreeMap<PathBuf, Entry> {
        self.state.borrow().tree.listing()
    }

    /// Every live path at or below `path` (directories, files and links), without
    /// touching fault injection or counters, and without copying any file's bytes.
    pub fn paths_under(&self, path: &Path) -> Vec<PathBuf> {
        // The live paths that start with `path` (component-wise), in the order of a
        // whole walk, found by descending to `path` and walking only what lies below it
        // instead of the whole disk for every removal (docs/recovery-latency.md P35).
        let mut out = Vec::new();
        let state = self.state.borrow();
        let tree = &state.tree;
        // Every path starts with the empty path, as with the root.
        let path = if path.as_os_str().is_empty() {
            Path::new("/")
        } else {
            path
        };
        let Some((at, ino)) = tree.lexical(path) else {
            return out;
        };
        if ino != ROOT {
            out.push(at.clone());
        }
        if tree.is_dir(ino) {
            tree.walk_from(at, ino, |live, _| out.push(live));
        }
        out
    }

    /// The entry at `path` as [`SimFs::tree`] lists it (symlinks not followed), without
    /// listing (and copying) the whole disk (docs/recovery-latency.md P35).
    pub fn entry(&self, path: &Path) -> Option<Entry> {
        let state = self.state.borrow();
        let tree = &state.tree;
        let (_, ino) = tree.lexical(path)?;
        if ino == ROOT {
            return None;
        }
        Some(match &tree.inode(ino).node {
            Node::Dir(_) => Entry::Dir,
            Node::File(file) => Entry::File(file.data.clone()),
            Node::Symlink(target) => Entry::Symlink(target.clone()),
        })
    }

    /// The tree a power loss that kept nothing un-synced would leave (without cutting
    /// the power): what is durable now.
    pub fn snapshot_durable(&self) -> BTreeMap<PathBuf, Entry> {
        let mut tree = self.state.borrow().tree.clone();
        tree.crash(&mut |_| 0, None);
        tree.listing()
    }

    /// Whether nothing is pending: every live file's data and every live directory's
    /// names are durable.
    pub fn is_all_durable(&self) -> bool {
        let state = self.state.borrow();
        let mut all = true;
        state.tree.walk(|_, inode| match &inode.node {
            Node::File(file) => all &= file.pending.is_empty(),
            Node::Dir(dir) => all &= dir.pending.is_empty(),
            Node::Symlink(_) => {}
        });
        all && state.tree.dir(ROOT).pending.is_empty()
    }

    /// A readable listing of the tree, one path per line, with what is pending.
    pub fn dump(&self) -> String {
        const SHOWN_BYTES_MAX: usize = 48;
        let state = self.state.borrow();
        let mut out = String::new();
        let root = state.tree.dir(ROOT);
        let _ = writeln!(out, "/ dir (pending {})", root.pending.len());
        state.tree.walk(|path, inode| {
            let _ = match &inode.node {
                Node::Dir(dir) => writeln!(
                    out,
                    "{} dir (pending {})",
                    path.display(),
                    dir.pending.len()
                ),
                Node::File(file) => {
                    let shown = &file.data[..file.data.len().min(SHOWN_BYTES_MAX)];
                    let more = if file.data.len() > SHOWN_BYTES_MAX {
                        "..."
                    } else {
                        ""
                    };
                    writeln!(
                        out,
                        "{} file {} bytes (durable {}, pending {}) \"{}\"{}",
                        path.display(),
                        file.data.len(),
                        file.durable.len(),
                        file.pending.len(),
                        shown.escape_ascii(),
                        more
                    )
                }
                Node::Symlink(target) => {
                    writeln!(out, "{} -> {}", path.display(), target.display())
                }
            };
        });
        out
    }

    /// How many inodes are kept (live, or reachable by a durable or pending name).
    pub fn inode_count(&self) -> usize {
        self.state.borrow().tree.inodes.len()
    }

    /// Panics if the simulator's own bookkeeping is broken: every name (live, durable or
    /// pending) refers to an inode that exists, link counts match the live names, the
    /// live tree is a tree, and the used bytes match the live files.
    pub fn check_invariants(&self) {
        let state = self.state.borrow();
        let tree = &state.tree;
        let mut links: BTreeMap<Ino, u32> = BTreeMap::new();
        for (ino, inode) in &tree.inodes {
            if let Node::Dir(dir) = &inode.node {
                let named = dir
                    .entries
                    .values()
                    .chain(dir.durable.values())
                    .copied()
                    .chain(dir.pending.iter().filter_map(DirOp::linked));
                for child in named {
                    assert!(
                        tree.inodes.contains_key(&child),
                        "directory {ino} names inode {child}, which does not exist"
                    );
                }
            }
        }
        let mut seen_dirs = BTreeSet::from([ROOT]);
        let mut todo = vec![ROOT];
        while let Some(dir) = todo.pop() {
            for &child in tree.dir(dir).entries.values() {
                *links.entry(child).or_default() += 1;
                if tree.is_dir(child) {
                    assert!(
                        seen_dirs.insert(child),
                        "directory {child} is reached twice in the live tree"
                    );
                    todo.push(child);
                }
            }
        }
        links.insert(ROOT, 1);
        for (ino, inode) in &tree.inodes {
            assert_eq!(
                inode.links,
                links.get(ino).copied().unwrap_or(0),
                "inode {ino}: link count"
            );
        }
        assert_eq!(state.used_bytes, tree.live_bytes(), "used bytes");
    }
}

struct SimLock {
    state: Rc<RefCell<State>>,
    ino: Ino,
    id: u64,
}

impl FileLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut state = self.state.borrow_mut();
        // A power loss since may have cleared the lock and someone else taken it.
        if state.locks.get(&self.ino).map(|held| held.id) == Some(self.id) {
            state.locks.remove(&self.ino);
        }
    }
}

impl FileSystem for SimFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut state = self.state.borrow_mut();
        state.begin(Op::Read, path, None)?;
        let ino = state.tree.resolve(path)?;
        match &state.tree.inode(ino).node {
            Node::File(file) => Ok(file.data.clone()),
            _ => Err(errno(libc::EISDIR)),
        }
    }

    fn write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        state.begin(Op::Write, path, None)?;
        // As `File::create` then `write_all`: the file is created and truncated before
        // the data is found not to fit.
        let ino = state.open_for_write(path, true)?;
        if let Some(actor) = self.actor {
            // docs/recovery-rules.md R59: a synced checkpoint header overwritten in place.
            let file = state.tree.file(ino);
            if starts_with_our_header(&file.data) && starts_with_our_header(&file.durable) {
                let durable = file.durable.len() as u64;
                crate::disk_work::done(actor, path, Work::HeaderOverwritten { durable });
            }
        }
        state.apply(ino, FileOp::Truncate(0));
        state.ensure_space(0, data.len())?;
        state.apply(ino, FileOp::Append(data.to_vec()));
        Ok(())
    }

    fn append(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        match state.begin_torn(Op::Append, path, None) {
            Ok(()) => {}
            Err((error, Some(at_most))) if data.len() > 1 => {
                // A short write, then the error: a prefix of the bytes stays.
                let ino = state.open_for_write(path, true)?;
                let kept = if at_most < data.len() {
                    state.fault_rng.gen_range(1..=at_most)
                } else {
                    state.fault_rng.gen_range(1..data.len())
                };
                state.ensure_space(0, kept)?;
                state.apply(ino, FileOp::Append(data[..kept].to_vec()));
                return Err(error);
            }
            Err((error, _)) => return Err(error),
        }
        let ino = state.open_for_write(path, true)?;
        state.ensure_space(0, data.len())?;
        state.apply(ino, FileOp::Append(data.to_vec()));
        if let Some(actor) = self.actor {
            // docs/recovery-latency.md P14: judged at this process's next rename.
            state
                .appended
                .entry(actor)
                .or_default()
                .insert(path.to_path_buf());
        }
        Ok(())
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        state.begin(Op::SyncFile, path, None)?;
        let covered = self.actor.and_then(|actor| state.judge_sync(actor, path));
        state.sync(path)?;
        self.synced(&mut state, covered);
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        state.begin(Op::SyncDir, path, None)?;
        let covered = self.actor.and_then(|actor| state.judge_sync(actor, path));
        state.sync(path)?;
        self.synced(&mut state, covered);
        Ok(())
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        state.begin(Op::CreateDir, path, None)?;
        let lookup = state.tree.lookup(path, false)?;
        let (None, Some(name)) = (lookup.ino, &lookup.name) else {
            return Err(errno(libc::EEXIST));
        };
        let ino = state.new_inode(Node::Dir(DirNode::default()));
        state.link(lookup.parent, name, ino);
        if let Some(actor) = self.actor {
            // docs/task-lifecycle.md L39: what the agent makes under `meta/`.
            crate::disk_work::done(actor, path, Work::DirCreated);
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        state.begin(Op::Rename, from, Some(to))?;
        if let Some(actor) = self.actor {
            // docs/recovery-latency.md P14: every log this process appended to is synced
            // before it puts another checkpoint in place.
            if let Some(log) = state.first_unsynced_append(actor) {
                crate::disk_work::done(actor, to, Work::PlacedBeforeLogSynced { log });
            }
            // docs/recovery-latency.md P73: a file put in place of one with the same bytes.
            if let (Ok(source), Ok(target)) = (state.tree.resolve(from), state.tree.resolve(to)) {
                let files =
                    !state.tree.is_dir(source) && !state.tree.is_dir(target) && source != target;
                if files
                    && matches!(state.tree.inode(source).node, Node::File(_))
                    && matches!(state.tree.inode(target).node, Node::File(_))
                    && state.tree.file(source).data == state.tree.file(target).data
                {
                    crate::disk_work::done(actor, to, Work::IdenticalReplace);
                }
            }
            if to.ends_with("meta/boot_id") {
                crate::disk_work::done(actor, to, Work::BootIdPlaced);
            }
        }
        state.rename(from, to)
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        state.begin(Op::Symlink, link, None)?;
        let lookup = state.tree.lookup(link, false)?;
        let (None, Some(name)) = (lookup.ino, &lookup.name) else {
            return Err(errno(libc::EEXIST));
        };
        if target.as_os_str().is_empty() || lookup.dir_only {
            return Err(errno(libc::ENOENT));
        }
        let ino = state.new_inode(Node::Symlink(target.to_path_buf()));
        state.link(lookup.parent, name, ino);
        Ok(())
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        let mut state = self.state.borrow_mut();
        state.begin(Op::ReadLink, path, None)?;
        let lookup = state.tree.lookup(path, false)?;
        // With a trailing slash the link is followed, so the answer is never a link.
        let ino = if lookup.dir_only {
            state.tree.resolve(path)?
        } else {
            lookup.existing()?
        };
        match &state.tree.inode(ino).node {
            Node::Symlink(target) => Ok(target.clone()),
            _ => Err(errno(libc::EINVAL)),
        }
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut state = self.state.borrow_mut();
        state.begin(Op::ListDir, path, None)?;
        let ino = state.tree.resolve(path)?;
        match &state.tree.inode(ino).node {
            // Byte order, as the contract says: a BTreeMap of OsStrings is in byte order.
            Node::Dir(dir) => Ok(dir
                .entries
                .keys()
                .map(|name| name.to_string_lossy().into_owned())
                .collect()),
            _ => Err(errno(libc::ENOTDIR)),
        }
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        state.begin(Op::RemoveFile, path, None)?;
        let lookup = state.tree.lookup(path, false)?;
        let ino = lookup.existing()?;
        let Some(name) = &lookup.name else {
            return Err(errno(libc::EISDIR));
        };
        if state.tree.is_dir(ino) {
            return Err(errno(libc::EISDIR));
        }
        if lookup.dir_only {
            // The name is not followed: a file or a link to anything is "not a directory".
            return Err(errno(libc::ENOTDIR));
        }
        state.unlink(lookup.parent, name);
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.remove_dir_all_stepwise(path, &mut || Ok(()))
    }

    fn truncate(&self, path: &Path, length: u64) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        state.begin(Op::Truncate, path, None)?;
        let ino = state.open_for_write(path, false)?;
        let old = state.tree.file(ino).data.len();
        if let Some(actor) = self.actor {
            // docs/recovery-latency.md P68.
            if old as u64 == length {
                crate::disk_work::done(actor, path, Work::NoOpTruncate { length });
            }
        }
        let new = usize::try_from(length).map_err(|_| errno(libc::EFBIG))?;
        state.ensure_space(old, new)?;
        state.apply(ino, FileOp::Truncate(length));
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        self.state.borrow().tree.resolve(path).is_ok()
    }

    fn is_dir(&self, path: &Path) -> bool {
        let state = self.state.borrow();
        state
            .tree
            .resolve(path)
            .is_ok_and(|ino| state.tree.is_dir(ino))
    }

    fn modified(&self, path: &Path) -> io::Result<SystemTime> {
        let mut state = self.state.borrow_mut();
        state.begin(Op::Modified, path, None)?;
        let ino = state.tree.resolve(path)?;
        Ok(state.tree.inode(ino).modified)
    }

    fn touch(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        state.begin(Op::Touch, path, None)?;
        let ino = state.tree.resolve(path)?;
        let now = state.now();
        state.tree.inode_mut(ino).modified = now;
        Ok(())
    }

    fn disk_usage(&self, path: &Path) -> io::Result<f64> {
        let mut state = self.state.borrow_mut();
        state.begin(Op::DiskUsage, path, None)?;
        state.tree.resolve(path)?;
        Ok((state.used_bytes as f64 / state.capacity_bytes as f64).clamp(0.0, 1.0))
    }

    fn lock_exclusive(&self, path: &Path, holder: &str) -> Result<Box<dyn FileLock>, LockError> {
        let io_error = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut state = self.state.borrow_mut();
        state.begin(Op::Lock, path, None).map_err(io_error)?;
        let ino = state.open_for_write(path, true).map_err(io_error)?;
        if let Some(held) = state.locks.get(&ino) {
            return Err(LockError::Held {
                path: path.to_path_buf(),
                holder: held.holder.trim().to_owned(),
            });
        }
        // As the real lock does: the holder is written into the lock file, not synced.
        let old = state.tree.file(ino).data.len();
        state.ensure_space(old, holder.len()).map_err(io_error)?;
        state.apply(ino, FileOp::Truncate(0));
        state.apply(ino, FileOp::Append(holder.as_bytes().to_vec()));
        let id = state.next_lock_id;
        state.next_lock_id += 1;
        state.locks.insert(
            ino,
            HeldLock {
                id,
                holder: holder.to_owned(),
            },
        );
        Ok(Box::new(SimLock {
            state: Rc::clone(&self.state),
            ino,
            id,
        }))
    }
}

/// Whether `bytes` begin with a whole checkpoint file header of the agent's, of any kind
/// (docs/checkpoint-format.md).
fn starts_with_our_header(bytes: &[u8]) -> bool {
    use revenant::checkpoint::record::{file_header, FileKind};
    [FileKind::Info, FileKind::TaskUpdates, FileKind::Resources]
        .into_iter()
        .any(|kind| bytes.starts_with(&file_header(kind)))
}
