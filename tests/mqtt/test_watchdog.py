"""The real agent, as systemd runs it, against a black-holed broker: the watchdog keeps its pings.

Before the link connected off its loop, every attempt at a silent broker blocked the link
thread for the whole connect timeout; ``last_progress`` went stale, the runner stopped
pinging, and systemd killed the agent.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

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


def test_watchdog_pings_keep_their_pace_while_the_broker_is_black_holed(tmp_path: Path) -> None:
    watchdog_s, connect_timeout = 3.0, 4.0
    notify = NotifySocket(tmp_path)
    with black_hole() as port:
        site = write_site(
            tmp_path / "unit",
            port,
            extra={
                "mqtt": {"connect_timeout_s": connect_timeout},
                "health": {"watchdog_grace_s": 1},  # a link loop quiet for 1 s is hung
            },
        )
        env = {"NOTIFY_SOCKET": notify.env, "WATCHDOG_USEC": str(int(watchdog_s * 1e6))}
        agent = AgentProcess(site, env)
        try:
            notify.read_until("READY=1")
            times = ping_times(notify, 3.3 * connect_timeout)
            assert agent.proc.poll() is None, agent.output()[-2000:]
        finally:
            assert agent.stop() == 0
            notify.close()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) >= 3 * connect_timeout / (watchdog_s / 2) - 1, times
    # The runner pings every half interval by design, so a healthy gap is about half of it
    # plus one 0.25 s tick; a link stalled in connect() made gaps of a whole connect timeout.
    assert max(gaps) < 0.75 * watchdog_s, f"longest gap between pings {max(gaps):.2f}s"
    out = agent.output()
    assert "Traceback" not in out
    assert f"127.0.0.1:{port}" in out  # the link said which broker did not answer
