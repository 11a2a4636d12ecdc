"""A simulated press reaches the centre over a real mosquitto: bell -> spool -> link -> broker."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent import __version__
from agent.bell import BellService
from agent.bell.hw.simulator import SimulatorOutputs
from agent.config import BellConfig, DeviceConfig, MqttConfig
from agent.dev.broker import LocalBroker
from agent.events import BellEvent, EventStamper, Priority, Topics, decode_event
from agent.mqtt.link import Link, StatusInfo
from agent.outbox import Outbox
from agent.spool import Spool
from tests.centre.observer import Centre, Received

DEVICE = DeviceConfig(
    id="pole-0042",
    site="gangnam",
    pole="GN-042",
    location="역삼초 정문 앞",
    latitude=37.4979,
    longitude=127.0276,
)
TOPICS = Topics("pole", "gangnam", "pole-0042")


@pytest.fixture
def agent(tmp_path: Path, broker: LocalBroker) -> Iterator[tuple[BellService, Path]]:
    spool = Spool(tmp_path / "spool.db")
    stamper = EventStamper(DEVICE.id)
    link = Link(
        MqttConfig(host="127.0.0.1", port=broker.port),
        spool,
        TOPICS,
        StatusInfo(DEVICE, stamper.boot_id, __version__, "test"),
    )
    sock = tmp_path / "bell.sock"
    cfg = BellConfig(
        backend="simulator",
        simulator={"socket": str(sock)},
        outputs={"backend": "simulator", "duration_s": 0.5},
    )
    bell = BellService(cfg, DEVICE, Outbox(spool, TOPICS, stamper))
    link.start()
    bell.start()
    yield bell, sock
    bell.stop(5)
    link.stop(5)
    spool.close()


def bell_event(kind: str) -> Callable[[Received], bool]:
    def match(m: Received) -> bool:
        return m.topic == TOPICS.event("bell") and json.loads(m.payload).get("ev") == kind

    return match


def test_a_simulated_press_reaches_the_centre(
    agent: tuple[BellService, Path], centre: Centre, broker: LocalBroker
) -> None:
    bell, sock = agent
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.connect(str(sock))
        c.sendall(b"press 0.3\n")
        assert c.recv(100) == b"ok press 0.3\n"

    (msg,) = centre.wait_for(bell_event("activated"))
    event = decode_event(msg.payload)
    assert isinstance(event, BellEvent)
    assert event.pri == Priority.ALARM
    assert event.loc is not None
    assert (event.loc.pole, event.loc.lat, event.loc.lon) == ("GN-042", 37.4979, 127.0276)
    assert event.dev == "pole-0042"
    assert event.st is not None
    assert event.st >= event.ts  # the link stamps the send time

    (released,) = centre.wait_for(bell_event("released"))
    held = decode_event(released.payload)
    assert isinstance(held, BellEvent)
    assert held.held == pytest.approx(300, abs=20)

    (off,) = centre.wait_for(bell_event("outputs_off"))
    assert json.loads(off.payload)["why"] == "duration"
    assert isinstance(bell.outputs, SimulatorOutputs)
    assert list(bell.outputs.history) == [
        ("strobe", True),
        ("siren", True),
        ("strobe", False),
        ("siren", False),
    ]

    # every bell event arrived, in order, each a valid event of the contract
    kinds = [decode_event(m.payload) for m in centre.messages if m.topic == TOPICS.event("bell")]
    assert [k.ev for k in kinds if isinstance(k, BellEvent)] == [
        "pressed",
        "activated",
        "released",
        "outputs_off",
    ]

    # the state the centre saw went active, and a newcomer finds it idle, retained
    states = [m.json()["state"] for m in centre.messages if m.topic == TOPICS.state("bell")]
    assert "active" in states
    centre.wait_for(
        lambda m: m.topic == TOPICS.state("bell") and m.json()["state"] == "idle", count=2
    )  # the first idle is from start-up, the second after the outputs stopped
    late = Centre(broker.port, TOPICS.state("bell"))
    try:
        (retained,) = late.wait_for(lambda m: m.retain and m.json()["state"] == "idle")
        assert retained.json()["detail"]["outputs"] is False
    finally:
        late.close()
