#!/usr/bin/env bash
# Set up (see setup.sh), then run every check: ruff, mypy strict, the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH:/usr/sbin"
echo "== ruff"; ruff check agent tests bench
echo "== mypy"; mypy
echo "== pytest"; pytest "$@"
