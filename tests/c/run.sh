#!/usr/bin/env bash
# Builds tests/c/test_graph.c against csrc/graph.c with AddressSanitizer and UBSan, and runs it.
# Any sanitizer report aborts the run (-fno-sanitize-recover=all), and LeakSanitizer checks the
# exit; the driver itself exits non-zero on any failed check.
#   usage: tests/c/run.sh   (CC=... picks another compiler that takes the same flags)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

"${CC:-gcc}" -std=c11 -Wall -Wextra -Werror -g -O1 \
    -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
    -I"$root/csrc" "$root/tests/c/test_graph.c" "$root/csrc/graph.c" \
    -o "$out/test_graph" -lm -lpthread

ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}" \
UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}" \
    "$out/test_graph"
