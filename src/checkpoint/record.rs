//! Record framing: the byte format of every protobuf checkpoint file.
//!
//! ```text
//! file    := header record*
//! header  := "RVNT" version:u16le kind:u16le                      (8 bytes)
//! record  := length:u32le length_check:u32le payload_crc:u32le payload
//!   length_check = crc32c(length as 4 LE bytes)
//!   payload_crc  = crc32c(payload)
//!   payload      = `length` bytes of a serialized protobuf message
//! ```
//!
//! Why two checksums: a record whose header is valid but whose payload runs past the
//! end of the file is a torn append (the writer died mid-write) and is cut off; a header
//! whose length check fails, or a payload whose checksum fails, is corruption and is an
//! error. Without `length_check`, a flipped length byte in the last record would look
//! like a torn tail and the record would be dropped silently.
//!
//! A reader stops at the first record that is torn or corrupt; everything before it is
//! returned. `docs/checkpoint-format.md` describes the same format for other readers.

use std::fmt;

/// The four magic bytes every checkpoint file starts with.
pub const MAGIC: [u8; 4] = *b"RVNT";
/// The format version this release writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes in the file header.
pub const FILE_HEADER_BYTES: usize = 8;
/// Bytes in a record header.
pub const RECORD_HEADER_BYTES: usize = 12;
/// The largest record accepted (a bound on what a corrupt length can make us allocate).
pub const RECORD_BYTES_MAX: u32 = 16 * 1024 * 1024;

/// What a checkpoint file holds; stored in its header so one kind is never read as
/// another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A single-message info file (`slave.info`, `framework.info`, ...).
    Info = 1,
    /// `task.updates`: `StatusUpdateRecord`s.
    TaskUpdates = 2,
    /// `resources.info`: `Resource`s.
    Resources = 3,
}

impl FileKind {
    fn from_u16(value: u16) -> Option<FileKind> {
        match value {
            1 => Some(FileKind::Info),
            2 => Some(FileKind::TaskUpdates),
            3 => Some(FileKind::Resources),
            _ => None,
        }
    }
}

/// The file header for `kind`.
pub fn file_header(kind: FileKind) -> [u8; FILE_HEADER_BYTES] {
    let mut header = [0u8; FILE_HEADER_BYTES];
    header[..4].copy_from_slice(&MAGIC);
    header[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[6..8].copy_from_slice(&(kind as u16).to_le_bytes());
    header
}

/// Frames one payload as a record.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_HEADER_BYTES + payload.len());
    frame_into(payload, &mut out);
    out
}

/// Appends the framed record of `payload` to `out`.
pub fn frame_into(payload: &[u8], out: &mut Vec<u8>) {
    let length = u32::try_from(payload.len()).expect("record larger than 4 GiB");
    assert!(
        length <= RECORD_BYTES_MAX,
        "record of {length} bytes exceeds the maximum"
    );
    let length_bytes = length.to_le_bytes();
    out.extend_from_slice(&length_bytes);
    out.extend_from_slice(&crc32c::crc32c(&length_bytes).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// A problem with a file's header: the file is not one this release can read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The first bytes are not the magic number.
    BadMagic,
    /// A format version this release does not know.
    UnsupportedVersion(u16),
    /// Fewer bytes than a header, and not the start of the header this release writes
    /// (which would be a crash right after creation): the bytes are not ours.
    ShortHeader {
        /// How many bytes the file holds.
        length: usize,
    },
    /// The file holds another kind of record.
    WrongKind {
        /// The kind the reader expected.
        expected: FileKind,
        /// The kind number found.
        found: u16,
    },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::BadMagic => write!(f, "not a Revenant checkpoint file (bad magic number)"),
            HeaderError::UnsupportedVersion(version) => write!(
                f,
                "unsupported checkpoint format version {version} (this release reads version {FORMAT_VERSION})"
            ),
            HeaderError::ShortHeader { length } => write!(
                f,
                "file of {length} bytes is shorter than a checkpoint header ({FILE_HEADER_BYTES} bytes) and is not the start of one this release writes"
            ),
            HeaderError::WrongKind { expected, found } => write!(
                f,
                "file holds record kind {found}, expected {expected:?} ({})",
                *expected as u16
            ),
        }
    }
}

