#!/usr/bin/env bash
# Coverage-guided fuzzing of srgraph's readers (fuzz/): cargo-fuzz with libFuzzer, on the
# stable toolchain.
#
#   tools/util/fuzz.sh [SECONDS] [TARGET...]
#
# Targets: onnx_model (what eval, upscale and inspect do with a model file, through tract),
# ort_checkpoint (ONNX Runtime's ODTC checkpoint), run_checkpoint (a training run's
# checkpoint.onnx), picture (PNG/JPEG/BMP pictures); default: all of them.
#
# Installs cargo-fuzz if it is missing, builds the targets (fuzz/target), replays the saved
# reproducers of fuzz/regressions/TARGET/, then fuzzes each TARGET for SECONDS (default 30),
# starting from the committed seeds (fuzz/seeds/TARGET/) and the working corpus
# (fuzz/corpus/TARGET/, git-ignored, grows from run to run). An input may take at most
# FUZZ_TIMEOUT seconds (default 10), the process at most FUZZ_RSS_MB MiB (default 2048).
# Exits non-zero on any crash (every panic aborts, even one srgraph catches: see
# fuzz/src/lib.rs), timeout or out-of-memory, printing the reproducer's path, the panic and
# where it happened; prints each target's executions at the end.
#
# FUZZ_KEEP_GOING=1 fuzzes on past findings (libFuzzer's -fork=1 with -ignore_crashes,
# -ignore_timeouts, -ignore_ooms) to collect several distinct ones in one run; the exit status
# is still non-zero when any was found.
#
# Stable toolchain: with `--sanitizer none` cargo-fuzz passes only stable compiler flags
# (-Cpasses=sancov-module, -Cllvm-args=-sanitizer-coverage-*, -Cdebug-assertions), so neither a
# nightly toolchain nor RUSTC_BOOTSTRAP is needed. (AddressSanitizer would need -Zsanitizer, a
# nightly flag; srgraph and its readers are safe Rust, where the findings are panics, arithmetic
# overflow (debug assertions are on), hangs and memory blow-ups.)
#
# Replaying one reproducer:  fuzz/target/<host triple>/release/TARGET FILE
# (or `cargo fuzz run --sanitizer none TARGET FILE`); RUST_BACKTRACE=1 is set here.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

CARGO_FUZZ_VERSION=0.13.2
all=(onnx_model ort_checkpoint run_checkpoint picture weights)
secs="${1:-30}"
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
timeout_s="${FUZZ_TIMEOUT:-10}"
rss_mb="${FUZZ_RSS_MB:-2048}"
keep_going="${FUZZ_KEEP_GOING:-0}"
case "$secs" in '' | *[!0-9]* | 0) echo "fuzz.sh: SECONDS must be a positive whole number, not '$secs'" >&2; exit 2 ;; esac
for t in "${targets[@]}"; do
    [ -d "fuzz/seeds/$t" ] || { echo "fuzz.sh: no target '$t' (known: ${all[*]})" >&2; exit 2; }
done

