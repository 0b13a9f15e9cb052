//! Fuzz target `inspect_recovery`: see `revenant_sim::fuzzing::inspect_recovery` and docs/security.md SEC6.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    revenant_sim::fuzzing::inspect_recovery(data);
});