/// How a record log ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tail {
    /// Every byte belonged to a complete record.
    Clean,
    /// The last record was cut off by a crash mid-append: `bytes` bytes from `offset`.
    Torn {
        /// Where the incomplete record starts.
        offset: u64,
        /// How many bytes of it were present.
        bytes: u64,
    },
    /// A record failed its checks at `offset`; `bytes` bytes from there are unreadable.
    Corrupt {
        /// Where the bad record starts.
        offset: u64,
        /// Bytes from there to the end of the file.
        bytes: u64,
        /// What check failed.
        reason: String,
    },
}

/// The result of scanning a record log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan<'a> {
    /// The payloads of the complete, valid records, in order, with their offsets.
    pub records: Vec<(u64, &'a [u8])>,
    /// The length of the valid prefix of the file (header plus complete records).
    pub valid_length: u64,
    /// How the file ended.
    pub tail: Tail,
}

/// Scans a record log's bytes. An empty file, or a file holding only a prefix of a header
/// (a crash right after creation), has no records and, for the partial header, a torn
/// tail. Returns `Err` only for a header that is whole but wrong.
pub fn scan(data: &[u8], kind: FileKind) -> Result<Scan<'_>, HeaderError> {
    if data.len() < FILE_HEADER_BYTES {
        let expected = file_header(kind);
        // docs/recovery-rules.md R51: the start of our own header is a torn header; R52:
        // anything else this short is a header error.
        if data == &expected[..data.len()] {
            let tail = if data.is_empty() {
                Tail::Clean
            } else {
                Tail::Torn {
                    offset: 0,
                    bytes: data.len() as u64,
                }
            };
            return Ok(Scan {
                records: Vec::new(),
                valid_length: 0,
                tail,
            });
        }
        check_header(data, kind)?;
        unreachable!("a short header that is not a prefix fails check_header");
    }
    check_header(data, kind)?;
    let mut records = Vec::new();
    let mut offset = FILE_HEADER_BYTES;
    let tail = loop {
        let rest = &data[offset..];
        if rest.is_empty() {
            break Tail::Clean;
        }
        if rest.len() < RECORD_HEADER_BYTES {
            // Could be torn, unless the bytes present already fail the length check.
            if rest.len() >= 8 && !length_check_ok(rest) {
                break corrupt(offset, rest, "record length check failed");
            }
            break Tail::Torn {
                offset: offset as u64,
                bytes: rest.len() as u64,
            };
        }
        if !length_check_ok(rest) {
            break corrupt(offset, rest, "record length check failed");
        }
        let length = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes"));
        if length > RECORD_BYTES_MAX {
            break corrupt(offset, rest, "record length exceeds the maximum");
        }
        let payload_crc = u32::from_le_bytes(rest[8..12].try_into().expect("4 bytes"));
        let end = RECORD_HEADER_BYTES + length as usize;
        if rest.len() < end {
            break Tail::Torn {
                offset: offset as u64,
                bytes: rest.len() as u64,
            };
        }
        let payload = &rest[RECORD_HEADER_BYTES..end];
        if crc32c::crc32c(payload) != payload_crc {
            break corrupt(offset, rest, "record checksum mismatch");
        }
        records.push((offset as u64, payload));
        offset += end;
    };
    let valid_length = match &tail {
        Tail::Clean => data.len() as u64,
        Tail::Torn { offset, .. } | Tail::Corrupt { offset, .. } => *offset,
    };
    Ok(Scan {
        records,
        valid_length,
        tail,
    })
}

