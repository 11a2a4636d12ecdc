"""The shipped Mosquitto ACL (docs/mosquitto/acl.example) walls devices in, and the agent
works behind it: commands in, results out, nothing into another device's tree."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.centre.observer import Centre
from tests.control.unit import ROOT, SECRET, TOPICS, Unit

CENTRE = ("centre", "centre-pw")
OTHER = ("dev-2", "other-pw")


def example_acl() -> str:
    """The example file with this test's site and device names."""
    text = (ROOT / "docs/mosquitto/acl.example").read_text()
    return text.replace("gangnam", "lab").replace("gn-0042", "dev-1").replace("gn-0043", "dev-2")


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Unit]:
    passwords = {CENTRE[0]: CENTRE[1], "dev-1": SECRET, OTHER[0]: OTHER[1]}
    u = Unit(
        tmp_path_factory.mktemp("acl"),
        broker={"passwords": passwords, "acl": example_acl()},
        centre=CENTRE,
    )
    yield u
    u.close()


def test_the_agent_works_behind_the_acl(unit: Unit) -> None:
    assert unit.send("ping").res == "ok"
    assert unit.send("ping", site=True).res == "ok"


def test_a_device_cannot_write_into_another_devices_tree(unit: Unit) -> None:
    rogue = Centre(unit.broker.port, "pole/lab/dev-2/cmd/+", username=OTHER[0], password=OTHER[1])
    try:
        for topic in (
            "pole/lab/dev-1/event/bell",
            "pole/lab/dev-1/cmd/ping",
            "pole/lab/_site/cmd/ping",
        ):
            rogue.client.publish(topic, b"forged", qos=1)
        rogue.client.publish("pole/lab/dev-2/event/bell", b"own-tree", qos=1)
        # Messages of one publisher arrive in order: once its own one is in, the forged
        # ones would have been too.
        unit.centre.wait_for(lambda m: m.payload == b"own-tree")
        assert not [m for m in unit.centre.messages if m.payload == b"forged"]
    finally:
        rogue.close()


def test_a_device_reads_only_its_own_commands(unit: Unit) -> None:
    spy = Centre(unit.broker.port, "pole/#", username=OTHER[0], password=OTHER[1])
    try:
        unit.centre.publish(TOPICS.cmd("ping"), b"for-dev-1")
        unit.centre.publish("pole/lab/dev-1/event/bell", b"not-even-the-centre-may")
        unit.centre.publish("pole/lab/_site/cmd/ping", b"for-the-site")
        unit.centre.publish("pole/lab/dev-2/cmd/ping", b"for-dev-2")
        spy.wait_for(lambda m: m.payload == b"for-dev-2")
        time.sleep(0.2)
        got = {m.payload for m in spy.messages if m.topic.startswith("pole/lab/")}
        assert got == {b"for-the-site", b"for-dev-2"}
        # The centre's account writes commands only, never events in a device's name.
        assert not [m for m in unit.centre.messages if m.payload == b"not-even-the-centre-may"]
    finally:
        spy.close()
