"""The real agent, unchanged, on a real three-node NATS cluster (MQTT 3.1.1 listener).

The pole lists every node in ``mqtt.hosts`` with ``protocol: auto``; the centre's side (an
observer, the sender) is on another node than the pole whenever it matters, so every message
crosses the cluster.  See docs/centre.md, "Brokers", for what NATS does differently.
"""

from __future__ import annotations

from pathlib import Path

from agent.dev.nats import NatsCluster
from agent.events import StateMessage
from tests.brokers.pole import (
    alarms,
    birth,
    node_of,
    observer,
    other,
    ping,
    start_pole,
    topics,
)


def test_birth_state_events_and_commands_cross_the_cluster(
    nats: NatsCluster, tmp_path: Path
) -> None:
    dev = "nats-basic"
    pole = start_pole(tmp_path, dev, nats.hosts)
    try:
        pole.wait_for_output("falling back to MQTT 3.1.1")
        first = observer(nats.nodes[0], dev)
        status = birth(first, dev)
        home = node_of(nats, status)
        far = other(nats, home)
        centre = observer(far, dev)  # subscribes after the birth: gets the retained one
        try:
            (msg,) = centre.wait_for(lambda m: m.topic == topics(dev).status)
            assert msg.retain
            assert msg.json()["state"] == "online"
            assert msg.json()["broker"] == home.mqtt_host
            pole.press()
            got = alarms(centre, 1)
            assert [e.ev for e in got][:2] == ["pressed", "activated"]
            state = centre.wait_for(lambda m: m.topic == topics(dev).state("bell"))[0]
            StateMessage.model_validate_json(state.payload)
            late = observer(far, dev)
            try:
                state_topic = topics(dev).state("bell")
                late.wait_for(lambda m: m.topic == state_topic and m.retain)
            finally:
                late.close()
            result = ping(far, dev)
            assert (result.cmd, result.res) == ("ping", "ok")
        finally:
            centre.close()
            first.close()
    finally:
        pole.stop()
    assert "Traceback" not in pole.output()