fn corrupt(offset: usize, rest: &[u8], reason: &str) -> Tail {
    Tail::Corrupt {
        offset: offset as u64,
        bytes: rest.len() as u64,
        reason: reason.to_owned(),
    }
}

fn length_check_ok(record: &[u8]) -> bool {
    let check = u32::from_le_bytes(record[4..8].try_into().expect("4 bytes"));
    crc32c::crc32c(&record[0..4]) == check
}

/// docs/recovery-rules.md R52: a header that is not ours is an error for the whole file,
/// read without a byte past the end of `data`.
fn check_header(data: &[u8], kind: FileKind) -> Result<(), HeaderError> {
    if data.len() < 4 || data[..4] != MAGIC {
        return Err(HeaderError::BadMagic);
    }
    if data.len() < FILE_HEADER_BYTES {
        // Magic present but cut short, and (scan checked) not a prefix of our header: a
        // version or kind byte that is not ours, with too few bytes to say which.
        return Err(HeaderError::ShortHeader { length: data.len() });
    }
    let version = u16::from_le_bytes([data[4], data[5]]);
    if version != FORMAT_VERSION {
        return Err(HeaderError::UnsupportedVersion(version));
    }
    let found = u16::from_le_bytes([data[6], data[7]]);
    if FileKind::from_u16(found) != Some(kind) {
        return Err(HeaderError::WrongKind {
            expected: kind,
            found,
        });
    }
    Ok(())
}

/// The bytes of a single-message info file.
pub fn info_file(payload: &[u8]) -> Vec<u8> {
    let mut out = file_header(FileKind::Info).to_vec();
    frame_into(payload, &mut out);
    out
}

/// What an info file held.
#[derive(Debug, PartialEq, Eq)]
pub enum InfoRead<'a> {
    /// A zero-length file: the writer died before writing anything.
    Empty,
    /// The one message.
    Message(&'a [u8]),
}

