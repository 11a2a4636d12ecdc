"""Health: systemd notify (readiness, status, watchdog), system facts, the heartbeat event.

The notify protocol is a datagram to ``$NOTIFY_SOCKET`` (a path, or an abstract socket
written with a leading ``@``); a few lines of Python instead of a dependency.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from agent.events import HealthEvent

__all__ = ["Notifier", "system_facts"]


class Notifier:
    """sd_notify for Type=notify units; does nothing when not run by systemd."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        path = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = None
        if path.startswith("@"):
            self.address = b"\0" + path[1:].encode()
        elif path.startswith("/"):
            self.address = path
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        self.watchdog_s: float | None = None
        if usec and usec.isdigit() and (not pid or pid == str(os.getpid())):
            self.watchdog_s = int(usec) / 1e6
        self._sock: socket.socket | None = None
        if self.address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, *fields: str) -> bool:
        if self._sock is None or self.address is None:
            return False
        try:
            self._sock.sendto("\n".join(fields).encode(), self.address)
        except OSError:
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self, text: str = "stopping") -> bool:
        return self.notify("STOPPING=1", f"STATUS={text}")

    def reloading(self) -> bool:
        mono = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={mono}", "STATUS=reloading")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _temperature_c() -> float | None:
    # The SoC zone is usually the first; boards without thermal zones report nothing.
    for zone in sorted(Path("/sys/class/thermal").glob("thermal_zone*")):
        raw = _read(str(zone / "temp"))
        if raw and raw.lstrip("-").isdigit():
            return round(int(raw) / 1000, 1)
    return None


def _memory() -> dict[str, int]:
    info: dict[str, int] = {}
    text = _read("/proc/meminfo") or ""
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in {"MemTotal", "MemAvailable"}:
            info[key] = int(rest.split()[0]) // 1024
    status = _read("/proc/self/status") or ""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            info["rss"] = int(line.split()[1]) // 1024
    return {
        "total_mb": info.get("MemTotal", 0),
        "avail_mb": info.get("MemAvailable", 0),
        "rss_mb": info.get("rss", 0),
    }


def system_facts(spool_path: Path) -> dict[str, Any]:
    """Load, memory, open files, free disk of the spool's file system, temperature."""
    load1, load5, _ = os.getloadavg()
    try:
        disk = shutil.disk_usage(spool_path.parent)
        free_mb = disk.free // (1024 * 1024)
    except OSError:
        free_mb = -1
    try:
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        fds = -1
    facts: dict[str, Any] = {
        "load": [round(load1, 2), round(load5, 2)],
        "mem": _memory(),
        "disk_free_mb": free_mb,
        "fds": fds,
    }
    temp = _temperature_c()
    if temp is not None:
        facts["temp_c"] = temp
    return facts


FactSource = Callable[[], dict[str, Any]]


def heartbeat(
    make: Callable[..., HealthEvent],
    *,
    started: float,
    version: str,
    config_hash: str,
    cams: FactSource | None,
    detector: FactSource | None = None,
    bell: FactSource | None,
    spool: FactSource,
    link: FactSource,
    commands: FactSource | None = None,
    more_sys: dict[str, FactSource] | None = None,
    spool_path: Path,
) -> HealthEvent:
    """Build one heartbeat from the stages' facts (each source is cheap and non-blocking)."""
    return make(
        up=int(time.monotonic() - started),
        ver=version,
        cfg=config_hash,
        cams=cams() if cams else {},
        det=detector() if detector else None,
        bell=bell() if bell else {},
        spool=spool(),
        link=link(),
        cmds=commands() if commands else None,
        sys={**system_facts(spool_path), **{k: f() for k, f in (more_sys or {}).items()}},
    )
