//! The walk over a meta directory: listing, reading and decoding files and record logs,
//! recording what was read, and the warnings and errors met on the way (strict or not).

use super::*;

/// The valid records of a log: each payload with the offset its record starts at.
pub(super) type Records<'a> = Vec<(u64, &'a [u8])>;

/// The result of reading one file.
pub(super) enum Read<T> {
    Found(T),
    /// Missing, empty, or counted as an error: a warning was recorded.
    Absent,
}

pub(super) struct Walk<'a> {
    pub(super) fs: &'a dyn FileSystem,
    pub(super) paths: &'a MetaPaths,
    pub(super) options: &'a RecoverOptions,
    pub(super) warnings: Vec<Warning>,
    pub(super) read: ReadSet,
    /// The directory [`Walk::saw_dir`] recorded last.
    pub(super) last_dir: PathBuf,
}

impl Walk<'_> {
    /// Records that a file or link in `path`'s directory was read.
    pub(super) fn saw(&mut self, path: &Path) {
        if let Some(parent) = path.parent() {
            self.saw_dir(parent);
        }
    }

    /// Records that `dir` was read. The walk reads a directory's files one after
    /// another, so the directory recorded last is compared first, byte for byte
    /// (cheap), before the set's lookup, whose path comparisons are component by
    /// component (docs/recovery-latency.md P48).
    fn saw_dir(&mut self, dir: &Path) {
        if self.last_dir.as_os_str() == dir.as_os_str() {
            return;
        }
        // One search (an insert of a known path keeps it), not a lookup and an insert.
        self.read.dirs.insert(dir.to_path_buf());
        self.last_dir.clear();
        self.last_dir.push(dir);
    }

    pub(super) fn warn(&mut self, path: PathBuf, kind: WarningKind, message: String) {
        self.warnings.push(Warning {
            path,
            kind,
            message,
        });
    }

    /// A corrupt or unreadable file: strict stops, non-strict counts it.
    pub(super) fn error(
        &mut self,
        path: &Path,
        message: String,
        errors: &mut u32,
    ) -> Result<(), RecoveryError> {
        if self.options.strict {
            crate::coverage::point!("recover_strict_stopped");
            return Err(RecoveryError {
                path: path.to_path_buf(),
                message,
            });
        }
        crate::coverage::point!("recover_corrupt_file_counted");
        // docs/recovery-rules.md R43: every error is counted (`/metrics`).
        if !broken!(super::counts_no_errors()) {
            *errors += 1;
        }
        self.warn(path.to_path_buf(), WarningKind::Error, message);
        Ok(())
    }

    /// Recovery cannot tell what exists below `path` (a listing or a `latest` link it
    /// cannot read or follow): it stops, with or without `--strict`
    /// (docs/recovery-rules.md R40). Going on would take every child for absent: the
    /// agent would destroy their live executors as orphans, report their tasks lost, or
    /// register as a new agent.
    pub(super) fn stop(&self, path: &Path, message: String) -> RecoveryError {
        RecoveryError {
            path: path.to_path_buf(),
            message,
        }
    }

    /// The test-only breakage of R40: without `--strict`, a listing or link that
    /// cannot be read is warned of and taken for absent (`true`: go on).
    pub(super) fn skips_unreadable(&mut self, path: &Path, message: &str) -> bool {
        if self.options.strict || !broken!(super::skips_unreadable_listings()) {
            return false;
        }
        self.warn(path.to_path_buf(), WarningKind::Error, message.to_owned());
        true
    }

    /// Lists a directory; a missing one is empty, an unreadable one stops recovery
    /// (R40).
    pub(super) fn list(&mut self, dir: &Path) -> Result<Vec<String>, RecoveryError> {
        match self.fs.list_dir(dir) {
            Ok(names) => {
                self.saw_dir(dir);
                Ok(names)
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(error) => {
                let message = format!("failed to list directory: {error}");
                if self.skips_unreadable(dir, &message) {
                    return Ok(Vec::new());
                }
                Err(self.stop(dir, message))
            }
        }
    }

    /// Reads a file; a missing one is a warning.
    pub(super) fn read_file(
        &mut self,
        path: &Path,
        what: &str,
        errors: &mut u32,
    ) -> Result<Read<Vec<u8>>, RecoveryError> {
        match self.fs.read(path) {
            Ok(bytes) => {
                self.saw(path);
                Ok(Read::Found(bytes))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                self.warn(
                    path.to_path_buf(),
                    WarningKind::Missing,
                    format!("{what} not found"),
                );
                Ok(Read::Absent)
            }
            Err(error) => {
                self.error(path, format!("failed to read {what}: {error}"), errors)?;
                Ok(Read::Absent)
            }
        }
    }

    /// Reads a single-message info file.
    pub(super) fn read_info<M: Message + Default>(
        &mut self,
        path: &Path,
        what: &str,
        errors: &mut u32,
    ) -> Result<Option<M>, RecoveryError> {
        let Read::Found(bytes) = self.read_file(path, what, errors)? else {
            return Ok(None);
        };
        match record::read_info(&bytes) {
            Ok(InfoRead::Empty) => {
                self.warn(
                    path.to_path_buf(),
                    WarningKind::Empty,
                    format!("{what} is empty"),
                );
                Ok(None)
            }
            Ok(InfoRead::Message(payload)) => match M::decode(payload) {
                Ok(message) => Ok(Some(message)),
                Err(error) => {
                    self.error(path, format!("failed to decode {what}: {error}"), errors)?;
                    Ok(None)
                }
            },
            Err(message) => {
                self.error(path, format!("corrupt {what}: {message}"), errors)?;
                Ok(None)
            }
        }
    }

    /// Reads a text file (pid files); an empty one is treated as absent, but for
    /// `framework.pid` (docs/recovery-rules.md R53).
    pub(super) fn read_text(
        &mut self,
        path: &Path,
        what: &str,
        errors: &mut u32,
    ) -> Result<Option<String>, RecoveryError> {
        let Read::Found(bytes) = self.read_file(path, what, errors)? else {
            return Ok(None);
        };
        match String::from_utf8(bytes) {
            Ok(text) if text.trim().is_empty() && what != "framework pid" => {
                self.warn(
                    path.to_path_buf(),
                    WarningKind::Empty,
                    format!("{what} is empty"),
                );
                Ok(None)
            }
            Ok(text) => Ok(Some(text.trim().to_owned())),
            Err(_) => {
                self.error(path, format!("{what} is not UTF-8 text"), errors)?;
                Ok(None)
            }
        }
    }

    /// Reads a `latest` link; `None` (with a warning) when missing. One that cannot be
    /// read, or names nothing, stops recovery (R40).
    pub(super) fn read_latest(&mut self, link: &Path) -> Result<Option<String>, RecoveryError> {
        match self.fs.read_link(link) {
            Ok(target) => match target.file_name() {
                Some(name) => {
                    self.saw(link);
                    Ok(Some(name.to_string_lossy().into_owned()))
                }
                None => Err(self.stop(
                    link,
                    format!("link target '{}' has no name", target.display()),
                )),
            },
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                self.warn(
                    link.to_path_buf(),
                    WarningKind::Missing,
                    "latest link not found".to_owned(),
                );
                Ok(None)
            }
            Err(error) => {
                let message = format!("failed to read link: {error}");
                if self.skips_unreadable(link, &message) {
                    return Ok(None);
                }
                Err(self.stop(link, message))
            }
        }
    }

    /// Reads a record log, cutting off (and, with `truncate`, truncating) a bad tail.
    pub(super) fn read_log<'b>(
        &mut self,
        path: &Path,
        data: &'b [u8],
        kind: FileKind,
        errors: &mut u32,
    ) -> Result<(Records<'b>, u64), RecoveryError> {
        let scan = match record::scan(data, kind) {
            Ok(scan) => scan,
            Err(error) => {
                self.error(path, error.to_string(), errors)?;
                return Ok((Vec::new(), 0));
            }
        };
        let cut = data.len() as u64 - scan.valid_length;
        match &scan.tail {
            Tail::Clean => {}
            Tail::Torn { offset, bytes } => self.warn(
                path.to_path_buf(),
                WarningKind::TornTail {
                    offset: *offset,
                    bytes: *bytes,
                },
                if self.options.truncate {
                    format!("torn final record: {bytes} bytes at offset {offset} cut off")
                } else {
                    format!("torn final record: {bytes} bytes at offset {offset} (would be cut off by the agent)")
                },
            ),
            Tail::Corrupt {
                offset,
                bytes,
                reason,
            } => self.error(
                path,
                if self.options.strict || !self.options.truncate {
                    format!("{reason} at offset {offset} ({bytes} bytes from there unreadable)")
                } else {
                    format!("{reason} at offset {offset} ({bytes} bytes from there cut off)")
                },
                errors,
            )?,
        }
        if cut > 0 && self.options.truncate {
            crate::coverage::point!("recover_torn_tail_cut");
            self.truncate_log(path, scan.valid_length, kind)?;
        }
        Ok((scan.records, cut))
    }

    /// A record that is framed correctly but cannot be used (non-strict only: in strict
    /// mode `error` has already stopped recovery). Like a corrupt record, it and
    /// everything after it are cut off when truncating; otherwise every later append
    /// would sit behind it, unseen by every later recovery. Returns the bytes cut.
    pub(super) fn cut_invalid_record(
        &mut self,
        path: &Path,
        offset: u64,
        file_length: usize,
        kind: FileKind,
    ) -> Result<u64, RecoveryError> {
        // docs/recovery-rules.md R37 (the test-only breakage leaves the record in place).
        if self.options.truncate && !broken!(super::keeps_undecodable_records()) {
            crate::coverage::point!("recover_invalid_record_cut");
            self.truncate_log(path, offset, kind)?;
        }
        Ok(file_length as u64 - offset)
    }

    pub(super) fn truncate_log(
        &mut self,
        path: &Path,
        valid_length: u64,
        kind: FileKind,
    ) -> Result<(), RecoveryError> {
        let failed = |error: io::Error| RecoveryError {
            path: path.to_path_buf(),
            message: format!("failed to truncate to {valid_length} bytes: {error}"),
        };
        if valid_length < record::FILE_HEADER_BYTES as u64 {
            // Not even the header survived: start the log afresh, with a whole header
            // for later appends to follow (docs/recovery-rules.md R51).
            self.fs
                .write(path, &record::file_header(kind))
                .map_err(failed)?;
        } else {
            self.fs.truncate(path, valid_length).map_err(failed)?;
        }
        self.fs.sync_file(path).map_err(failed)?;
        // Synced: `make_durable` need not sync it again.
        if self.read.logs.last().is_some_and(|last| last == path) {
            self.read.logs.pop();
        }
        Ok(())
    }
}
