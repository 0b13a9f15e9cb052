//! Corruption aimed at a record's length field (docs/simulator-reach.md rule 14b): a
//! `corrupt` fault with `op = "length_field"` flips bit 23 of the length field of the
//! first complete record of a `task.updates` log, so the damaged length runs past the
//! end of the file. The record's length check (a checksum of the length) tells such
//! damage apart from a torn tail; strict recovery must stop on it
//! (docs/recovery-rules.md R24).

use std::path::PathBuf;

use rand::rngs::StdRng;
use rand::Rng;
use revenant::checkpoint::record::{FILE_HEADER_BYTES, RECORD_HEADER_BYTES};
use revenant::os::FileSystem;

use crate::fs::SimFs;

/// What a `corrupt` fault's `op` may name.
pub const PARTS: &[&str] = &["length_field"];

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
