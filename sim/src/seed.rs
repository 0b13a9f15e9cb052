//! Seed derivation, below every module that draws from a seed (docs/design.md D62).

/// Derives a sub-seed from a seed and a label, so each process incarnation has a stream
/// of its own that does not shift when another process draws more numbers.
pub fn derive_seed(seed: u64, label: &str) -> u64 {
    // FNV-1a over the label, mixed with the seed (splitmix64 finaliser).
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in label.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = seed ^ hash;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
