"""A stand-in for the control centre's software: an independent paho client for tests.

It is not the agent's code (which keeps paho inside agent/mqtt); it checks the agent from
outside, as the centre would.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float

    def json(self) -> Any:
        return json.loads(self.payload)


class Centre:
    def __init__(
        self,
        port: int,
        topic: str = "#",
        *,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        tls: dict[str, Any] | None = None,
        v5: bool = True,
    ) -> None:
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        # A persistent session (fixed id, no clean start, long expiry), so that what the
        # agent publishes while the centre reconnects after a broker restart is queued for it.
        # v5=False for an MQTT 3.1.1-only broker (NATS): the same session, without expiry.
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"centre-{secrets.token_hex(4)}",
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else False,
        )
        if username:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set(**tls)
        self._subscribed = threading.Event()
        self.client.reconnect_delay_set(0.05, 0.5)  # follow broker restarts in tests quickly
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        if v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
            self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        else:
            self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("centre could not subscribe")

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(
                Received(msg.topic, bytes(msg.payload), bool(msg.retain), time.monotonic())
            )
            self._cond.notify_all()

    def wait_for(
        self, pred: Callable[[Received], bool], count: int = 1, timeout: float = 15.0
    ) -> list[Received]:
        """The first ``count`` messages matching ``pred``; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in self.messages if pred(m)]
                if len(found) >= count:
                    return found[:count]
                left = deadline - time.monotonic()
                if left <= 0:
                    topics = sorted({m.topic for m in self.messages})
                    raise AssertionError(
                        f"wanted {count} matching messages, got {len(found)}; topics seen: {topics}"
                    )
                self._cond.wait(left)

    def on_topic(self, suffix: str, count: int = 1, timeout: float = 15.0) -> list[Received]:
        return self.wait_for(lambda m: m.topic.endswith(suffix), count, timeout)

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
