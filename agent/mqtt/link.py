"""The link to the centre's broker: publishes the spool with QoS 1, never loses an alarm.

One thread ("link") owns the paho client and drives it with its own ``select`` loop
(paho's ``loop_read``/``loop_write``/``loop_misc``), so publishing, PUBACKs and command
messages all happen in one place with no cross-thread paho calls.  Only the blocking part
of connecting (credentials, TLS files, DNS, TCP, TLS) runs on a helper thread, on a client
the loop takes over once CONNECT is sent (``connector``): a connecting link is not a hung
link.  A spool ``put`` wakes the loop through a pipe, so an alarm goes out the moment it is
durable.

Delivery: a row leaves the spool only when its PUBACK arrives (``on_publish``).  A new
paho client is made for every connection; whatever was in flight when the link dropped
is simply published again from the spool, in spool order.  That can duplicate (the
centre deduplicates on ``id``) but never lose or reorder within a priority.  A row the
broker can never take is set aside (``poison``), so it cannot block the rows behind it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import select
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from agent.config import MqttConfig
from agent.events import Priority, Topics, now_ms
from agent.logs import Throttle
from agent.mqtt.connector import Attempt, Connector, Outcome
from agent.mqtt.hosts import Backoff, HostRing, Outage
from agent.mqtt.publisher import DeadLetter, Publisher, inject_sent_time
from agent.mqtt.status import StatusInfo, status_message
from agent.mqtt.wakeup import WakePipe
from agent.spool import Spool
from agent.worker import Worker

__all__ = ["CommandHandler", "DeadLetter", "Link", "StatusInfo"]

log = logging.getLogger(__name__)

CommandHandler = Callable[[str, bytes], None]
_inject_sent_time = inject_sent_time  # its old home: tests and bench import it from here
SESSION_TAKEN_OVER = 0x8E
# Mosquitto 2.0 closes the old connection without DISCONNECT 0x8E (either protocol), so this
# many connections in a row closed before stable_after_s, with no row to blame, count too.
SHORT_RUNS = 3


class Link(Worker):
    """Owns the connection; ``start()`` it once, ``stop()`` it once.

    ``dead_letter(row, reason)`` receives a row the broker will never take and must take it
    out of the spool; without one the row is deleted with a logged error.  Either way it is
    counted in ``facts()["dead"]``.
    """

    def __init__(
        self,
        cfg: MqttConfig,
        spool: Spool,
        topics: Topics,
        status: StatusInfo,
        *,
        on_command: CommandHandler | None = None,
        dead_letter: DeadLetter | None = None,
    ) -> None:
        super().__init__("link")
        self.cfg = cfg
        self.spool = spool
        self.topics = topics
        self.status = status
        self.on_command = on_command
        self._wakeup = WakePipe()
        self._socket_error: str | None = None  # paho's last socket error, for refusals
        self._client: mqtt.Client | None = None
        self._attempt: Attempt | None = None
        self._connector = Connector(cfg, cfg.client_id or status.device.id, self.wake)
        self._ring = HostRing(cfg.brokers())
        self._backoff = Backoff(cfg.backoff_min_s, cfg.backoff_max_s, cfg.stable_after_s)
        self._out = Publisher(spool, cfg.max_inflight, dead_letter)
        self._v5 = cfg.protocol != "3.1.1"
        self._said_fallback = False  # the 3.1.1 fallback is logged once per episode
        self._short_runs = 0
        self._got_connack = False
        self._connack_deadline = 0.0
        # facts for the heartbeat
        self.state = "disconnected"
        self.broker = str(self._ring.current)
        self.why: str | None = None
        self.detail: str | None = None
        self.file: str | None = None
        self.connected_since: int | None = None
        self.reconnects = 0
        self.refusals = 0
        self.last_refusal: str | None = None
        self.took_over = 0
        self.commands_received = 0
        self._outage = Outage(self.broker, time.monotonic())
        self._log_gate = Throttle(60.0)
        spool.add_listener(self.wake)

    # ------------------------------------------------------------------ public
    def stop(self, timeout: float = 5.0) -> bool:
        """Flush what can be flushed within ``timeout``, say offline, disconnect, join."""
        self._stop_deadline = time.monotonic() + timeout
        if not super().stop(timeout + 2.0):
            return False  # it may still select on the pipe: leave it open rather than reused
        self.spool.remove_listener(self.wake)
        self._wakeup.close()
        return True

    def _wake(self) -> None:
        self.wake()

    def wake(self) -> None:
        """Make the loop look at the spool now (called by ``Spool.put``; never blocks)."""
        self._wakeup.wake()

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    @property
    def published(self) -> int:
        return self._out.published

    @property
    def delivered(self) -> int:
        return self._out.delivered

    @property
    def dead(self) -> int:
        """Rows set aside as poison (too large, or dropping the connection each time)."""
        return self._out.dead

    @property
    def max_packet(self) -> int | None:
        """The broker's maximum packet size (MQTT 5 CONNACK); None when not stated."""
        return self._out.guard.max_packet

    def refresh_status(self, config_hash: str) -> None:
        """A reload applied a new config without a new connection: say so in a new birth.

        The birth goes through the spool (retained, alarm priority) like any message, so it
        is sent now when connected and after the next connect's own birth otherwise.
        """
        self.status = dataclasses.replace(self.status, config_hash=config_hash)
        birth = self._status("online", "birth")
        self.spool.put(self.topics.status, birth, Priority.ALARM, retain=True)

    def facts(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "since": self.connected_since,
            "broker": self.broker,
            "why": self.why,
            "detail": self.detail,
            "file": self.file,
            "reconnects": self.reconnects,
            "refusals": self.refusals,
            "refusal": self.last_refusal,
            "took_over": self.took_over,
            "published": self.published,
            "delivered": self.delivered,
            "inflight": self._out.inflight,
            "dead": self.dead,
            "max_packet": self._out.guard.max_packet,
            "protocol": "5" if self._v5 else "3.1.1",
            "commands": self.commands_received,
            **self._outage.facts(time.monotonic()),
        }

    # ------------------------------------------------------------------ loop
    # Worker.threads(): only "link", not the short-lived link-connect helpers (they end by
    # design and must not look like a dead critical thread).
    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            self.progress(now)
            if self._client is None:
                self._advance_attempt(now)
            else:
                self._backoff.tick(now)
            if self.connected and self._client is not None:
                self._out.pump(self._client, v5=self._v5)
            self._wait(self._timeout())
            self._out.flush()
            self._check_connack()
        self._shutdown()

    def _crashed(self, exc: Exception) -> None:
        log.error("link thread crashed: %s", exc, exc_info=exc)

    def _timeout(self) -> float:
        now = time.monotonic()
        if self._attempt is not None:
            return max(0.0, min(0.5, self._attempt.deadline - now))
        if self._client is None and not self._connector.busy():
            return max(0.0, min(0.5, self._backoff.next_at - now))
        return 0.5

    def _wait(self, timeout: float) -> None:
        client = self._client
        sock = client.socket() if client is not None else None
        rlist: list[Any] = [self._wakeup]
        wlist: list[Any] = []
        if sock is not None:
            rlist.append(sock)
            if client is not None and client.want_write():
                wlist.append(sock)
        try:
            readable, writable, _ = select.select(rlist, wlist, [], timeout)
        except (OSError, ValueError):
            readable, writable = [], []  # the socket closed under us; loop_misc notices
        if self._wakeup in readable:
            self._wakeup.drain()
        if client is None or self._client is not client:
            return
        if sock is not None and sock in readable:
            client.loop_read(100)
        if self._client is client and sock is not None and sock in writable:
            client.loop_write()
        if self._client is client:
            client.loop_misc()

    # ------------------------------------------------------------------ connecting
    def _advance_attempt(self, now: float) -> None:
        attempt = self._attempt
        if attempt is None:
            if self._backoff.due(now) and not self._connector.busy():
                self._begin()
            return
        outcome = attempt.outcome
        if outcome is None:
            if not attempt.expired(now):
                return
            outcome = attempt.abandon()
        self._attempt = None
        if outcome.client is None:
            self._failed(outcome.state, outcome.why or "unreachable", outcome.detail, outcome.file)
        else:
            self._adopt(outcome.client, outcome)

    def _begin(self) -> None:
        broker = self._ring.current
        self.state, self.broker = "connecting", str(broker)
        self._got_connack = False
        will = (self.topics.status, self._status("offline", "lost"))
        self._attempt = self._connector.start(broker, v5=self._v5, will=will)

    def _adopt(self, client: mqtt.Client, outcome: Outcome) -> None:
        self._socket_error = outcome.socket_error
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_log = self._on_log
        self._client = client
        self._connack_deadline = time.monotonic() + self.cfg.connect_timeout_s

    def _check_connack(self) -> None:
        # A broker that takes the connection but never answers would leave us "connecting"
        # until paho's keepalive check; give up after the connect timeout instead.
        late = time.monotonic() > self._connack_deadline
        if self.state == "connecting" and self._client is not None and late:
            self._drop_client()
            detail = f"no CONNACK from {self.broker} within {self.cfg.connect_timeout_s:g}s"
            self._failed("disconnected", "no_connack", detail)

    def _failed(
        self,
        state: str,
        why: str,
        detail: str,
        file: str | None = None,
        *,
        move: bool = True,
        longest: bool = False,
        attempt: bool = True,
    ) -> None:
        self.state, self.why, self.detail, self.file = state, why, detail, file
        self._outage.failed(time.monotonic(), attempt=attempt)
        if state == "refused":
            self.last_refusal = detail
            self.refusals += 1
        delay = self._backoff.failed(time.monotonic(), longest=longest)
        if move and self._ring.advance():
            self._v5 = self.cfg.protocol != "3.1.1"  # the next broker may speak MQTT 5
        self._log_once(f"MQTT link: {detail}; next attempt in {delay:.1f}s")

    def _log_once(self, line: str) -> None:
        # A broker outage must not flood the journal: repeat a line at most once a minute.
        if self._log_gate.ready(line.split("; next attempt", 1)[0]):
            log.warning("%s", line)

    def _fall_back(self, why: str) -> None:
        self._v5 = False
        if not self._said_fallback:
            self._said_fallback = True
            log.warning("MQTT link: %s at %s; falling back to MQTT 3.1.1", why, self.broker)

    def _drop_client(self) -> None:
        client, self._client = self._client, None
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
        self, client: mqtt.Client, _u: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        self._got_connack = True
        if reason.is_failure:
            text = str(reason)
            self._drop_client()
            if self.cfg.protocol == "auto" and self._v5 and "protocol" in text.lower():
                self._fall_back("the broker refused MQTT 5")
                self._backoff.retry_now()  # an MQTT 3.1.1-only broker: retry at once
                self.state = "disconnected"
                return
            login = "password" in text.lower() or "authori" in text.lower()
            detail = f"{self.broker} refused the connection: {text}"
            self._failed("refused", "login" if login else "broker", detail)
            return
        self.state = "connected"
        self.connected_since = now_ms()
        self._outage.connected(self.broker)
        self._backoff.up(time.monotonic())
        self._said_fallback = False
        self._out.guard.max_packet = getattr(props, "MaximumPacketSize", None) if self._v5 else None
        again = " again" if self.reconnects or self.published else ""
        proto = "MQTT 5" if self._v5 else "MQTT 3.1.1"
        log.info("MQTT link: connected to %s%s (%s)", self.broker, again, proto)
        self._log_gate = Throttle(60.0)
        client.publish(self.topics.status, self._status("online", "birth"), qos=1, retain=True)
        if self.on_command is not None:
            client.subscribe([(t, 1) for t in self.topics.cmd_filters])

    def _on_disconnect(
        self, client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any
    ) -> None:
        if client is not self._client:
            return
        now = time.monotonic()
        was_connected = self.connected
        uptime = self._backoff.uptime(now) or 0.0
        no_connack = not self._got_connack
        blamed = self._out.lost(was_connected=was_connected)
        self._drop_client()
        err = self._socket_error
        detail = f"{self.broker} disconnected ({reason}{': ' + err if err else ''})"
        if was_connected:
            self.reconnects += 1
            short = uptime < self.cfg.stable_after_s and not blamed
            self._short_runs = self._short_runs + 1 if short else 0
            taken = reason.value == SESSION_TAKEN_OVER
            if taken or self._short_runs >= SHORT_RUNS:
                self._taken_over(detail)
                return
            self._failed("disconnected", "lost", detail, move=False, attempt=False)
            return
        if no_connack and self.cfg.tls is not None and err is not None and "ssl" in err.lower():
            # With TLS 1.3 the broker checks our certificate after our side of the handshake
            # is done, so its refusal only shows as an alert on the first read.
            detail = f"TLS refused by {self.broker} (client certificate?): {err}"
            self._failed("refused", "tls", detail)
            return
        auto = self.cfg.protocol == "auto"
        if no_connack and auto and self._v5:
            self._fall_back("closed without a CONNACK to MQTT 5")  # perhaps no MQTT 5 there
            self._failed("disconnected", "no_connack", detail, move=False)
            return
        if no_connack and auto:
            self._v5 = True  # 3.1.1 did not help either: MQTT 5 again, on the next broker
        self._failed("disconnected", "no_connack" if no_connack else "lost", detail)

    def _taken_over(self, detail: str) -> None:
        # Another unit connected with our client id (a cloned SD card): we cannot fix that
        # from here, only stop fighting over the session and tell the centre.
        self.took_over += 1  # _short_runs stays up: each further short run is one more
        log.error(
            "MQTT link: session taken over at %s: another unit uses client id %r?",
            *(self.broker, self.cfg.client_id or self.status.device.id),
        )
        # Counted as a failed attempt (unlike a plain drop: the session is lost each time it
        # is had); the count restarts at each connection, so the fault watch says takeovers
        # by ``took_over`` instead (agent.faults).
        self._failed("disconnected", "session_taken_over", detail, move=False, longest=True)

    def _on_publish(
        self, client: mqtt.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any
    ) -> None:
        self._out.on_publish(mid, reason)

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
        return status_message(self.status, state, why, self.broker)

    def _shutdown(self) -> None:
        deadline = getattr(self, "_stop_deadline", time.monotonic() + 5.0)
        if self._attempt is not None:
            self._attempt.abandon()  # a late connection is closed by its own thread
            self._attempt = None
        # Flush what is waiting while there is time: a clean stop should leave little behind.
        while self.connected and self._client is not None and time.monotonic() < deadline - 1.0:
            self._out.pump(self._client, v5=self._v5)
            if self._out.idle():
                break
            self._wait(0.05)
            self._out.flush()
        client = self._client
        if client is not None and self.connected:
            info = client.publish(
                self.topics.status, self._status("offline", "stopped"), qos=1, retain=True
            )
            end = min(deadline, time.monotonic() + 1.0)
            while not info.is_published() and self._client is client and time.monotonic() < end:
                self._wait(0.05)
            self._out.flush()
            client.on_disconnect = None
            client.disconnect()
        self._drop_client()
        self.state = "stopped"
