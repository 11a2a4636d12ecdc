#!/usr/bin/env bash
# Set up (see setup.sh), then run the whole agent on this machine: a private mosquitto,
# the agent on the development profile (sample video looping, bell simulator), the
# centre's monitor showing the events live, and the centre's side (a private PostgreSQL,
# the ingest, the operators' console: it prints the address and a login made for the run).
# Ctrl-C stops everything cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH:/usr/sbin"
exec pole-agent demo "$@"
