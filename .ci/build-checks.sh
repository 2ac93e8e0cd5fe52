#!/usr/bin/env bash
# The C core under every compiler CI can reach, warnings as errors (a user's `pip install .`
# never gets -Werror: build_ffi.py leaves it out so a newer compiler's new warning cannot break
# an install).  Run it inside the project's virtual environment, as .ci/run does.
#
#   1. the real extension build (`pip wheel` of a scratch copy of the tree: csrc/graph.c and
#      cffi's generated _graph.c with build_ffi.py's preamble, Python's own CFLAGS), with gcc and
#      with clang, plus EXT_WARNINGS.  -Wpedantic is left out here: cffi's generated code casts
#      void * to function pointers (its table of exported helpers), which ISO C does not define
#      and POSIX and Windows do; that is ~500 warnings about cffi, none about us.
#      -Werror=implicit-function-declaration is what GCC >= 14 and Clang >= 16 do by default:
#      under cffi's Py_LIMITED_API it also catches a call outside the limited API.
#   2. csrc/graph.c alone with CORE_WARNINGS (-Wpedantic included), compiled with the flags of
#      the user's build (Python's CFLAGS and build_ffi.py's COMPILE_ARGS): gcc, clang (macOS's
#      compiler family), and x86_64-w64-mingw32-gcc for Windows with the Win32 branch of
#      csrc/lock.h forced.
#   3. the C drivers (tests/c/test_graph.c, test_oom.c) cross-compiled for Windows against that
#      Win32 lock and run under wine: the core's logic and its lock on Windows, threads included.
#      mingw-w64 links msvcrt.dll rather than the UCRT that MSVC-built Pythons use, so this is
#      no check of Windows' libm (docs/design.md, "Exactness on each compiler").
#
# Installs clang, mingw-w64 and wine with apt when they are missing (CI runs as root on a fresh
# machine).  Scratch files go to build/checks (BUILD_CHECKS_DIR moves them); the in-tree
# editable build is never touched.  About a minute on a warm, busy 2-core machine.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${BUILD_CHECKS_DIR:-$root/build/checks}"
python="${PYTHON:-python}"
mingw=x86_64-w64-mingw32-gcc

CORE_WARNINGS="-Wall -Wextra -Wpedantic -Wshadow -Wconversion -Werror"
CORE_WARNINGS+=" -Werror=implicit-function-declaration"
EXT_WARNINGS="-Wall -Wextra -Wshadow -Wconversion -Werror -Werror=implicit-function-declaration"
# mingw-w64's isnan()/isinf() macros pass a double through a float branch (sizeof dispatch), so
# every use in graph.c is a -Wfloat-conversion warning about the C library's macro, not our
# code; gcc and clang on glibc keep the check.
MINGW_EXTRA="-Wno-float-conversion"

step_start=$SECONDS
step() {
    echo "== $* ($((SECONDS - step_start)) s so far)"
}

find_wine() {
    command -v wine64 || command -v wine || { [ -x /usr/lib/wine/wine64 ] && echo /usr/lib/wine/wine64; } || true
}

