"""Every topic of the contract passes NATS' MQTT listener; '.' and space do not (single node)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.dev.nats import NatsCluster
from agent.events import EventStamper, Topics
from tests.brokers.conftest import nats_missing
from tests.centre.observer import Centre


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    missing = nats_missing()
    if missing:
        pytest.skip(missing)
    with NatsCluster(tmp_path_factory.mktemp("nats1"), nodes=1) as c:
        yield c


def accepted(port: int, topic: str) -> bool:
    """True when a QoS 1 publish on ``topic`` is acknowledged; NATS closes the connection if not."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)  # random id
    closed = threading.Event()
    client.on_disconnect = lambda *_: closed.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        info = client.publish(topic, b"{}", qos=1)
        deadline = time.monotonic() + 3
        while not info.is_published() and not closed.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)
        return info.is_published()
    finally:
        client.loop_stop()
        client.disconnect()


def test_contract_topics_pass_and_dot_or_space_do_not(single: NatsCluster, tmp_path: Path) -> None:
    port = single.nodes[0].mqtt_port
    t = Topics("pole", "gangnam-3", "dev-0001")
    event_id = EventStamper("dev-0001").bell(ev="pressed").id
    site_cmd = "pole/gangnam-3/_site/cmd/ping"
    good = [t.status, t.event("bell"), t.state("bell"), t.snapshot(event_id), t.cmd("ping")]
    centre = Centre(port, "pole/#", v5=False)
    try:
        for topic in [*good, t.cmd_result, t.heartbeat, site_cmd]:
            assert accepted(port, topic), topic
        centre.wait_for(lambda m: m.topic == site_cmd)
    finally:
        centre.close()
    assert not accepted(port, "pole/gangnam.3/dev-0001/status")
    assert not accepted(port, "pole/gangnam 3/dev-0001/status")
