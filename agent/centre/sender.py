"""The operator's side of commands: publish a signed command, wait for its result.

Used by ``pole-agent send``.  The result is an ordinary ``cmd_result`` event on the
device's ``cmd-result`` topic; it is matched on the request id (and deduplicated, since
events are delivered at least once).  For a site broadcast every device answers; the
sender collects answers until the timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from pydantic import ValidationError

from agent.events import CommandResultEvent, decode_event

__all__ = ["BrokerAccess", "SendResult", "request_command", "send_command"]


@dataclass(frozen=True)
class BrokerAccess:
    """How the operator reaches the broker."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    ca: str | None = None
    cert: str | None = None
    key: str | None = None


@dataclass
class SendResult:
    """What came back: results by device, and the broker's refusal if any."""

    results: dict[str, CommandResultEvent] = field(default_factory=dict)
    error: str | None = None


OnResult = Callable[[CommandResultEvent], None]


class _Exchange:
    def __init__(self, topic: str, payload: bytes, result_filter: str, req: str, many: bool,
                 *, on_result: OnResult | None = None):  # fmt: skip
        self.topic, self.payload, self.filter = topic, payload, result_filter
        self.req, self.many, self.on_result = req, many, on_result
        self.out = SendResult()
        self.done = threading.Event()
        self._sub_mid: int | None = None

    def on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.out.error = f"broker refused the connection: {reason}"
            self.done.set()
            return
        self._sub_mid = client.subscribe(self.filter, qos=1)[1]

    def on_subscribe(self, client: mqtt.Client, _u: Any, mid: int, codes: Any, _p: Any) -> None:
        if mid != self._sub_mid:
            return
        if any(getattr(c, "is_failure", False) for c in codes):
            self.out.error = f"broker refused the subscription to {self.filter} (ACL?)"
            self.done.set()
            return
        client.publish(self.topic, self.payload, qos=1)

    def on_publish(self, _c: mqtt.Client, _u: Any, _mid: int, reason: Any, _p: Any) -> None:
        if getattr(reason, "is_failure", False):
            self.out.error = f"broker refused the command publish on {self.topic}: {reason}"
            self.done.set()

    def on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            event = decode_event(bytes(msg.payload))
        except ValidationError:
            return
        if isinstance(event, CommandResultEvent) and event.req == self.req:
            if event.dev not in self.out.results and self.on_result is not None:
                self.on_result(event)  # as it comes (the console shows it at once)
            self.out.results.setdefault(event.dev, event)
            if not self.many:
                self.done.set()


def send_command(
    client: mqtt.Client,
    access: BrokerAccess,
    *,
    topic: str,
    payload: bytes,
    result_filter: str,
    req: str,
    timeout: float,
    many: bool = False,
    on_result: OnResult | None = None,
) -> SendResult:
    """Publish ``payload`` on ``topic`` once subscribed to ``result_filter``; wait.

    ``on_result`` is called (on paho's thread) with each device's first result as it comes.
    """
    ex = _Exchange(topic, payload, result_filter, req, many, on_result=on_result)
    client.on_connect = ex.on_connect
    client.on_subscribe = ex.on_subscribe
    client.on_publish = ex.on_publish
    client.on_message = ex.on_message
    try:
        client.connect(access.host, access.port, keepalive=30)
    except OSError as exc:
        return SendResult(error=f"cannot reach the broker at {access.host}:{access.port}: {exc}")
    client.loop_start()
    try:
        ex.done.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    return ex.out


def request_command(
    access: BrokerAccess,
    *,
    prefix: str,
    site: str,
    device: str,
    command: str,
    key: bytes | None,
    args: dict[str, Any] | None = None,
    timeout: float = 10.0,
    v5: bool = True,
    req: str | None = None,
    on_result: OnResult | None = None,
) -> tuple[str, SendResult]:
    """Sign ``command`` for ``device`` (``_site``: every device), send it, wait: (req, result).

    A fresh connection per command: the console and ``pole-agent send`` share this.
    """
    from agent.centre.monitor import connect_client
    from agent.control.auth import make_request
    from agent.events import Topics

    topics = Topics(prefix, site, device)
    topic = topics.cmd(command)
    many = device == "_site"
    req, payload = make_request(key, topic, args, req=req)
    client = connect_client(
        access.host, access.port, username=access.username, password=access.password,
        tls_ca=access.ca, tls_cert=access.cert, tls_key=access.key, v5=v5,
    )  # fmt: skip
    result_filter = f"{prefix}/{site}/+/cmd-result" if many else topics.cmd_result
    out = send_command(client, access, topic=topic, payload=payload, req=req, timeout=timeout,
                       many=many, result_filter=result_filter, on_result=on_result)  # fmt: skip
    return req, out
