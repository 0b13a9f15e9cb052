#!/usr/bin/env bash
# Runs one fuzz target for a while on the stable toolchain (docs/security.md SEC6).
#
#   fuzz/run.sh wire_codec 300        # five minutes; targets: wire_codec, record_reader,
#                                     # inspect_recovery; extra arguments go to libFuzzer
#
# libFuzzer comes from the `libfuzzer-sys` crate (built from source; needs a C++ compiler).
# The coverage instrumentation is the sanitizer-coverage pass that cargo-fuzz also uses,
# set here through stable `-C` flags, so no nightly toolchain is needed (no AddressSanitizer:
# Rust's own checks, debug assertions and overflow checks are on). New inputs that reach
# new coverage are written into fuzz/corpus/<target>/; minimise before committing with
#   fuzz/run.sh TARGET 0 -merge=1 fuzz/corpus/TARGET.min fuzz/corpus/TARGET
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
target="${1:?usage: fuzz/run.sh TARGET [SECONDS] [libFuzzer args...]}"
seconds="${2:-60}"
shift $(( $# >= 2 ? 2 : 1 ))
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/target}"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
# With an explicit --target, RUSTFLAGS reach only the target's crates, not build scripts
# and proc macros (which would not link without libFuzzer).
triple="$(rustc -vV | sed -n 's/^host: //p')"
cargo build --release --manifest-path "$here/Cargo.toml" --target "$triple" --bin "$target"
mkdir -p "$here/corpus/$target"
args=("-max_len=65536")
if [ "$seconds" != 0 ]; then
  args+=("-max_total_time=$seconds")
fi
if [ $# -eq 0 ]; then
  set -- "$here/corpus/$target"
fi
exec "$CARGO_TARGET_DIR/$triple/release/$target" "${args[@]}" "$@"
