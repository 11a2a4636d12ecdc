"""Rotating the command key on a running pole, as a centre does across a thousand poles.

The real agent, a real broker: the key file keeps its name and gets new contents (what a
provisioning tool or ``systemd-creds`` does), the old key moves to ``previous_key_file``
for the overlap, and SIGHUP (or a ``reload`` command) makes the agent notice.  A reload
that saw only the file names would answer "unchanged" and keep the old key.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.control.auth import make_request
from agent.events import CommandResultEvent
from tests.control.unit import DEVICE_KEY, TOPICS, Unit

NEW_KEY = bytes(range(200, 232))
THIRD_KEY = bytes(range(50, 82))


@pytest.fixture
def unit(tmp_path: Path) -> Iterator[Unit]:
    u = Unit(tmp_path)
    try:
        yield u
    finally:
        u.close()


def ping(unit: Unit, key: bytes) -> CommandResultEvent:
    req, payload = make_request(key, TOPICS.cmd("ping"), None)
    unit.publish("ping", payload)
    return unit.result(req)


def reload_by_sighup(unit: Unit, expect: str) -> None:
    """SIGHUP, then wait for the agent's log to say ``expect`` about this reload."""
    before = unit.output().count(expect)
    unit.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while unit.output().count(expect) <= before:
        assert time.monotonic() < deadline, unit.output()[-3000:]
        assert unit.proc.poll() is None, unit.output()[-3000:]
        time.sleep(0.1)


def test_a_rotated_key_is_noticed_and_the_previous_one_works_for_the_overlap(unit: Unit) -> None:
    assert ping(unit, DEVICE_KEY).res == "ok"
    assert ping(unit, NEW_KEY).res == "rejected"

    # Same file name, new contents; the old key kept as the previous one for the overlap.
    (unit.folder / "previous.key").write_text(DEVICE_KEY.hex() + "\n")
    (unit.folder / "device.key").write_text(NEW_KEY.hex() + "\n")
    commands = {**unit.config["commands"], "previous_key_file": str(unit.folder / "previous.key")}
    unit.write_site({**unit.config, "commands": commands})
    reload_by_sighup(unit, "rebuilding: commands")
    assert ping(unit, NEW_KEY).res == "ok"
    assert ping(unit, DEVICE_KEY).res == "ok"  # a centre that has not switched yet

    # A second rotation of the contents only: the site file is the same, byte for byte, so
    # only the key file's digest tells the reload that something changed.
    (unit.folder / "device.key").write_text(THIRD_KEY.hex() + "\n")
    reload_by_sighup(unit, "rebuilding: commands")
    assert ping(unit, THIRD_KEY).res == "ok"
    assert ping(unit, NEW_KEY).res == "rejected"  # neither current nor previous now

    # The overlap is over: the previous key goes.
    unit.write_site(unit.config)  # no previous_key_file
    reload_by_sighup(unit, "rebuilding: commands")
    assert ping(unit, DEVICE_KEY).res == "rejected"
    assert ping(unit, THIRD_KEY).res == "ok"

    # Nothing changed at all: the agent says so and keeps its stages.
    reload_by_sighup(unit, "unchanged")
    assert ping(unit, THIRD_KEY).res == "ok"
    assert unit.proc.poll() is None
