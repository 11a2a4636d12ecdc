"""The real agent on a NATS cluster: its site file, its key, and what the centre sees of it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from agent.centre.monitor import connect_client
from agent.centre.sender import BrokerAccess, send_command
from agent.control.auth import make_request
from agent.dev.nats import NatsCluster, NatsNode
from agent.events import BellEvent, CommandResultEvent, StatusMessage, Topics, decode_event
from tests.agentproc import AgentProcess, write_site
from tests.centre.observer import Centre
from tests.mqtt.test_link import settle

KEY = bytes(range(7, 39))
SITE = "test-site"


def start_pole(
    folder: Path, dev: str, hosts: list[str], *, heartbeat_s: float = 2.0
) -> AgentProcess:
    """The agent with ``mqtt.hosts``, ``protocol: auto``, a command key, no bell lockout."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "device.key").write_text(KEY.hex() + "\n")
    mqtt = {
        "hosts": hosts,
        "protocol": "auto",
        "keepalive_s": 5,
        "backoff_min_s": 0.2,
        "backoff_max_s": 1.0,
        "stable_after_s": 5.0,
    }
    site = write_site(
        folder,
        1883,  # the default port only: every entry of hosts names its own
        device_id=dev,
        extra={
            "mqtt": mqtt,
            "health": {"heartbeat_s": heartbeat_s},
            "commands": {"key_file": str(folder / "device.key"), "rate_per_min": 1000},
            "bell": {"policy": {"lockout_s": 0}},
        },
    )
    return AgentProcess(site)


def topics(dev: str) -> Topics:
    return Topics("pole", SITE, dev)


def observer(node: NatsNode, dev: str) -> Centre:
    """A 3.1.1 subscriber to one pole's topics (not '#': that sees NATS' $MQTT subjects too)."""
    return Centre(node.mqtt_port, f"pole/{SITE}/{dev}/#", v5=False)


def birth(centre: Centre, dev: str, after: float = 0.0, timeout: float = 30.0) -> StatusMessage:
    """The first online status of ``dev`` that arrived after ``after`` (monotonic)."""
    msg = centre.wait_for(
        lambda m: m.topic == topics(dev).status and b'"online"' in m.payload and m.at > after,
        timeout=timeout,
    )[0]
    return StatusMessage.model_validate_json(msg.payload)


def node_of(cluster: NatsCluster, status: StatusMessage) -> NatsNode:
    """The node whose MQTT listener the birth names."""
    (node,) = [n for n in cluster.nodes if n.mqtt_host == status.broker]
    return node


def other(cluster: NatsCluster, node: NatsNode) -> NatsNode:
    return next(n for n in cluster.nodes if n is not node and n.running)


def bells(centre: Centre) -> list[BellEvent]:
    """Bell events, first arrivals only (QoS 1 may duplicate), in arrival order."""
    with centre._cond:
        msgs = [m for m in centre.messages if m.topic.endswith("/event/bell")]
    seen: set[str] = set()
    out = []
    for m in msgs:
        e = decode_event(m.payload)
        if isinstance(e, BellEvent) and e.id not in seen:
            seen.add(e.id)
            out.append(e)
    return out


def alarms(centre: Centre, count: int, timeout: float = 30.0) -> list[BellEvent]:
    """Wait for ``count`` activations; every bell event so far, checked in seq order."""
    settle(lambda: sum(e.ev == "activated" for e in bells(centre)) >= count, timeout, "alarms")
    got = bells(centre)
    seqs = [e.seq for e in got]
    assert seqs == sorted(seqs), f"bell events out of order: {seqs}"
    return got


def ping(
    node: NatsNode, dev: str, timeout: float = 15.0, settle_s: float = 45.0
) -> CommandResultEvent:
    """The signed ``ping`` through the centre's own sender, on ``node``, answered.

    Right after a node's death NATS refuses QoS 1 subscriptions for a while (its JetStream
    consumers have no leader yet): the sender says so and is tried again, up to ``settle_s``.
    """
    t = topics(dev)
    topic = t.cmd("ping")
    access = BrokerAccess("127.0.0.1", node.mqtt_port)
    deadline = time.monotonic() + settle_s
    while True:
        req, payload = make_request(KEY, topic, {})
        client = connect_client(access.host, access.port, v5=False)
        out = send_command(
            client, access, topic=topic, payload=payload, result_filter=t.cmd_result, req=req,
            timeout=timeout,
        )  # fmt: skip
        refused = out.error is not None and "refused the subscription" in out.error
        if not refused or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    assert out.error is None, out.error
    assert dev in out.results, f"no cmd_result for ping {req} within {timeout}s"
    return out.results[dev]


def signed(dev: str, name: str, args: dict[str, Any] | None = None) -> tuple[str, bytes]:
    return make_request(KEY, topics(dev).cmd(name), args or {})
