#!/usr/bin/env bash
# The C core under AddressSanitizer and UBSan: first the C drivers (tests/c/run.sh), then the
# whole Python test suite against an extension built with the sanitizers.  Any sanitizer report
# fails the run, even one printed by a subprocess or at interpreter exit.
#
#   usage: .ci/sanitize.sh                  both: the C drivers, then the Python suite
#          .ci/sanitize.sh c                the C drivers only
#          .ci/sanitize.sh python [ARGS]    the Python suite only; ARGS go to pytest instead of
#                                           the default: tests -q -x -p no:cacheprovider
#                                           -m "not slow" (the stress tests repeat, at size,
#                                           paths the rest reach; the plain run has them)
#   e.g.   .ci/sanitize.sh python tests/test_memory.py -q
#
# An editable install compiles the extension inside the source tree, and an ASan build there
# would break the normal one (it loads only with libasan preloaded).  So the tree, uncommitted
# changes included, is copied to build/sanitize/src and built into its own venv,
# build/sanitize/venv (kept between runs; SANITIZE_DIR moves both; SANITIZE_EXTRAS picks the
# package extras installed there, test by default: what the suite imports).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${SANITIZE_DIR:-$root/build/sanitize}"
src="$work/src"
venv="$work/venv"

part="${1:-all}"
[ $# -eq 0 ] || shift
case "$part" in
    all | c | python) ;;
    *) echo "usage: $0 [c | python [pytest args]]" >&2; exit 2 ;;
esac

if [ "$part" != python ]; then
    echo "== C drivers (tests/c/run.sh)"
    "$root/tests/c/run.sh"
fi
[ "$part" != c ] || exit 0

echo "== Python suite: copying the tree to $src"
rm -rf "$src"
mkdir -p "$src"
git -C "$root" ls-files -z --cached --others --exclude-standard |
    tar -C "$root" --null -T - --ignore-failed-read -cf - | tar -C "$src" -xf -

echo "== building the extension with ASan and UBSan into $venv (log: $work/pip.log)"
if [ ! -x "$venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
# build_ffi.py appends these to the compile and link lines; pip's isolated build inherits them
# (pip.log shows the gcc lines).  -fno-wrapv undoes the -fwrapv in Python's own CFLAGS, under
# which UBSan cannot see a signed overflow (the C driver, built without it, does).  The [test]
# extras bring what the whole suite imports (the demos' and viz's dependencies too).
cflags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cflags+=" -g -O1 -fno-wrapv"
if ! MICROGRAD_C_CFLAGS="$cflags" MICROGRAD_C_LDFLAGS="-fsanitize=address,undefined" \
     "$venv/bin/python" -m pip install -v -e "$src[${SANITIZE_EXTRAS:-test}]" >"$work/pip.log" 2>&1; then
    cat "$work/pip.log" >&2
    exit 1
fi

# A silently unsanitized build would pass everything: check that the sanitizers are in.
ext="$(ls "$src"/micrograd_c/_graph*.so)"
symbols="$(nm -D --undefined-only "$ext")"
for needed in __asan_report_store8 __ubsan_handle_; do
    if ! grep -q "$needed" <<<"$symbols"; then
        echo "sanitize.sh: $ext has no $needed: the sanitizer flags did not reach the compiler" >&2
        exit 1
    fi
done

# A Python process must load libasan first (the interpreter itself is not instrumented);
# without it, importing the extension fails: "ASan runtime does not come first in initial
# library list".  detect_leaks=0: CPython keeps memory to the end on purpose.
# Reports must not vanish into pytest's capture of a test's output (an aborted process takes
# that capture with it): --capture=sys captures Python's output only and leaves file descriptor
# 2, where UBSan writes, to the terminal; ASan writes to files (log_path), which also keeps the
# reports of the subprocesses some tests start (they inherit these variables).
# MICROGRAD_C_SANITIZED=1 tells tests that measure the process's memory (RSS) that ASan keeps
# freed memory in quarantine and adds shadow memory, so such numbers mean nothing here.
echo "== Python suite under ASan/UBSan"
[ $# -gt 0 ] || set -- tests -q -x -p no:cacheprovider -m "not slow"
rm -f "$work"/sanitizer.*
status=0
(
    cd "$src"
    MICROGRAD_C_SANITIZED=1 \
    LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \
    ASAN_OPTIONS="detect_leaks=0:log_path=$work/sanitizer" \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
        "$venv/bin/python" -m pytest --capture=sys "$@"
) 2>&1 | tee "$work/pytest.log" || status=$?
if compgen -G "$work/sanitizer.*" >/dev/null; then
    cat "$work"/sanitizer.* >&2
    echo "sanitize.sh: AddressSanitizer reported the errors above ($work/sanitizer.*)" >&2
    exit 1
fi
if grep -q "runtime error:" "$work/pytest.log"; then
    echo "sanitize.sh: UBSan reported an error (see above, or $work/pytest.log)" >&2
    exit 1
fi
exit "$status"
