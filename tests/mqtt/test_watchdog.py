"""The real agent, as systemd runs it, against a black-holed broker: the watchdog keeps its pings.

Before the link connected off its loop, every attempt at a silent broker blocked the link
thread for the whole connect timeout; ``last_progress`` went stale, the runner stopped
pinging, and systemd killed the agent.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.agentproc import AgentProcess, write_site
from tests.mqtt.netfaults import black_hole
from tests.test_runner import NotifySocket


def ping_times(notify: NotifySocket, seconds: float) -> list[float]:
    """When each WATCHDOG=1 arrived during the next ``seconds``."""
    times: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        notify.sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            msg = notify.sock.recv(4096).decode()
        except TimeoutError:
            break
        if "WATCHDOG=1" in msg.split("\n"):
            times.append(time.monotonic())
    return times


WATCHDOG_S, CONNECT_TIMEOUT_S = 3.0, 4.0


def pings_while(
    tmp_path: Path, mqtt: dict[str, Any], prefix: Sequence[str] = ()
) -> tuple[list[float], str]:
    """Ping times of the real agent, under a real notify socket and ``WATCHDOG_USEC``,
    during three connect timeouts of a link that cannot connect; and the agent's log."""
    notify = NotifySocket(tmp_path)
    site = write_site(
        tmp_path / "unit",
        1883,
        extra={
            "mqtt": {"connect_timeout_s": CONNECT_TIMEOUT_S, **mqtt},
            "health": {"watchdog_grace_s": 1},  # a link loop quiet for 1 s is hung
        },
    )
    env = {"NOTIFY_SOCKET": notify.env, "WATCHDOG_USEC": str(int(WATCHDOG_S * 1e6))}
    agent = AgentProcess(site, env, prefix=prefix)
    try:
        notify.read_until("READY=1")
        times = ping_times(notify, 3.3 * CONNECT_TIMEOUT_S)
        assert agent.proc.poll() is None, agent.output()[-2000:]
    finally:
        assert agent.stop() == 0
        notify.close()
    return times, agent.output()


def assert_steady(times: list[float], out: str) -> None:
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) >= 3 * CONNECT_TIMEOUT_S / (WATCHDOG_S / 4) - 2, times
    # The runner pings every quarter interval on its 0.25 s tick: the longest gap stays
    # under half the interval.  A link stalled in connect() made gaps of a whole connect
    # timeout, and systemd killed the agent.
    assert max(gaps) < 0.5 * WATCHDOG_S, f"longest gap between pings {max(gaps):.2f}s"
    assert "Traceback" not in out


def test_watchdog_pings_keep_their_pace_while_the_broker_is_black_holed(tmp_path: Path) -> None:
    with black_hole() as port:
        times, out = pings_while(tmp_path, {"host": "127.0.0.1", "port": port})
    assert_steady(times, out)
    assert f"127.0.0.1:{port}" in out  # the link said which broker did not answer


@contextmanager
def silent_dns(tmp_path: Path) -> Iterator[list[str]]:
    """A DNS server on 127.0.0.2:53 that reads every query and never answers, and the argv
    prefix that runs a process with it as its only resolver (a private mount namespace
    whose /etc/resolv.conf names it: the machine's own file is never touched)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a private /etc/resolv.conf needs root and unshare(1)")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"unshare -m is not allowed here: {probe.stderr.decode().strip()}")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.2", 53))
    except OSError as exc:
        sock.close()
        pytest.skip(f"cannot listen on 127.0.0.2:53 for the silent resolver: {exc}")
    queries: list[bytes] = []

    def swallow() -> None:
        with contextlib.suppress(OSError):
            while True:
                queries.append(sock.recv(4096))

    threading.Thread(target=swallow, name="silent-dns", daemon=True).start()
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.0.2\noptions timeout:30 attempts:3\n")
    script = f'mount --bind {conf} /etc/resolv.conf && exec "$@"'
    try:
        yield ["unshare", "-m", "sh", "-c", script, "sh"]
    finally:
        sock.close()
    assert queries, "the agent never asked the silent resolver"


def test_watchdog_pings_keep_their_pace_while_the_resolver_is_silent(tmp_path: Path) -> None:
    """A real resolver that never answers: glibc's getaddrinfo blocks for 90 s per name."""
    with silent_dns(tmp_path) as prefix:
        times, out = pings_while(tmp_path, {"host": "broker.pole-test.invalid"}, prefix)
    assert_steady(times, out)
    assert "resolving the name" in out or "cannot resolve" in out, out[-2000:]
