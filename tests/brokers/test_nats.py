"""The real agent, unchanged, on a real three-node NATS cluster (MQTT 3.1.1 listener).

The pole lists every node in ``mqtt.hosts`` with ``protocol: auto``; the centre's side (an
observer, the sender) is on another node than the pole whenever it matters, so every message
crosses the cluster.  See docs/centre.md, "Brokers", for what NATS does differently.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.dev.nats import NatsCluster
from agent.events import StateMessage, decode_event
from tests.brokers.pole import (
    alarms,
    birth,
    node_of,
    observer,
    other,
    ping,
    settle,
    signed,
    start_pole,
    topics,
)
from tests.mqtt.netfaults import Gate


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


def test_an_outage_queues_commands_in_the_session_and_replays_every_alarm_in_order(
    nats: NatsCluster, tmp_path: Path
) -> None:
    dev = "nats-outage"
    gates = [Gate(n.mqtt_port) for n in nats.nodes]  # the pole reaches each node through one
    pole = start_pole(tmp_path, dev, [f"127.0.0.1:{g.port}" for g in gates])
    centre = observer(nats.nodes[2], dev)
    try:
        birth(centre, dev)
        pole.press()
        alarms(centre, 1)
        for gate in gates:
            gate.cut()  # the pole is cut off; the cluster and the centre are not
        pole.wait_for_output("disconnected", timeout=15)
        req, payload = signed(dev, "ping")
        centre.publish(topics(dev).cmd("ping"), payload)  # queued in the pole's session
        for _ in range(3):
            pole.press()  # spooled while offline
        cut_at = time.monotonic()
        for gate in gates:
            gate.open.set()
        birth(centre, dev, after=cut_at)
        got = alarms(centre, 4)
        assert [e.ev for e in got if e.ev == "activated"] == ["activated"] * 4
        result = centre.wait_for(
            lambda m: m.topic == topics(dev).cmd_result and req.encode() in m.payload
        )
        assert decode_event(result[0].payload).res == "ok"  # type: ignore[union-attr]
    finally:
        centre.close()
        pole.stop()
        for gate in gates:
            gate.close()


def test_the_pole_fails_over_when_its_node_dies_and_the_will_works_while_nodes_live(
    nats: NatsCluster, tmp_path: Path
) -> None:
    dev = "nats-failover"
    pole = start_pole(tmp_path, dev, nats.hosts)
    first = observer(nats.nodes[0], dev)
    try:
        home = node_of(nats, birth(first, dev))
    finally:
        first.close()
    far = other(nats, home)
    centre = observer(far, dev)
    try:
        for _ in range(2):
            pole.press()
        alarms(centre, 2)
        killed_at = time.monotonic()
        nats.kill(home)
        for _ in range(2):
            pole.press()  # while the link moves to another node
        again = birth(centre, dev, after=killed_at)
        assert again.broker != home.mqtt_host
        got = alarms(centre, 4)
        assert len({e.boot for e in got}) == 1
        pole.press()  # the bell still works on the new node
        alarms(centre, 5)
        assert ping(far, dev).res == "ok"
        pole.kill()  # SIGKILL: its node lives, so the node publishes the will
        will = centre.wait_for(lambda m: m.topic == topics(dev).status and b'"lost"' in m.payload)
        assert will[0].json()["state"] == "offline"
    finally:
        centre.close()
        if pole.proc.poll() is None:
            pole.stop()


@pytest.mark.slow
def test_no_will_when_the_session_node_dies_so_the_monitor_says_silent(
    nats: NatsCluster, tmp_path: Path
) -> None:
    dev = "nats-silent"
    gates = {n.name: Gate(n.mqtt_port) for n in nats.nodes}
    pole = start_pole(tmp_path, dev, [f"127.0.0.1:{g.port}" for g in gates.values()], heartbeat_s=1)
    watch: subprocess.Popen[str] | None = None
    try:
        first = observer(nats.nodes[0], dev)
        try:
            gate_port = int(birth(first, dev).broker.rsplit(":", 1)[1])  # type: ignore[union-attr]
        finally:
            first.close()
        home = next(n for n in nats.nodes if gates[n.name].port == gate_port)
        far = other(nats, home)
        centre = observer(far, dev)
        with (tmp_path / "monitor.out").open("w") as out:  # the child keeps its own copy
            watch = subprocess.Popen(
                [sys.executable, "-m", "agent", "monitor", "--port", str(far.mqtt_port),
                 "--protocol", "3.1.1", "--site", "test-site", "--device", dev, "--timeout", "90"],
                stdout=out, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
        lines = (tmp_path / "monitor.out").read_text
        settle(lambda: "heartbeat up" in lines(), 20, "the monitor to see heartbeats")
        for name, gate in gates.items():
            if name != home.name:
                gate.cut()  # the pole can reach no other node
        time.sleep(1.5)  # the monitor learns the 1 s period from a few heartbeats
        nats.kill(home)  # the node holding the session dies: nobody publishes the will
        settle(lambda: f"{dev} OFFLINE (silent)" in lines(), 15, "OFFLINE (silent)")
        time.sleep(2.0)  # a will, had there been one, would be here by now
        for gate in gates.values():
            gate.open.set()
        # After a node's death NATS takes 10-35 s before sessions work again (docs/centre.md).
        settle(lambda: f"{dev} ONLINE  (heartbeats again)" in lines(), 60, "ONLINE again")
        assert lines().count("OFFLINE (silent)") == 1
        assert "OFFLINE (lost)" not in lines()
        statuses = [m.json() for m in centre.messages if m.topic == topics(dev).status]
        assert [s["state"] for s in statuses] == ["online"] * len(statuses)  # never a will
        centre.close()
    finally:
        if watch is not None:
            watch.terminate()
            watch.wait(10)
        pole.stop()
        for gate in gates.values():
            gate.close()
