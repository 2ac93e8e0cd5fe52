#!/usr/bin/env bash
# Builds the C drivers with AddressSanitizer and UBSan and runs them:
#   test_graph.c  the arena through graph.h alone (linked with csrc/graph.c)
#   test_oom.c    allocation failures, by fault injection (includes csrc/graph.c itself)
# Any sanitizer report aborts (-fno-sanitize-recover=all) and LeakSanitizer checks each exit;
# a driver exits non-zero on any failed check.
#   usage: tests/c/run.sh   (CC=... picks another compiler that takes the same flags)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

flags=(-std=c11 -Wall -Wextra -Werror -g -O1
       -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
       -I"$root/csrc")
"${CC:-gcc}" "${flags[@]}" "$root/tests/c/test_graph.c" "$root/csrc/graph.c" \
    -o "$out/test_graph" -lm -lpthread
"${CC:-gcc}" "${flags[@]}" "$root/tests/c/test_oom.c" -o "$out/test_oom" -lm -lpthread

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
echo "== test_graph"
"$out/test_graph"
echo "== test_oom"
"$out/test_oom"
