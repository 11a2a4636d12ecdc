"""A private Mosquitto for the demo and the tests: own config, own port, stop and restart.

Not used on a pole (the centre runs the real broker).  Mosquitto 2 started as root drops
to the ``mosquitto`` user and then cannot write the private folder, so the config says
``user`` explicitly.
"""

from __future__ import annotations

import getpass
import os
import random
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BrokerTls", "LocalBroker", "free_port", "mosquitto_binary", "sbin_binary"]


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A free port outside the kernel's ephemeral range, so it stays free while a server is down.

    A port from ``bind(0)`` lies in the ephemeral range: once its server is stopped, any
    outgoing connection on the machine may take it as its source port (a client retrying
    that very port can even connect to itself), and the restart fails with "address already
    in use" (seen in CI: mosquitto restarted after a minute's outage).  Ports below that
    range are handed out only to explicit binds.
    """
    low, high = _ephemeral_range()
    span = (10000, low) if low > 11000 else (high + 1, 65535)
    for _ in range(200):
        port = random.randrange(*span)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {span[0]}..{span[1] - 1}")


def sbin_binary(name: str) -> str:
    """``name`` on PATH or in /usr/sbin (Debian's brokers live there, often not on PATH)."""
    found = shutil.which(name) or (
        f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None
    )
    if not found:
        raise FileNotFoundError(f"{name} is not installed; scripts/setup.sh installs it")
    return found


def mosquitto_binary() -> str:
    return sbin_binary("mosquitto")


@dataclass(frozen=True)
class BrokerTls:
    ca: Path
    cert: Path
    key: Path
    require_certificate: bool = True


class LocalBroker:
    """One mosquitto process on 127.0.0.1:port with a config written into ``workdir``."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        passwords: dict[str, str] | None = None,
        acl: str | None = None,
        tls: BrokerTls | None = None,
        persistence: bool = True,
        extra: list[str] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.passwords = passwords
        self.acl = acl
        self.tls = tls
        self.persistence = persistence
        self.extra = list(extra or [])  # more mosquitto.conf lines, e.g. "max_packet_size 1000"
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = self.workdir / "mosquitto.conf"
        self.log = self.workdir / "mosquitto.log"

    def _write_config(self) -> None:
        lines = [
            f"user {getpass.getuser()}",
            f"listener {self.port} 127.0.0.1",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "max_queued_messages 100000",
        ]
        if self.persistence:
            lines += ["persistence true", f"persistence_location {self.workdir}/"]
        if self.passwords is not None:
            pwfile = self.workdir / "passwords"
            pwfile.write_text("".join(f"{u}:{p}\n" for u, p in self.passwords.items()))
            pwfile.chmod(0o600)
            subprocess.run(["mosquitto_passwd", "-U", str(pwfile)], check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl is not None:
            aclfile = self.workdir / "acl"
            aclfile.write_text(self.acl)
            lines.append(f"acl_file {aclfile}")
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca}",
                f"certfile {self.tls.cert}",
                f"keyfile {self.tls.key}",
                f"require_certificate {'true' if self.tls.require_certificate else 'false'}",
            ]
            if self.tls.require_certificate and self.passwords is None:
                lines.append("use_identity_as_username true")
        lines += self.extra
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> LocalBroker:
        if self.proc is not None and self.proc.poll() is None:
            return self
        self._write_config()
        self.proc = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a terminal's Ctrl-C must not kill the broker first
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                log = self.log.read_text() if self.log.exists() else ""
                raise RuntimeError(f"mosquitto exited at start: {err}{log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on port {self.port} within {timeout}s")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def kill(self) -> None:
        """Die like a crashed broker (no clean session save)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        return {**os.environ, "POLE_AGENT_TEST_BROKER_PORT": str(self.port)}
