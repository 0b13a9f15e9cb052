//! Fuzz target `record_reader`: see `revenant_sim::fuzzing::record_reader` and docs/security.md SEC6.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    revenant_sim::fuzzing::record_reader(data);
});
