"""A private NATS cluster for the tests: real ``nats-server`` processes with MQTT and JetStream.

Not used on a pole.  NATS' MQTT listener needs JetStream, and JetStream in a cluster needs a
``server_name`` per node.  By default NATS makes its MQTT streams (sessions, retained
messages, QoS 1 deliveries) with 2 replicas even on three nodes, and a stream whose two
replicas include the dead node loses its quorum: ``mqtt { stream_replicas: 3 }`` keeps every
MQTT stream on all three nodes, so any one may die.  Every port is chosen free on 127.0.0.1
(a system NATS may hold 4222), every node runs in its own session, and ``stop()`` kills
whatever is left even after a failed start.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.dev.broker import free_port, sbin_binary

__all__ = ["NatsCluster", "NatsNode", "nats_binary"]


def nats_binary() -> str:
    return sbin_binary("nats-server")


@dataclass
class NatsNode:
    """One node: its ports, folder and (while running) its process."""

    name: str
    workdir: Path
    client_port: int = field(default_factory=free_port)
    cluster_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def conf(self) -> Path:
        return self.workdir / "nats.conf"

    @property
    def log(self) -> Path:
        return self.workdir / "nats.log"

    @property
    def mqtt_host(self) -> str:
        """``127.0.0.1:port`` of its MQTT listener, as ``mqtt.hosts`` lists it."""
        return f"127.0.0.1:{self.mqtt_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def monitor(self, path: str) -> Any:
        """GET ``path`` from the node's monitoring port; the decoded JSON."""
        url = f"http://127.0.0.1:{self.http_port}{path}"
        with urllib.request.urlopen(url, timeout=1.0) as reply:
            return json.loads(reply.read())


class NatsCluster:
    """``nodes`` nats-server processes routed to each other (one node: no cluster block)."""

    def __init__(self, workdir: Path, nodes: int = 3, *, replicas: int | None = None) -> None:
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        self.workdir = Path(workdir)
        self.replicas = replicas if replicas is not None else min(nodes, 3)
        self.nodes = [NatsNode(f"n{i + 1}", self.workdir / f"n{i + 1}") for i in range(nodes)]

    # ------------------------------------------------------------------ config
    def config(self, node: NatsNode) -> str:
        """The node's nats.conf (shown in docs/centre.md)."""
        lines = [
            f'server_name: "{node.name}"',
            f"listen: 127.0.0.1:{node.client_port}",
            f"http: 127.0.0.1:{node.http_port}",
            f'jetstream {{ store_dir: "{node.workdir / "js"}" }}',
            "mqtt {",
            f"  listen: 127.0.0.1:{node.mqtt_port}",
            f"  stream_replicas: {self.replicas}",
            f"  consumer_replicas: {self.replicas}",
            "  ack_wait: 5s",  # an unacknowledged QoS 1 delivery is sent again after this
            "}",
        ]
        if len(self.nodes) > 1:
            routes = ", ".join(f"nats-route://127.0.0.1:{n.cluster_port}" for n in self.nodes)
            lines += [
                "cluster {",
                '  name: "pole-test"',
                f"  listen: 127.0.0.1:{node.cluster_port}",
                f"  routes: [{routes}]",
                "}",
            ]
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ life
    def start(self, timeout: float = 30.0) -> NatsCluster:
        try:
            for node in self.nodes:
                self._spawn(node)
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, node: NatsNode) -> None:
        if node.running:
            return
        node.workdir.mkdir(parents=True, exist_ok=True)
        node.conf.write_text(self.config(node))
        node.proc = subprocess.Popen(
            [nats_binary(), "-c", str(node.conf), "-l", str(node.log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a terminal's Ctrl-C must not kill the brokers first
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until every running node answers and JetStream has a meta leader (and MQTT listens)."""
        deadline = time.monotonic() + timeout
        problem = "not polled yet"
        while time.monotonic() < deadline:
            problem = self._not_ready() or ""
            if not problem:
                return
            time.sleep(0.1)
        raise RuntimeError(f"NATS cluster not ready within {timeout:g}s: {problem}")

    def _not_ready(self) -> str | None:
        for node in self.nodes:
            if node.proc is None:
                continue
            if node.proc.poll() is not None:
                tail = node.log.read_text()[-2000:] if node.log.exists() else ""
                raise RuntimeError(f"nats-server {node.name} exited: {tail}")
            try:
                health = node.monitor("/healthz?js-enabled-only=true")
                jsz = node.monitor("/jsz")
            except (OSError, ValueError) as exc:
                return f"{node.name}: {exc}"
            if health.get("status") != "ok":
                return f"{node.name}: {health}"
            leader = (jsz.get("meta_cluster") or {}).get("leader")
            if len(self.nodes) > 1 and not leader:
                return f"{node.name}: no JetStream meta leader yet"
            if not _mqtt_ready(node):
                return f"{node.name}: MQTT not accepting sessions yet"
        return None

    def kill(self, node: NatsNode | int) -> NatsNode:
        """SIGKILL one node (a crashed machine: no goodbye to clients or routes)."""
        n = self._node(node)
        if n.proc is not None and n.proc.poll() is None:
            n.proc.kill()
            n.proc.wait()
        n.proc = None
        return n

    def restart(self, node: NatsNode | int, timeout: float = 30.0) -> NatsNode:
        """Start a killed or stopped node again, on the same ports and store."""
        n = self._node(node)
        self.kill(n)
        self._spawn(n)
        self.wait_ready(timeout)
        return n

    def stop(self) -> None:
        """Terminate every node, killing those that do not go within 5 s."""
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
        for node in self.nodes:
            if node.proc is None:
                continue
            try:
                node.proc.wait(5)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait()
            node.proc = None

    def _node(self, node: NatsNode | int) -> NatsNode:
        return self.nodes[node] if isinstance(node, int) else node

    @property
    def hosts(self) -> list[str]:
        """Every node's MQTT listener, for ``mqtt.hosts``."""
        return [n.mqtt_host for n in self.nodes]

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _mqtt_ready(node: NatsNode) -> bool:
    """A real MQTT 3.1.1 CONNECT is accepted (the MQTT streams exist and have a leader)."""
    cid = f"ready-{node.name}".encode()
    body = b"\x00\x04MQTT" + bytes([4, 2, 0, 5]) + len(cid).to_bytes(2, "big") + cid
    packet = bytes([0x10, len(body)]) + body  # CONNECT, clean session, keepalive 5 s
    try:
        with socket.create_connection(("127.0.0.1", node.mqtt_port), timeout=1.0) as s:
            s.settimeout(3.0)
            s.sendall(packet)
            reply = s.recv(4)
    except OSError:
        return False
    return len(reply) == 4 and reply[0] == 0x20 and reply[3] == 0
