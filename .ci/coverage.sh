#!/usr/bin/env bash
# Line coverage, with floors (95% by default; a figure under its floor fails the run):
#   micrograd_c/   coverage.py, over the test suite that .ci/run runs (but the stress tests) as
#                  `python -m coverage run -m pytest -m "not slow"` (its .coverage is read here);
#                  with no data file, the suite is run here first (-m "not slow": the stress
#                  tests repeat, at size, paths the rest reach)
#   csrc/graph.c   gcov (gcovr), over the C drivers (tests/c) and the fuzzer's committed corpus
#                  (tests/fuzz/replay.c), which call every entry point of graph.h; measured so,
#                  not through the Python suite, the C side needs no instrumented extension and
#                  no second run of the suite (CI's 15 minutes)
#
#   usage: .ci/coverage.sh          env: COVERAGE_FLOOR_PY, COVERAGE_FLOOR_C (percent)
# Subprocesses some tests start (the demo, the examples, interpreter exit) are not counted:
# docs/design.md says what that leaves uncovered.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
obj="$root/build/coverage"
python="${PYTHON:-python}"
floor_py="${COVERAGE_FLOOR_PY:-95}"
floor_c="${COVERAGE_FLOOR_C:-95}"
cd "$root"

if [ ! -f .coverage ]; then
    echo "== the Python suite under coverage.py (no .coverage from a test run yet)"
    "$python" -m coverage run -m pytest -q -x -p no:cacheprovider -m "not slow"
fi

echo "== the C drivers and the fuzzer's corpus, with --coverage, in $obj"
rm -rf "$obj"
mkdir -p "$obj"
flags=(-std=c11 -O0 -g --coverage -ffp-contract=off -I"$root/csrc")
gcc "${flags[@]}" -c csrc/graph.c -o "$obj/graph.o"
gcc "${flags[@]}" tests/c/test_graph.c "$obj/graph.o" -o "$obj/test_graph" -lm -lpthread
gcc "${flags[@]}" tests/c/test_oom.c -o "$obj/test_oom" -lm -lpthread  # (includes graph.c)
gcc "${flags[@]}" tests/fuzz/fuzz_graph.c tests/fuzz/replay.c "$obj/graph.o" \
    -o "$obj/replay" -lm -lpthread
"$obj/test_graph" | tail -n 1
"$obj/test_oom" | tail -n 1
find tests/fuzz/corpus -type f -print0 | xargs -0 "$obj/replay" | tail -n 1

status=0
echo "== micrograd_c/ line coverage (coverage.py; floor ${floor_py}%)"
"$python" -m coverage report --fail-under="$floor_py" || status=1
echo "== csrc/graph.c line coverage (gcov via gcovr; floor ${floor_c}%)"
"$python" -m gcovr --root "$root/csrc" --filter "$root/csrc/graph\.c" --txt-metric line \
    --fail-under-line "$floor_c" "$obj" || status=1
[ "$status" -eq 0 ] || echo "coverage.sh: coverage under its floor (see above)" >&2
exit "$status"
