#!/usr/bin/env bash
# Lint, format and types: ruff check and ruff format --check over the Python code, then
# mypy --strict on the package (settings in pyproject.toml).  Any finding fails the run.
#   usage: .ci/lint.sh   (with the [dev] extras installed: .ci/run activates .venv first)
#   fix:   ruff check --fix . && ruff format .
set -euo pipefail
cd "$(dirname "$0")/.."
paths=(micrograd_c tests bench examples build_ffi.py setup.py)
status=0
echo "== ruff check"
ruff check "${paths[@]}" || status=1
echo "== ruff format --check"
ruff format --check "${paths[@]}" || status=1
echo "== mypy --strict micrograd_c"
mypy || status=1
[ "$status" -eq 0 ] || echo "lint.sh: findings above (ruff check --fix . && ruff format . fixes most)" >&2
exit "$status"
