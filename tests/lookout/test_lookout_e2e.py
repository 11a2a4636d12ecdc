"""A lookout end to end: three real agents, a real mosquitto, the centre's real tools.

Footage: the only video available here is the sample (vtest.avi); the three poles play it
at different analysed frame rates (2, 3 and 4 fps), so they see different frames, tracks
and records.  The run: a signed site-wide lookout from ``pole-agent lookout send``,
retrospective then live candidates arriving at the watch's core class, the active lookout in
the heartbeat, ``pole-agent lookout cancel`` stopping them, a short lookout expiring, the
same signed message replayed and an unsigned one refused, and each pole's audit log.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from agent import assets
from agent.centre.lookout.watch import CandidateBoard, LookoutWatch
from agent.centre.monitor import connect_client
from agent.centre.sender import BrokerAccess, SendResult, send_command
from agent.control.auth import make_request
from agent.dev.broker import LocalBroker
from agent.events import LookoutEvent, Topics
from agent.lookout.audit import read_audit
from tests.agentproc import ROOT, AgentProcess, write_site
from tests.centre.observer import Centre
from tests.lookout.test_in_the_agent import _rows

SITE_KEY = secrets.token_bytes(32)
FPS = {"p1": 2, "p2": 3, "p3": 4}
THREAD_POLE = "p2"
STREET_POLE = "p3"  # plays the black-and-white 1906 street film; the others the sample video
SAMPLE_POLES = {"p1", "p2"}


def wait(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def source(dev: str) -> str:
    return str(assets.verify("street")) if dev == STREET_POLE else "sample"


@pytest.fixture
def poles(tmp_path: Path, broker: LocalBroker) -> Iterator[dict[str, Path]]:
    (tmp_path / "site.key").write_text(SITE_KEY.hex())
    sites, agents = {}, []
    for dev, fps in FPS.items():
        folder = tmp_path / dev
        folder.mkdir()
        (folder / "device.key").write_text(secrets.token_hex(32))
        sites[dev] = write_site(
            folder, broker.port, device_id=dev,
            cameras=[{"id": "cam1", "source": source(dev), "loop": True, "fps": fps}],
            extra={
                "lookout": {"refresh_s": 5},
                "commands": {
                    "key_file": str(folder / "device.key"),
                    "site_key_file": str(tmp_path / "site.key"),
                },
                # one pole runs vision in a thread: the lookout works the same there
                "detection": {"isolation": "thread" if dev == THREAD_POLE else "process"},
            },
        )  # fmt: skip
    agents = [AgentProcess(site) for site in sites.values()]
    try:
        yield sites
    finally:
        for agent in agents:
            agent.stop()


def expired(log: Path, lookout_id: str) -> bool:
    return any(e["kind"] == "expired" and e["id"] == lookout_id for e in read_audit(log))


def cli(*args: str, port: int, key: Path | None) -> subprocess.CompletedProcess[str]:
    keys = ["--key-file", str(key)] if key else ["--unsigned"]
    return subprocess.run(
        [sys.executable, "-m", "agent", "lookout", *args, "--site", "test-site", "--port",
         str(port), *keys],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip


def broadcast(port: int, payload: bytes, req: str, command: str = "lookout") -> SendResult:
    topic = Topics("pole", "test-site", "_site").cmd(command)
    return send_command(
        connect_client("127.0.0.1", port), BrokerAccess(port=port), topic=topic,
        payload=payload, result_filter="pole/test-site/+/cmd-result", req=req, timeout=5,
        many=True,
    )  # fmt: skip


@pytest.mark.slow
def test_a_lookout_across_three_poles(
    tmp_path: Path, broker: LocalBroker, centre: Centre, poles: dict[str, Path]
) -> None:
    key = tmp_path / "site.key"
    for dev, site in poles.items():
        index = site.parent / "lookout.db"
        wait(partial(lambda p: len(_rows(p)) >= 2, index), 90, f"{dev}'s records")
    board = CandidateBoard("lk-e2e", tmp_path / "thumbs")
    watch = LookoutWatch(connect_client("127.0.0.1", broker.port), "pole", "test-site", board)
    watch.start("127.0.0.1", broker.port)
    try:
        time.sleep(0.5)  # subscribed
        sent_at = time.monotonic()
        got = cli("send", "--id", "lk-e2e", "--upper", "black", "--since", "1h", "--for", "2m",
                  "--max-candidates", "40", "--yes", port=broker.port, key=key)  # fmt: skip
        assert got.returncode == 0, got.stdout + got.stderr
        assert got.stdout.count(" ok ") == 3, got.stdout  # every pole took it on
        wait(lambda: watch.pump(0.2) or board.best, 30, "a retrospective candidate")
        watch.pump(0.5)
        retro = [c.received for c in board.best.values() if not c.event.live]
        live = [c.received for c in board.best.values() if c.event.live]
        assert retro
        assert min(retro) < min(live, default=float("inf"))  # looking back comes first
        first = min(retro) - sent_at
        print(f"\nfirst retrospective candidate {first:.2f} s after `lookout send` started")
        wait(
            lambda: watch.pump(0.2) or any(c.event.live for c in board.best.values()),
            60, "a live candidate",
        )  # fmt: skip
        watch.pump(1.0)
        assert all(c.event.m["upper"].m >= 0.5 for c in board.best.values())
        assert any(c.thumb is not None and c.thumb.read_bytes()[:2] == b"\xff\xd8"
                   for c in board.best.values())  # fmt: skip
        beat = centre.wait_for(
            lambda m: m.topic.endswith("/heartbeat")
            and any(lk["id"] == "lk-e2e" for lk in (m.json().get("det") or {}).get("lookouts", [])),
            timeout=10,
        )  # fmt: skip
        assert beat

        got = cli("cancel", "lk-e2e", port=broker.port, key=key)
        assert got.stdout.count(" ok ") == 3, got.stdout + got.stderr
        watch.pump(2.0)  # what was sent before the cancel
        before = len(board.seen_ids)
        watch.pump(8.0)
        assert len(board.seen_ids) == before, "candidates after the cancel"
        # the thread pole too, and the street pole in black and white
        assert {c.dev for c in board.best.values()} == set(FPS)
        street = [c.event for c in board.best.values() if c.dev == STREET_POLE]
        assert all(n in ("black", "grey", "white") for e in street for n, _ in e.seen["upper"])
        # find similar from a track of the sample video that ended long ago (its record no
        # longer changes): the oldest candidate found looking back, else the oldest
        similar_to = min(
            (c.event for c in board.best.values() if c.dev in SAMPLE_POLES),
            key=lambda e: (e.live, e.t1),
        )
    finally:
        watch.stop()
    find_similar(tmp_path, broker, key, similar_to)
    vehicles(tmp_path, broker, key)

    args = {"id": "lk-exp", "upper": ["black"], "since_s": 0, "for_s": 3}
    topic = Topics("pole", "test-site", "_site").cmd("lookout")
    req, payload = make_request(SITE_KEY, topic, args)
    assert {e.res for e in broadcast(broker.port, payload, req).results.values()} == {"ok"}
    replay = broadcast(broker.port, payload, req).results.values()
    assert [e.why and e.why.split(":")[0] for e in replay] == ["replayed"] * 3
    req, payload = make_request(None, topic, args | {"id": "lk-unsigned"})
    unsigned = broadcast(broker.port, payload, req).results.values()
    assert [e.why and e.why.split(":")[0] for e in unsigned] == ["unsigned"] * 3

    for dev, site in poles.items():
        log = site.parent / "lookout-audit.jsonl"
        wait(partial(expired, log, "lk-exp"), 15, f"{dev}: lk-exp expired")
        entries = read_audit(log)
        taken = [e for e in entries if e["kind"] == "lookout" and e["id"] == "lk-e2e"]
        assert taken[0]["signer"] == "site"
        assert taken[0]["site"] is True
        assert taken[0]["slots"] == {"upper": ["black"]}
        sent = {e["event"] for e in entries if e["kind"] == "candidate" and e["id"] == "lk-e2e"}
        received = {c.event.id for c in board.best.values() if c.dev == dev}
        assert received <= sent
        assert any(e["kind"] == "cancel" and e["id"] == "lk-e2e" for e in entries)
        assert not any(e.get("id") == "lk-unsigned" for e in entries)
    shown = subprocess.run(
        [sys.executable, "-m", "agent", "lookout", "audit", "--site-file", str(poles["p1"]),
         "--json"], capture_output=True, text=True, cwd=ROOT, check=True,
    ).stdout  # fmt: skip
    assert {json.loads(line)["kind"] for line in shown.splitlines()} >= {"lookout", "cancel"}


def _watch_one(
    tmp_path: Path, broker: LocalBroker, key: Path, look: str, *send: str, want: set[str]
) -> CandidateBoard:
    """Send one lookout with ``lookout send`` (every pole takes it on) and collect its
    candidates until the poles ``want`` have each sent one."""
    board = CandidateBoard(look, tmp_path / look)
    watch = LookoutWatch(connect_client("127.0.0.1", broker.port), "pole", "test-site", board)
    watch.start("127.0.0.1", broker.port)
    try:
        time.sleep(0.5)  # subscribed
        got = cli("send", "--id", look, *send, "--since", "1h", "--for", "1m", "--yes",
                  port=broker.port, key=key)  # fmt: skip
        assert got.returncode == 0, got.stdout + got.stderr
        assert got.stdout.count(" ok ") == 3, got.stdout
        wait(lambda: watch.pump(0.2) or {c.dev for c in board.best.values()} >= want,
             30, f"{look}: candidates from {sorted(want)}")  # fmt: skip
        watch.pump(1.0)
        assert cli("cancel", look, port=broker.port, key=key).stdout.count(" ok ") == 3
    finally:
        watch.stop()
    return board


def find_similar(tmp_path: Path, broker: LocalBroker, key: Path, like: LookoutEvent) -> None:
    """Find similar from a candidate, over the broker: every pole ranks its tracks by
    the candidate's histogram; the candidate's own track comes back with similarity 1."""
    board = _watch_one(tmp_path, broker, key, "lk-sim", "--similar", like.hist,
                       "--min-score", "0.6", "--max-candidates", "20", want={like.dev})  # fmt: skip
    cands = list(board.best.values())
    assert all(set(c.event.m) == {"histogram"} for c in cands)
    assert all(c.event.m["histogram"].how == "similar" for c in cands)
    own = [c for c in cands if (c.event.dev, c.event.cam, c.event.tid)
           == (like.dev, like.cam, like.tid)]  # fmt: skip
    assert own, "the candidate's own track is not among the similar ones"
    assert own[0].event.sc >= 0.95


def vehicles(tmp_path: Path, broker: LocalBroker, key: Path) -> None:
    """A vehicle lookout: the poles on the sample video find its parked white van."""
    board = _watch_one(tmp_path, broker, key, "lk-van", "--vehicle-colour", "white",
                       "--vehicle-type", "truck", "--min-score", "0.8",
                       want=SAMPLE_POLES)  # fmt: skip
    for c in board.best.values():
        if c.dev == STREET_POLE:
            continue  # a pale carriage of 1906 may pass for a white truck
        assert c.event.seen["type"] in ("truck", "car")
        assert c.event.seen["colour"][0][0] == "white"
        assert set(c.event.m) == {"vehicle_colour", "vehicle_type"}
