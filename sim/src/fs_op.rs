//! The kinds of filesystem operation (`crate::fs`, which re-exports them), below the
//! fault log the simulated filesystem writes to (docs/design.md D62).

/// The kinds of filesystem operation, for fault injection and counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// [`FileSystem::read`].
    Read,
    /// [`FileSystem::write`].
    Write,
    /// [`FileSystem::append`].
    Append,
    /// [`FileSystem::sync_file`].
    SyncFile,
    /// [`FileSystem::sync_dir`].
    SyncDir,
    /// [`FileSystem::create_dir`].
    CreateDir,
    /// [`FileSystem::rename`].
    Rename,
    /// [`FileSystem::symlink`].
    Symlink,
    /// [`FileSystem::read_link`].
    ReadLink,
    /// [`FileSystem::list_dir`].
    ListDir,
    /// [`FileSystem::remove_file`].
    RemoveFile,
    /// [`FileSystem::remove_dir_all`].
    RemoveDirAll,
    /// [`FileSystem::truncate`].
    Truncate,
    /// [`FileSystem::modified`].
    Modified,
    /// [`FileSystem::touch`].
    Touch,
    /// [`FileSystem::disk_usage`].
    DiskUsage,
    /// [`FileSystem::lock_exclusive`].
    Lock,
}

impl Op {
    /// Every kind, in declaration order.
    pub const ALL: [Op; 17] = [
        Op::Read,
        Op::Write,
        Op::Append,
        Op::SyncFile,
        Op::SyncDir,
        Op::CreateDir,
        Op::Rename,
        Op::Symlink,
        Op::ReadLink,
        Op::ListDir,
        Op::RemoveFile,
        Op::RemoveDirAll,
        Op::Truncate,
        Op::Modified,
        Op::Touch,
        Op::DiskUsage,
        Op::Lock,
    ];

    pub(crate) const fn bit(self) -> u32 {
        1 << (self as u32)
    }
}