if [ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install --locked "cargo-fuzz@$CARGO_FUZZ_VERSION"
fi

echo "== building the fuzz targets (fuzz/target)"
start=$(date +%s)
# One cargo build for all targets: srgraph and tract, instrumented, are most of the time.
cargo fuzz build --sanitizer none
echo "== built in $(($(date +%s) - start)) s"
bin_dir="fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release"

export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
logs="fuzz/target/logs"
mkdir -p "$logs"
failed=()
summary=()

# The panic of a log: its message, the innermost frames in srgraph and the crates it reads
# with (not std, anyhow, collections), and srgraph's own innermost frame.
explain() {
    grep -m 1 -A 1 "panicked at" "$1" | sed 's/^/   /;s#[^ ]*/registry/src/[^/]*/##' || true
    grep -E "^ +at " "$1" | grep -E "\./src/|/(tract-|image-|png-|zune-|flatbuffers-|prost-)" |
        awk '!seen[$0]++' | head -n 3 | sed 's#^ *at #     at #;s#[^ ]*/registry/src/[^/]*/##' || true
    grep -E -m 1 "^ +at \./src/" "$1" | sed 's#^ *at #     at #;s#$# (srgraph)#' || true
}

for t in "${targets[@]}"; do
    bin="$bin_dir/$t"
    # The saved reproducers of past findings must all pass now.
    mapfile -t regressions < <(find "fuzz/regressions/$t" -type f 2>/dev/null | sort)
    again=0
    if [ ${#regressions[@]} -gt 0 ]; then
        echo "== $t: replaying ${#regressions[@]} regression input(s) of fuzz/regressions/$t/"
        for f in "${regressions[@]}"; do
            replay="$logs/$t.replay.$(basename "$f").log"
            if "$bin" -timeout="$timeout_s" -rss_limit_mb="$rss_mb" "$f" >"$replay" 2>&1; then
                rm -f "$replay"
            else
                echo "!! $t: the regression input $f fails again (log: $replay)"
                explain "$replay"
                failed+=("$t: regression $f")
                again=$((again + 1))
            fi
        done
    fi

    echo "== $t: fuzzing for $secs s (timeout ${timeout_s} s per input, ${rss_mb} MiB)"
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    log="$logs/$t.log"
    stamp="$logs/$t.stamp"
    : >"$stamp"
    extra=()
    [ "$keep_going" = 1 ] && extra=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    begin=$(date +%s)
    rc=0
    # The first corpus folder takes the new inputs; the seeds are only read.
    "$bin" "fuzz/corpus/$t" "fuzz/seeds/$t" \
        -max_total_time="$secs" -timeout="$timeout_s" -rss_limit_mb="$rss_mb" \
        -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 "${extra[@]}" >"$log" 2>&1 || rc=$?
    took=$(($(date +%s) - begin))
    # Executions: "Done N runs in S second(s)", or the last status line ("#N ..." / fork mode "#N: ...").
    runs="$(sed -n 's/^Done \([0-9]*\) runs in .*/\1/p' "$log" | tail -n 1)"
    [ -n "$runs" ] || runs="$(sed -n 's/^#\([0-9]*\)[: \t].*/\1/p' "$log" | tail -n 1)"
    runs="${runs:-0}"
    rate=$((runs / (took > 0 ? took : 1)))
    mapfile -t found < <(find "fuzz/artifacts/$t" -type f -newer "$stamp" \
        \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | sort)
    if [ "$rc" -ne 0 ] || [ ${#found[@]} -gt 0 ]; then
        kind="$(grep -m 1 -o 'ERROR: libFuzzer: .*' "$log" | sed 's/ERROR: libFuzzer: //' || true)"
        echo "!! $t: ${kind:-exit status $rc}; log: $log"
        [ "$keep_going" = 1 ] || explain "$log"
        for f in "${found[@]}"; do
            echo "   reproducer: $f"
            # Several findings in one log: say where each crash is (timeouts and OOMs would take long).
            if [ "$keep_going" = 1 ] && [[ "${f##*/}" == crash-* ]]; then
                "$bin" -timeout="$timeout_s" -rss_limit_mb="$rss_mb" "$f" >"$logs/$t.finding.log" 2>&1 || true
                explain "$logs/$t.finding.log" | sed 's/^/  /'
            fi
        done
        [ ${#found[@]} -gt 0 ] || echo "   (no reproducer written)"
        failed+=("$t: ${#found[@]} finding(s): ${found[*]:-exit status $rc}")
        status="FAILED (${#found[@]} finding(s))"
    else
        status="ok"
    fi
    [ "$again" -eq 0 ] || status="$status; $again regression input(s) fail again"
    summary+=("$(printf '%-16s %12s runs in %5s s  %8s exec/s  %s' "$t" "$runs" "$took" "$rate" "$status")")
done

echo
echo "== executions per target"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo
    echo "== FAILED"
    printf '  %s\n' "${failed[@]}"
    exit 1
fi
