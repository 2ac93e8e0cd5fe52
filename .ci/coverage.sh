#!/usr/bin/env bash
# Line coverage, with floors: micrograd_c/ by coverage.py and csrc/graph.c by gcov (gcovr), over
# one run of the Python suite, the C drivers and the fuzzer's committed corpus.  A figure under
# its floor fails the run.
#
#   usage: .ci/coverage.sh [PYTEST ARGS]   default: tests -q -x -p no:cacheprovider -m "not slow"
#   env:   COVERAGE_FLOOR_PY, COVERAGE_FLOOR_C (percent, default 95); PYTHON (default python,
#          with the [dev] extras installed: .ci/run activates .venv first)
#
# The extension must be compiled with --coverage, and that build must not replace the tree's
# own: as in .ci/sanitize.sh the tree, uncommitted changes included, is copied to
# build/coverage/src (COVERAGE_DIR moves it) and the extension is compiled there by hand from the
# C source cffi emits (build_ffi.py's flags; the objects, and so the gcov data, in
# build/coverage/obj).  Running pytest inside that copy imports the copy's micrograd_c.
# Subprocesses some tests start (the demo, the examples, interpreter exit) are not counted:
# docs/design.md says what that leaves uncovered.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${COVERAGE_DIR:-$root/build/coverage}"
src="$work/src"
obj="$work/obj"
python="${PYTHON:-python}"
floor_py="${COVERAGE_FLOOR_PY:-95}"
floor_c="${COVERAGE_FLOOR_C:-95}"

echo "== copying the tree to $src"
rm -rf "$src" "$obj"
mkdir -p "$src" "$obj/ext" "$obj/c"
git -C "$root" ls-files -z --cached --others --exclude-standard |
    tar -C "$root" --null -T - --ignore-failed-read -cf - | tar -C "$src" -xf -

echo "== building the extension with --coverage (log: $work/build.log)"
cflags=(-O0 -g --coverage -fPIC)
# The last line this prints: the module suffix, Python's include directory, build_ffi's flags.
read -r suffix include std_flags < <(cd "$src" && "$python" - "$obj/ext/_graph.c" <<'EOF' | tail -n 1
import sys, sysconfig
import build_ffi
build_ffi.ffibuilder.emit_c_code(sys.argv[1])
print(sysconfig.get_config_var("EXT_SUFFIX"), sysconfig.get_paths()["include"],
      " ".join(build_ffi.extra_compile_args(build_ffi.FAMILY)))
EOF
)
[ -n "${std_flags:-}" ] || { echo "coverage.sh: could not read build_ffi.py's flags (see above)" >&2; exit 1; }
{
    # shellcheck disable=SC2086  # std_flags is a list of flags
    gcc $std_flags "${cflags[@]}" -I"$include" -I"$src/csrc" -c "$obj/ext/_graph.c" -o "$obj/ext/_graph.o"
    # shellcheck disable=SC2086
    gcc $std_flags "${cflags[@]}" -I"$src/csrc" -c "$src/csrc/graph.c" -o "$obj/ext/graph.o"
    gcc -shared --coverage "$obj/ext/_graph.o" "$obj/ext/graph.o" -lm -o "$src/micrograd_c/_graph$suffix"
} >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }

echo "== the C drivers with --coverage"
for driver in test_graph test_oom; do
    gcc -std=c11 "${cflags[@]}" -I"$src/csrc" -c "$src/tests/c/$driver.c" -o "$obj/c/$driver.o"
done
gcc -std=c11 "${cflags[@]}" -I"$src/csrc" -c "$src/csrc/graph.c" -o "$obj/c/graph.o"
gcc --coverage "$obj/c/test_graph.o" "$obj/c/graph.o" -o "$obj/c/test_graph" -lm -lpthread
gcc --coverage "$obj/c/test_oom.o" -o "$obj/c/test_oom" -lm -lpthread # includes graph.c
"$obj/c/test_graph" | tail -n 1
"$obj/c/test_oom" | tail -n 1

echo "== the fuzzer's committed corpus, replayed with --coverage (tests/fuzz/replay.c)"
gcc -std=c11 -ffp-contract=off "${cflags[@]}" -I"$src/csrc" "$src/tests/fuzz/fuzz_graph.c" \
    "$src/tests/fuzz/replay.c" "$obj/c/graph.o" -o "$obj/c/replay" -lm -lpthread
find "$src/tests/fuzz/corpus" -type f -print0 | xargs -0 "$obj/c/replay" | tail -n 1

echo "== the Python suite under coverage.py"
# The stress tests (marked slow) repeat paths the rest reach: without them the figures are the
# same and the traced run takes half the time.
[ $# -gt 0 ] || set -- tests -q -x -p no:cacheprovider -m "not slow"
(
    cd "$src"
    "$python" -c 'import micrograd_c, sys; sys.exit(not micrograd_c.__file__.startswith(sys.argv[1]))' \
        "$src/" || { echo "coverage.sh: pytest would not import the copy in $src" >&2; exit 1; }
    "$python" -m coverage run --data-file="$work/.coverage" --source=micrograd_c -m pytest "$@"
)

status=0
echo "== micrograd_c/ line coverage (coverage.py; floor ${floor_py}%)"
(cd "$src" && "$python" -m coverage report --data-file="$work/.coverage" --show-missing \
    --fail-under="$floor_py") || status=1
echo "== csrc/graph.c line coverage (gcov via gcovr; floor ${floor_c}%)"
"$python" -m gcovr --root "$src" --filter "$src/csrc/graph\.c" --txt-metric line \
    --fail-under-line "$floor_c" "$obj" || status=1
[ "$status" -eq 0 ] || echo "coverage.sh: coverage under its floor (see above)" >&2
exit "$status"
