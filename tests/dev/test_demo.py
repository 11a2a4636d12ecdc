"""The README's first command, minus the set-up: the whole agent on this machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
