"""`pole-agent bell press` as a subprocess against a running bell service."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.bell import BellService
from agent.config import BellConfig, DeviceConfig
from agent.events import BellEvent, EventStamper, Topics, decode_event
from agent.outbox import Outbox
from agent.spool import Spool

DEVICE = DeviceConfig(id="pole-7", site="jeju", pole="JJ-7", latitude=33.5, longitude=126.5)
TOPICS = Topics("pole", "jeju", "pole-7")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "bell", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[Path, Spool]]:
    sock = tmp_path / "bell.sock"
    spool = Spool(tmp_path / "spool.db")
    cfg = BellConfig(backend="simulator", simulator={"socket": str(sock)}, debounce_ms=0)
    svc = BellService(cfg, DEVICE, Outbox(spool, TOPICS, EventStamper(DEVICE.id)))
    svc.start()
    yield sock, spool
    svc.stop(5)
    spool.close()


def wait_released(spool: Spool) -> BellEvent:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for row in spool.next_batch(100):
            ev = decode_event(row.payload) if "/event/" in row.topic else None
            if isinstance(ev, BellEvent) and ev.ev == "released":
                return ev
        time.sleep(0.02)
    raise AssertionError("no released event")


def test_press_with_hold_over_the_socket(agent: tuple[Path, Spool]) -> None:
    sock, spool = agent
    done = cli("press", "--hold", "300ms", "--socket", str(sock))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"sent 'press 0.3' to {sock}: ok press 0.3"
    assert wait_released(spool).held == 300


def test_press_with_the_socket_from_a_site_file(agent: tuple[Path, Spool], tmp_path: Path) -> None:
    sock, spool = agent
    site = tmp_path / "site.yaml"
    site.write_text(
        "device: {id: pole-7, site: jeju, pole: JJ-7, latitude: 33.5, longitude: 126.5}\n"
        f"bell: {{backend: simulator, simulator: {{socket: {sock}}}}}\n"
    )
    done = cli("press", "--config", str(site))
    assert done.returncode == 0, done.stderr
    assert "ok press 0.2" in done.stdout
    assert wait_released(spool).held == 200


def test_send_a_raw_command_and_a_refused_one(agent: tuple[Path, Spool]) -> None:
    sock, _ = agent
    assert cli("send", "tamper", "on", "--socket", str(sock)).returncode == 0
    bad = cli("send", "jump", "--socket", str(sock))
    assert bad.returncode == 2
    assert "the agent refused 'jump': error unknown command 'jump'" in bad.stderr


def test_no_agent_listening_is_a_clear_error(tmp_path: Path) -> None:
    done = cli("press", "--socket", str(tmp_path / "none.sock"))
    assert done.returncode == 2
    assert done.stderr.startswith(f"pole-agent: no agent listens on {tmp_path / 'none.sock'}")
    assert "Traceback" not in done.stderr


def test_a_bad_hold_is_a_clear_error(tmp_path: Path) -> None:
    done = cli("press", "--hold", "forever", "--socket", str(tmp_path / "x.sock"))
    assert done.returncode == 2
    assert "--hold: 'forever' is not a duration" in done.stderr