# ---------------------------------------------------------------- tools
missing=()
command -v gcc >/dev/null || missing+=(gcc)
command -v clang >/dev/null || missing+=(clang)
command -v "$mingw" >/dev/null || missing+=(gcc-mingw-w64-x86-64)
[ -n "$(find_wine)" ] || missing+=(wine64)
if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]} (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi
wine="$(find_wine)"

if ! "$python" -c "import cffi" 2>/dev/null; then
    echo "build-checks.sh: $python cannot import cffi; run this inside the project's venv" >&2
    exit 1
fi
# The flags a user's build compiles graph.c with, read from where they are defined.
flags_line="$(cd "$root" && "$python" -c '
import sysconfig, build_ffi
print(sysconfig.get_config_var("CFLAGS") or "", *build_ffi.COMPILE_ARGS["gcc"])')"
read -r -a user_flags <<<"$flags_line"

rm -rf "$work/src" "$work/win"
mkdir -p "$work/src" "$work/win"
git -C "$root" ls-files -z --cached --others --exclude-standard |
    tar -C "$root" --null -T - --ignore-failed-read -cf - | tar -C "$work/src" -xf -

# ---------------------------------------------------------------- 1. the extension build
for cc in gcc clang; do
    step "extension build with $cc: $EXT_WARNINGS (log: $work/ext-$cc.log)"
    rm -rf "$work/src/build" "$work/wheel-$cc"  # no object left from the other compiler
    if ! CC="$cc" MICROGRAD_C_CFLAGS="$EXT_WARNINGS" \
         "$python" -m pip wheel -v --no-deps "$work/src" -w "$work/wheel-$cc" \
         >"$work/ext-$cc.log" 2>&1; then
        grep -E "error|warning" "$work/ext-$cc.log" >&2 || cat "$work/ext-$cc.log" >&2
        echo "build-checks.sh: the extension does not build cleanly with $cc" >&2
        exit 1
    fi
    # A build that compiled nothing (or without our flags) would pass vacuously.
    for source in "csrc/graph.c" "micrograd_c._graph.c"; do
        if ! grep -E "^ *$cc .*-c [^ ]*$source .*-Werror=implicit-function-declaration" \
             "$work/ext-$cc.log" >/dev/null; then
            echo "build-checks.sh: $work/ext-$cc.log shows no $cc compile of $source with" \
                 "the check flags" >&2
            exit 1
        fi
    done
done

# ---------------------------------------------------------------- 2. graph.c alone
cd "$root"
step "csrc/graph.c with gcc and clang: ${user_flags[*]} $CORE_WARNINGS"
for cc in gcc clang; do
    # shellcheck disable=SC2086  # the warning lists are word lists
    "$cc" "${user_flags[@]}" $CORE_WARNINGS -c csrc/graph.c -o "$work/win/graph-$cc.o"
done

step "csrc/graph.c for Windows: $mingw, Win32 lock forced"
# shellcheck disable=SC2086
"$mingw" "${user_flags[@]}" $CORE_WARNINGS $MINGW_EXTRA -DMG_LOCK_WIN32 \
    -c csrc/graph.c -o "$work/win/graph.o"
# The branch must be the one asked for (mingw-w64 also has pthreads, through winpthreads).
symbols="$(x86_64-w64-mingw32-nm "$work/win/graph.o")"
if ! grep -q AcquireSRWLockExclusive <<<"$symbols" || grep -q pthread_mutex <<<"$symbols"; then
    echo "build-checks.sh: the Windows build of graph.c does not use the SRWLOCK branch" >&2
    exit 1
fi

# ---------------------------------------------------------------- 3. the C drivers under wine
step "tests/c drivers for Windows, run under wine ($wine)"
# The drivers' own flags (tests/c/run.sh) less the sanitizers mingw-w64 lacks; -static so no
# mingw DLL (winpthreads, libgcc) has to be found by wine.
driver_flags=(-std=c11 -Wall -Wextra -Werror -O1 -ffp-contract=off -DMG_LOCK_WIN32 -Icsrc)
"$mingw" "${driver_flags[@]}" tests/c/test_graph.c csrc/graph.c -o "$work/win/test_graph.exe" \
    -static -lpthread
"$mingw" "${driver_flags[@]}" tests/c/test_oom.c -o "$work/win/test_oom.exe" -static
export WINEPREFIX="$work/wine-prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
if [ ! -d "$WINEPREFIX" ]; then  # the first run makes the prefix (~15 s), chattily
    "$wine" wineboot --init >"$work/wineboot.log" 2>&1 || true
fi
status=0
for driver in test_graph test_oom; do
    echo "-- $driver.exe"
    timeout 300 "$wine" "$work/win/$driver.exe" </dev/null || status=$?
    [ "$status" -eq 0 ] || break
done
# wine leaves its server (and service processes) running a while per prefix: end ours, never
# another's, and wait until it is gone.
wineserver="$(dirname "$(readlink -f "$wine")")/wineserver"
[ -x "$wineserver" ] || wineserver="$(command -v wineserver || true)"
if [ -n "$wineserver" ]; then
    "$wineserver" -k 2>/dev/null || true
    "$wineserver" -w 2>/dev/null || true
fi
if [ "$status" -ne 0 ]; then
    echo "build-checks.sh: a C driver failed under wine (exit $status)" >&2
    exit "$status"
fi

step "build checks passed"
