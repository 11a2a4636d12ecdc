#!/usr/bin/env bash
# Set up (see setup.sh), then run every check: ruff, mypy strict, the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH:/usr/sbin"
echo "== ruff"; ruff check agent tests bench
echo "== mypy"; mypy
# Two workers, a test file per worker at a time (a module's shared child or broker stays in
# one process, its tests in file order); POLE_TEST_WORKERS=0 runs everything in this process.
echo "== pytest"; pytest -n "${POLE_TEST_WORKERS:-2}" --dist loadfile "$@"
