"""The link to the centre's broker: publishes the spool with QoS 1, never loses an alarm.

One thread ("link") owns the paho client and drives it with its own ``select`` loop
(paho's ``loop_read``/``loop_write``/``loop_misc``), so connecting, publishing, PUBACKs and
command messages all happen in one place with no cross-thread paho calls.  A spool ``put``
wakes the loop through a pipe, so an alarm is published the moment it is durable.

Delivery: a row leaves the spool only when its PUBACK arrives (``on_publish``).  A new
paho client is made for every connection; whatever was in flight when the link dropped
is simply published again from the spool, in spool order.  That can duplicate (the
centre deduplicates on ``id``) but never lose or reorder within a priority.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import select
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.config import DeviceConfig, MqttConfig
from agent.events import StatusMessage, Topics, encode, now_ms
from agent.logs import Throttle
from agent.mqtt.client import client_spec, new_client
from agent.spool import Spool

__all__ = ["CommandHandler", "Link", "StatusInfo"]

log = logging.getLogger(__name__)

CommandHandler = Callable[[str, bytes], None]
SESSION_EXPIRY_S = 24 * 3600  # the broker keeps queued commands for a day offline
REFUSED_RETRY_S = 30.0  # a publish the broker refused (ACL) is tried again after this


@dataclass(frozen=True)
class StatusInfo:
    """What the birth message tells the centre about this unit."""

    device: DeviceConfig
    boot_id: str
    version: str
    config_hash: str


def _inject_sent_time(payload: bytes) -> bytes:
    # Events are encoded as {"v":1,"id":…}; the send time is added here, at publish, so
    # a replayed event shows both when it happened and when it finally left.
    if payload.startswith(b'{"v":1,"id":'):
        return b'{"st":%d,' % now_ms() + payload[1:]
    return payload


class Link:
    """Owns the connection; ``start()`` it once, ``stop()`` it once."""

    def __init__(
        self,
        cfg: MqttConfig,
        spool: Spool,
        topics: Topics,
        status: StatusInfo,
        on_command: CommandHandler | None = None,
    ) -> None:
        self.cfg = cfg
        self.spool = spool
        self.topics = topics
        self.status = status
        self.on_command = on_command
        self._password = cfg.resolve_password()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._wake_lock = threading.Lock()  # wake() never writes to a closed (reused) fd
        self._socket_error: str | None = None  # paho's last socket error, for refusals
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: mqtt.Client | None = None
        self._inflight: dict[int, int] = {}  # paho mid -> spool row id
        self._acked: list[int] = []
        self._refused: dict[int, float] = {}  # row id -> monotonic time to retry
        self._failures = 0
        self._next_attempt = 0.0
        self._v5 = cfg.protocol != "3.1.1"
        self._got_connack = False
        self._connack_deadline = 0.0
        self._progress = time.monotonic()
        # facts for the heartbeat
        self.state = "disconnected"
        self.connected_since: int | None = None
        self.reconnects = 0
        self.refusals = 0
        self.last_refusal: str | None = None
        self.published = 0
        self.delivered = 0
        self.commands_received = 0
        self._log_gate = Throttle(60.0)
        spool.add_listener(self.wake)

    # ------------------------------------------------------------------ public
    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="link", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Flush what can be flushed within ``timeout``, say offline, disconnect, join."""
        self._stop_deadline = time.monotonic() + timeout
        self._stopping.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout + 2.0)
            if self._thread.is_alive():
                log.error("MQTT link: the link thread did not stop within %.1fs", timeout + 2.0)
                return  # it may still select on the pipe: leave it open rather than reused
        self.spool.remove_listener(self.wake)
        with self._wake_lock:
            # A put after stop (the bell outlives the link) must not write a byte into
            # whatever file reuses these descriptor numbers.
            for fd in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._wake_r = self._wake_w = -1

    def wake(self) -> None:
        """Make the loop look at the spool now (called by ``Spool.put``; never blocks)."""
        # A full pipe means the loop is already woken.
        with self._wake_lock, contextlib.suppress(BlockingIOError, OSError):
            if self._wake_w >= 0:
                os.write(self._wake_w, b"\0")

    def threads(self) -> list[threading.Thread]:
        return [self._thread] if self._thread is not None else []

    def last_progress(self) -> float:
        return self._progress

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    def facts(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "since": self.connected_since,
            "reconnects": self.reconnects,
            "refusals": self.refusals,
            "refusal": self.last_refusal,
            "published": self.published,
            "delivered": self.delivered,
            "inflight": len(self._inflight),
            "protocol": "5" if self._v5 else "3.1.1",
            "commands": self.commands_received,
        }

    # ------------------------------------------------------------------ loop
    def _main(self) -> None:
        try:
            while not self._stopping.is_set():
                self._progress = time.monotonic()
                if self._client is None and time.monotonic() >= self._next_attempt:
                    self._connect()
                if self.connected:
                    self._pump()
                self._wait(self._timeout())
                self._flush_acks()
                self._check_connack()
            self._shutdown()
        except Exception:
            log.exception("link thread crashed")
            raise

    def _timeout(self) -> float:
        if self._client is None:
            return max(0.0, min(0.5, self._next_attempt - time.monotonic()))
        return 0.5

    def _wait(self, timeout: float) -> None:
        client = self._client
        sock = client.socket() if client is not None else None
        rlist: list[Any] = [self._wake_r]
        wlist: list[Any] = []
        if sock is not None:
            rlist.append(sock)
            if client is not None and client.want_write():
                wlist.append(sock)
        try:
            readable, writable, _ = select.select(rlist, wlist, [], timeout)
        except (OSError, ValueError):
            readable, writable = [], []  # the socket closed under us; loop_misc notices
        if self._wake_r in readable:
            try:
                while os.read(self._wake_r, 4096):
                    pass
            except BlockingIOError:
                pass
        if client is None or self._client is not client:
            return
        if sock is not None and sock in readable:
            client.loop_read(100)
        if self._client is client and sock is not None and sock in writable:
            client.loop_write()
        if self._client is client:
            client.loop_misc()

    def _pump(self) -> None:
        client = self._client
        free = self.cfg.max_inflight - len(self._inflight)
        if client is None or free <= 0:
            return
        now = time.monotonic()
        self._refused = {r: t for r, t in self._refused.items() if t > now}
        busy = set(self._inflight.values()) | set(self._refused)
        for row in self.spool.next_batch(free, exclude=busy):
            info = client.publish(
                row.topic, _inject_sent_time(row.payload), qos=1, retain=row.retain
            )
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break  # connection lost mid-batch; the rows stay in the spool
            self._inflight[info.mid] = row.id
            self.published += 1
            if self._client is not client:
                break

    def _flush_acks(self) -> None:
        if self._acked:
            acked, self._acked = self._acked, []
            self.spool.ack_many(acked)
            self.delivered += len(acked)

    # ------------------------------------------------------------------ connecting
    def _new_client(self) -> mqtt.Client:
        cid = self.cfg.client_id or self.status.device.id
        client = new_client(client_spec(self.cfg, cid, self._password, v5=self._v5))
        client.max_inflight_messages_set(self.cfg.max_inflight)
        client.max_queued_messages_set(0)
        will = self._status("offline", "lost")
        client.will_set(self.topics.status, will, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_log = self._on_log
        return client

    def _connect(self) -> None:
        self.state = "connecting"
        self._got_connack = False
        self._socket_error = None
        client = self._new_client()
        props = None
        if self._v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = SESSION_EXPIRY_S
        # Registered before connect(): paho writes CONNECT from inside it, and a broker that
        # already hung up (TLS 1.3 refusing our certificate) fires on_disconnect right there.
        self._client = client
        self._connack_deadline = time.monotonic() + self.cfg.connect_timeout_s
        try:
            client.connect(
                self.cfg.host,
                self.cfg.port,
                keepalive=self.cfg.keepalive_s,
                clean_start=False if self._v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                properties=props,
            )
        except ssl.SSLError as exc:
            self._drop_client()
            self._failed(f"TLS handshake failed: {exc}", "refused")
        except (OSError, ValueError) as exc:
            self._drop_client()
            self._failed(f"cannot reach {self.cfg.host}:{self.cfg.port}: {exc}", "disconnected")

    def _check_connack(self) -> None:
        # A broker that takes the connection but never answers would leave us "connecting"
        # until paho's keepalive check; give up after the connect timeout instead.
        late = time.monotonic() > self._connack_deadline
        if self.state == "connecting" and self._client is not None and late:
            self._drop_client()
            self._failed(f"no CONNACK within {self.cfg.connect_timeout_s:.0f}s", "disconnected")

    def _failed(self, reason: str, state: str) -> None:
        self.state = state
        if state == "refused":
            self.last_refusal = reason
            self.refusals += 1
        self._failures += 1
        base = min(self.cfg.backoff_max_s, self.cfg.backoff_min_s * 2 ** min(self._failures, 20))
        delay = base * random.uniform(0.5, 1.0)  # "equal jitter": poles don't reconnect in step
        self._next_attempt = time.monotonic() + delay
        self._log_once(f"MQTT link: {reason}; next attempt in {delay:.1f}s")

    def _log_once(self, line: str) -> None:
        # A broker outage must not flood the journal: repeat a line at most once a minute.
        if self._log_gate.ready(line.split("; next attempt", 1)[0]):
            log.warning("%s", line)

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        self._inflight.clear()
        if client is not None:
            client.on_disconnect = None
            with contextlib.suppress(OSError, ValueError):
                client.disconnect()
            sock = client.socket()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()

    # ------------------------------------------------------------------ callbacks
    def _on_connect(
        self, client: mqtt.Client, _u: Any, flags: Any, reason: ReasonCode, _p: Any
    ) -> None:
        self._got_connack = True
        if reason.is_failure:
            text = str(reason)
            if self.cfg.protocol == "auto" and self._v5 and "protocol" in text.lower():
                self._v5 = False  # an MQTT 3.1.1-only broker: retry at once in 3.1.1
                self._drop_client()
                self._next_attempt = 0.0
                return
            self._drop_client()
            self._failed(f"broker refused the connection: {text}", "refused")
            return
        self.state = "connected"
        self.connected_since = now_ms()
        self._failures = 0
        if self.reconnects or self.published:
            log.info("MQTT link: connected to %s:%d again", self.cfg.host, self.cfg.port)
        else:
            log.info("MQTT link: connected to %s:%d", self.cfg.host, self.cfg.port)
        self._log_gate = Throttle(60.0)
        client.publish(self.topics.status, self._status("online", "birth"), qos=1, retain=True)
        if self.on_command is not None:
            client.subscribe([(t, 1) for t in self.topics.cmd_filters])

    def _on_disconnect(
        self, client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any
    ) -> None:
        if client is not self._client:
            return
        was_connected = self.connected
        no_connack = not self._got_connack
        self._drop_client()
        if was_connected:
            self.reconnects += 1
        err = self._socket_error
        if no_connack and self.cfg.tls is not None and err is not None and "ssl" in err.lower():
            # With TLS 1.3 the broker checks our certificate after our side of the handshake
            # is done, so its refusal only shows as an alert on the first read.
            self._failed(f"TLS refused by the broker (client certificate?): {err}", "refused")
            return
        if no_connack and self.cfg.protocol == "auto" and self._v5 and not was_connected:
            self._v5 = False  # closed without a CONNACK: perhaps a broker without MQTT 5
        elif no_connack and not self._v5 and self.cfg.protocol == "auto":
            self._v5 = True
        self._failed(f"disconnected ({reason}{': ' + err if err else ''})", "disconnected")

    def _on_publish(
        self, client: mqtt.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any
    ) -> None:
        row = self._inflight.pop(mid, None)
        if row is None:
            return  # birth, offline or another message outside the spool
        if reason.is_failure:
            self._refused[row] = time.monotonic() + REFUSED_RETRY_S
            self._log_once(f"MQTT link: broker refused a publish ({reason}); check its ACL")
            return
        self._acked.append(row)

    def _on_log(self, client: mqtt.Client, _u: Any, level: int, buf: str) -> None:
        # paho swallows socket errors into its log; keep the last one to say why we fell.
        if level == mqtt.MQTT_LOG_ERR and "socket" in buf:
            self._socket_error = buf

    def _on_subscribe(self, client: mqtt.Client, _u: Any, mid: int, codes: Any, _p: Any) -> None:
        refused = [str(c) for c in codes if getattr(c, "is_failure", False)]
        if refused:
            log.error("MQTT link: subscription to commands refused: %s", ", ".join(refused))

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.commands_received += 1
        if self.on_command is not None:
            try:
                self.on_command(msg.topic, bytes(msg.payload))
            except Exception:
                log.exception("command handler failed on %s", msg.topic)

    # ------------------------------------------------------------------ stopping
    def _status(self, state: str, why: str) -> bytes:
        d = self.status.device
        birth = why == "birth"
        msg = StatusMessage(
            dev=d.id,
            state=state,  # type: ignore[arg-type]
            why=why,  # type: ignore[arg-type]
            boot=self.status.boot_id,
            ts=now_ms(),
            ver=self.status.version if birth else None,
            cfg=self.status.config_hash if birth else None,
            site=d.site if birth else None,
            pole=d.pole if birth else None,
            place=(d.location or None) if birth else None,
            addr=(d.address or None) if birth else None,
            lat=d.latitude if birth else None,
            lon=d.longitude if birth else None,
        )
        return encode(msg)

    def _shutdown(self) -> None:
        deadline = getattr(self, "_stop_deadline", time.monotonic() + 5.0)
        # Flush what is waiting while there is time: a clean stop should leave little behind.
        while self.connected and time.monotonic() < deadline - 1.0:
            self._pump()
            if not self._inflight and not self.spool.next_batch(1):
                break
            self._wait(0.05)
            self._flush_acks()
        client = self._client
        if client is not None and self.connected:
            info = client.publish(
                self.topics.status, self._status("offline", "stopped"), qos=1, retain=True
            )
            end = min(deadline, time.monotonic() + 1.0)
            while not info.is_published() and self._client is client and time.monotonic() < end:
                self._wait(0.05)
            self._flush_acks()
            client.on_disconnect = None
            client.disconnect()
        self._drop_client()
        self.state = "stopped"
