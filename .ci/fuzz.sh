#!/usr/bin/env bash
# The coverage-guided fuzzer over graph.h (tests/fuzz/fuzz_graph.c): libFuzzer from Debian's
# clang, under AddressSanitizer and UBSan.  It starts from the committed corpus
# (tests/fuzz/corpus) and runs for a fixed time; a crash, a sanitizer report or a broken
# invariant fails the run and prints the input (base64 and hex) with the command that replays it.
#
#   usage: .ci/fuzz.sh                 fuzz for FUZZ_SECONDS (default 60) seconds
#          .ci/fuzz.sh FILE...         replay these inputs (a crash file, a corpus entry)
#
# Builds into build/fuzz/ (FUZZ_DIR moves it); new inputs the fuzzer finds go to
# build/fuzz/corpus, never into the committed corpus (to refresh that, see tests/fuzz/README.md).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${FUZZ_DIR:-$root/build/fuzz}"
seconds="${FUZZ_SECONDS:-60}"
cc="${FUZZ_CC:-clang}"

if ! command -v "$cc" >/dev/null; then
    echo "== installing clang (libFuzzer comes with it)"
    apt-get update -qq && apt-get install -y -qq clang >/dev/null
fi

mkdir -p "$work"
echo "== building $work/fuzz_graph"
"$cc" -std=c11 -Wall -Wextra -Werror -g -O1 -ffp-contract=off \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
    -I"$root/csrc" "$root/tests/fuzz/fuzz_graph.c" "$root/csrc/graph.c" \
    -o "$work/fuzz_graph" -lm -lpthread

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

if [ $# -gt 0 ]; then
    echo "== replaying $*"
    exec "$work/fuzz_graph" "$@"
fi

rm -rf "$work/corpus" "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*
mkdir -p "$work/corpus"
echo "== fuzzing for ${seconds} s from tests/fuzz/corpus ($(ls "$root/tests/fuzz/corpus" | wc -l) inputs)"
status=0
"$work/fuzz_graph" -max_total_time="$seconds" -max_len=2048 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/" \
    "$work/corpus" "$root/tests/fuzz/corpus" >"$work/fuzz.log" 2>&1 || status=$?
# The log is long (one line per new input): show its end, where the finding and stats are.
grep -E "^(INFO: (seed|-max_len)|#[0-9]+ +DONE)|stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)" \
    "$work/fuzz.log" || true
if [ "$status" -ne 0 ] || compgen -G "$work/crash-*" >/dev/null || compgen -G "$work/leak-*" >/dev/null; then
    grep -v -E "^#[0-9]+ " "$work/fuzz.log" | tail -n 60 >&2
    for found in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
        [ -e "$found" ] || continue
        echo "fuzz.sh: the input that failed, $found ($(wc -c <"$found") bytes):" >&2
        echo "  base64: $(base64 -w0 "$found")" >&2
        od -An -tx1 -v "$found" | sed 's/^/  hex:/' >&2
        echo "  replay: .ci/fuzz.sh $found   (or: base64 -d <<<'...' >input && .ci/fuzz.sh input)" >&2
    done
    echo "fuzz.sh: the fuzzer found a failure (exit $status; full log: $work/fuzz.log)" >&2
    exit 1
fi
echo "== fuzz.sh: no failure in ${seconds} s"
