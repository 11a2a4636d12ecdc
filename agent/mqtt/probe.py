"""A one-shot check of the broker link for `pole-agent doctor`: TLS, login, ACL, round trip.

Connects with the unit's own settings (a separate client id, so a running agent is not
thrown off), subscribes to the unit's command topics, publishes a probe on its own
``cmd/_doctor`` topic (inside the subtree a device may write) and waits for it to come
back.  Each failure names the step it stopped at.
"""

from __future__ import annotations

import secrets
import ssl
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import paho.mqtt.client as mqtt

from agent.config import MqttConfig
from agent.config.mqtt import Broker
from agent.errors import AgentError
from agent.events import Topics
from agent.mqtt.client import ClientSetupError, client_spec, new_client

__all__ = ["ProbeResult", "probe"]


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    step: str  # credentials, connect, tls, login, subscribe, publish, round_trip, done
    detail: str
    rtt_ms: float | None = None


class _Probe:
    def __init__(self, topics: Topics) -> None:
        self.topics = topics
        self.probe_topic = topics.cmd("_doctor")
        self.nonce = secrets.token_hex(8).encode()
        self.failure: ProbeResult | None = None
        self.sent_at: float | None = None
        self.rtt_ms: float | None = None
        self.done = threading.Event()
        self._sub_mid: int | None = None

    def fail(self, step: str, detail: str) -> None:
        if self.failure is None:
            self.failure = ProbeResult(False, step, detail)
        self.done.set()

    def on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.fail("login", f"the broker refused the login: {reason}")
            return
        self._sub_mid = client.subscribe([(t, 1) for t in self.topics.cmd_filters])[1]

    def on_subscribe(self, client: mqtt.Client, _u: Any, mid: int, codes: Any, _p: Any) -> None:
        refused = [str(c) for c in codes if getattr(c, "is_failure", False)]
        if refused:
            self.fail("subscribe", f"reading its command topics was refused: {', '.join(refused)}")
            return
        self.sent_at = time.monotonic()
        client.publish(self.probe_topic, self.nonce, qos=1)

    def on_publish(self, _c: mqtt.Client, _u: Any, _mid: int, reason: Any, _p: Any) -> None:
        if getattr(reason, "is_failure", False):
            self.fail("publish", f"publishing under its own subtree was refused: {reason}")

    def on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self.probe_topic and msg.payload == self.nonce and self.sent_at:
            self.rtt_ms = (time.monotonic() - self.sent_at) * 1000
            self.done.set()

    def on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.fail("connect", f"the broker closed the connection: {reason}")


def _client(cfg: MqttConfig, client_id: str, password: str | None) -> mqtt.Client:
    spec = client_spec(cfg, client_id, password, v5=cfg.protocol != "3.1.1")
    return new_client(replace(spec, clean_session=True))


def probe(
    cfg: MqttConfig,
    topics: Topics,
    client_id: str,
    timeout: float = 5.0,
    broker: Broker | None = None,
) -> ProbeResult:
    """Check the link to ``broker`` (default: the first) the way the agent would; never raises."""
    target = broker or cfg.brokers()[0]
    try:
        password = cfg.resolve_password()
    except (OSError, AgentError) as exc:
        return ProbeResult(False, "credentials", f"cannot read the MQTT password: {exc}")
    p = _Probe(topics)
    try:
        client = _client(cfg, client_id, password)
    except (OSError, ValueError, ClientSetupError) as exc:  # unreadable or mismatched TLS files
        return ProbeResult(False, "tls", f"cannot load the TLS files: {exc}")
    client.on_connect, client.on_subscribe = p.on_connect, p.on_subscribe
    client.on_publish, client.on_message = p.on_publish, p.on_message
    client.on_disconnect = p.on_disconnect
    try:
        client.connect(target.host, target.port, keepalive=max(5, int(timeout) + 5))
    except ssl.SSLError as exc:
        return ProbeResult(False, "tls", f"TLS handshake failed: {exc.reason or exc}")
    except (OSError, ValueError) as exc:
        return ProbeResult(False, "connect", f"cannot reach {target}: {exc}")
    client.loop_start()
    try:
        if not p.done.wait(timeout):
            step = "round_trip" if p.sent_at else "login"
            p.fail(step, f"no answer within {timeout:g} s at the {step.replace('_', ' ')} step")
    finally:
        client.on_disconnect = None
        client.disconnect()
        client.loop_stop()
    if p.failure is not None:
        return p.failure
    return ProbeResult(True, "done", "round trip through its command topic", p.rtt_ms)