/// Reads a single-message info file. Info files are replaced atomically, so anything but
/// an empty file or exactly one valid record is corruption.
pub fn read_info(data: &[u8]) -> Result<InfoRead<'_>, String> {
    if data.is_empty() {
        return Ok(InfoRead::Empty);
    }
    let scan = scan(data, FileKind::Info).map_err(|error| error.to_string())?;
    match (&scan.tail, scan.records.as_slice()) {
        (Tail::Clean, [(_, payload)]) => Ok(InfoRead::Message(payload)),
        (Tail::Clean, []) => Err("file has a header but no record".to_owned()),
        (Tail::Clean, _) => Err(format!("expected one record, found {}", scan.records.len())),
        (Tail::Torn { offset, bytes }, _) => Err(format!(
            "record at offset {offset} is incomplete ({bytes} bytes)"
        )),
        (Tail::Corrupt { offset, reason, .. }, _) => Err(format!("{reason} at offset {offset}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(payloads: &[&[u8]]) -> Vec<u8> {
        let mut data = file_header(FileKind::TaskUpdates).to_vec();
        for payload in payloads {
            frame_into(payload, &mut data);
        }
        data
    }

    #[test]
    fn round_trip() {
        let data = log(&[b"one", b"", b"three"]);
        let scan = scan(&data, FileKind::TaskUpdates).unwrap();
        let payloads: Vec<&[u8]> = scan.records.iter().map(|(_, p)| *p).collect();
        assert_eq!(payloads, vec![&b"one"[..], b"", b"three"]);
        assert_eq!(scan.tail, Tail::Clean);
        assert_eq!(scan.valid_length, data.len() as u64);
    }

    #[test]
    fn torn_tail_is_cut() {
        let data = log(&[b"one", b"two"]);
        let cut = &data[..data.len() - 1];
        let scan = scan(cut, FileKind::TaskUpdates).unwrap();
        assert_eq!(scan.records.len(), 1);
        assert!(matches!(scan.tail, Tail::Torn { .. }));
    }

    #[test]
    fn flipped_length_of_last_record_is_corruption_not_a_torn_tail() {
        let mut data = log(&[b"one", b"two"]);
        let last = data.len() - (RECORD_HEADER_BYTES + 3);
        data[last] ^= 0x40;
        let scan = scan(&data, FileKind::TaskUpdates).unwrap();
        assert!(matches!(scan.tail, Tail::Corrupt { .. }), "{:?}", scan.tail);
    }

    #[test]
    fn unknown_version_is_refused_clearly() {
        let mut data = log(&[b"x"]);
        data[4] = 9;
        let error = scan(&data, FileKind::TaskUpdates).unwrap_err();
        assert_eq!(error, HeaderError::UnsupportedVersion(9));
        assert!(error
            .to_string()
            .contains("unsupported checkpoint format version 9"));
    }

    #[test]
    fn a_short_file_that_is_not_our_header_says_so() {
        // Magic, then a version byte that is not ours, cut at 6 bytes: too short to read a
        // version, and not the start of the header we write (issue: it was reported as
        // "unsupported checkpoint format version 1 (this release reads version 1)").
        let mut data = file_header(FileKind::TaskUpdates)[..6].to_vec();
        data[5] = 7;
        let error = scan(&data, FileKind::TaskUpdates).unwrap_err();
        assert_eq!(error, HeaderError::ShortHeader { length: 6 });
        let text = error.to_string();
        assert!(
            text.contains("6 bytes") && text.contains("shorter than a checkpoint header"),
            "{text}"
        );
        // The start of our own header is a torn creation, not an error.
        let ours = &file_header(FileKind::TaskUpdates)[..6];
        assert!(matches!(
            scan(ours, FileKind::TaskUpdates).unwrap().tail,
            Tail::Torn { .. }
        ));
    }

    #[test]
    fn zeroes_where_a_power_loss_lost_the_data_are_refused_never_a_panic() {
        // docs/crash-points.md CP-7, CP-8: a file whose new length reached the disk
        // without its data reads as zeroes there. 1 to 3 bytes that are not the start
        // of our header: a clear error (not a slice out of range).
        for length in 1..4 {
            let data = vec![0u8; length];
            assert_eq!(
                scan(&data, FileKind::TaskUpdates),
                Err(HeaderError::BadMagic),
                "{length} zero bytes"
            );
        }
        // A whole header of zeroes.
        assert_eq!(
            scan(&[0u8; FILE_HEADER_BYTES], FileKind::TaskUpdates),
            Err(HeaderError::BadMagic)
        );
        // A zeroed record after good ones: at least 8 bytes of it fail the length
        // check (damage, R24); fewer cannot be told from a tear and are cut.
        let good = log(&[b"one"]);
        for zeroes in [8, RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + 5] {
            let mut data = good.clone();
            data.resize(good.len() + zeroes, 0);
            let scan = scan(&data, FileKind::TaskUpdates).unwrap();
            assert_eq!(scan.records.len(), 1);
            assert!(
                matches!(&scan.tail, Tail::Corrupt { reason, .. } if reason.contains("length check")),
                "{zeroes} zeroes: {:?}",
                scan.tail
            );
        }
        let mut data = good.clone();
        data.resize(good.len() + 7, 0);
        assert!(matches!(
            scan(&data, FileKind::TaskUpdates).unwrap().tail,
            Tail::Torn { .. }
        ));
    }

    #[test]
    fn wrong_kind_is_refused() {
        let data = log(&[b"x"]);
        assert!(matches!(
            scan(&data, FileKind::Resources),
            Err(HeaderError::WrongKind { .. })
        ));
    }

    #[test]
    fn info_files() {
        assert_eq!(read_info(b""), Ok(InfoRead::Empty));
        let data = info_file(b"hello");
        assert_eq!(read_info(&data), Ok(InfoRead::Message(&b"hello"[..])));
        assert!(read_info(&data[..data.len() - 1]).is_err());
    }
}
