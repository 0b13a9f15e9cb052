//! Fuzz target `wire_codec`: see `revenant_sim::fuzzing::wire_codec` and docs/security.md SEC6.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    revenant_sim::fuzzing::wire_codec(data);
});
