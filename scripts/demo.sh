#!/usr/bin/env bash
# Set up (see setup.sh), then run the whole agent on this machine: a private mosquitto,
# the agent on the development profile (sample video looping, bell simulator), and the
# centre's monitor showing the events live. Ctrl-C stops everything cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH:/usr/sbin"
exec pole-agent demo "$@"
