"""Running the real agent as a child process, as systemd would, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def write_site(
    folder: Path,
    port: int,
    *,
    cameras: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    device_id: str = "test-0001",
) -> Path:
    """A dev-sim site file with this test's broker, spool and simulator socket."""
    folder.mkdir(parents=True, exist_ok=True)
    site: dict[str, Any] = {
        "profile": "dev-sim",
        "device": {
            "id": device_id,
            "site": "test-site",
            "pole": "T-1",
            "location": "시험용 폴",
            "latitude": 37.5,
            "longitude": 127.0,
        },
        "cameras": cameras or [],
        "mqtt": {"host": "127.0.0.1", "port": port, "backoff_max_s": 2.0},
        "spool": {"path": str(folder / "spool.db")},
        "bell": {"simulator": {"socket": str(folder / "bell.sock")}},
        "health": {"heartbeat_s": 2},
        # Niceness, not the default SCHED_IDLE: the suite runs on two workers, and an
        # idle-class vision child starves behind the other worker's tests (the default is
        # tested on its own, tests/vision/test_process.py).
        "detection": {"process_priority": 10},
    }
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(site.get(key), dict):
            site[key] = {**site[key], **value}
        else:
            site[key] = value
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(site, allow_unicode=True))
    return path


class AgentProcess:
    def __init__(
        self, site: Path, env: dict[str, str] | None = None, *, prefix: Sequence[str] = ()
    ) -> None:
        """``prefix``: argv the agent runs under (``unshare``, ``runuser``...)."""
        self.site = site
        self.log = site.parent / f"agent-{int(time.time() * 1000)}.log"
        self._out = self.log.open("wb")
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "agent", "run", str(site)],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            cwd=ROOT,
        )

    @property
    def socket(self) -> str:
        data = yaml.safe_load(self.site.read_text())
        return str(data["bell"]["simulator"]["socket"])

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"agent never printed {text!r}; output:\n{self.output()[-3000:]}")

    def press(self, hold: float = 0.2) -> None:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "agent",
                "bell",
                "press",
                "--hold",
                str(hold),
                "--socket",
                self.socket,
            ],
            check=True,
            capture_output=True,
            cwd=ROOT,
        )

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            # SIGTERM before the agent installed its handlers would kill it outright (-15),
            # as if it could not stop: let it finish starting first.
            deadline = time.monotonic() + 30
            while "running as" not in self.output() and time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(
                    "agent did not stop within the timeout after SIGTERM"
                ) from None
        self._out.close()
        return self.proc.returncode

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._out.close()
