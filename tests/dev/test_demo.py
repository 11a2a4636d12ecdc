"""The README's first command, minus the set-up: the whole agent on this machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_demo_shows_objects_a_rule_and_a_bell(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "demo", "--duration", "30", "--press-after", "6"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert "ONLINE" in out
    assert "BELL ACTIVATED button at pole DEV-1" in out
    assert "object start cam1#" in out
    assert "RULE intrusion walkway-intrusion" in out
    assert "snapshot for " in out
    assert "OFFLINE (stopped)" in out
    assert "0 invalid" in out
    assert "Traceback" not in out + proc.stderr


def _processes_under(folder: Path) -> list[str]:
    """Command lines of live processes started for this demo folder (agent, child, broker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(folder) in cmd:
            found.append(cmd)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "sighup"])
def test_every_stop_signal_stops_the_demo_cleanly(tmp_path: Path, how: str) -> None:
    """Ctrl-C at a terminal, systemd's SIGTERM, a closed terminal: the same clean stop."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "agent", "demo", "--press-after", "600"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    assert demo.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = demo.stdout.readline()
        lines.append(line)
        if "heartbeat up" in line or not line:
            break
    assert any("centre | " in x and "ONLINE" in x for x in lines), "".join(lines)[-3000:]
    assert any(x.startswith("agent  | ") for x in lines), "".join(lines)[-3000:]
    if how == "ctrl-c":
        os.killpg(demo.pid, signal.SIGINT)  # the terminal signals the whole foreground group
    else:
        demo.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGHUP)
    rest, _ = demo.communicate(timeout=60)
    out = "".join(lines) + rest
    assert demo.returncode == 0, out[-3000:]
    assert "OFFLINE (stopped)" in out, out[-3000:]  # the agent went first, the broker last
    assert "OFFLINE (lost)" not in out
    assert "Traceback" not in out
    assert "spool empty" in out or "waiting (" in out
    assert (tmp_path / "var/demo/agent.log").read_text().strip()
    assert _processes_under(tmp_path) == []
