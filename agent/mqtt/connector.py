"""One connection attempt off the link loop: credentials, TLS files, DNS, TCP, TLS, CONNECT.

paho's ``connect()`` blocks: DNS has no bound at all, then TCP and the TLS handshake each
wait up to the connect timeout.  On the link thread that stalls ``last_progress`` and the
systemd watchdog kills the agent (habit 13).  So each attempt runs paho's own ``connect()``
on a short-lived thread named ``link-connect``, on a client the loop does not touch until
the attempt is over; the loop keeps turning and enforces a total deadline.

Why a thread per attempt and not one long-lived connector thread: a ``getaddrinfo`` that
never returns cannot be cancelled.  A single connector would be stuck behind it and the
link could not even try its next broker; with a thread per attempt the stuck one is
abandoned (its late result discarded, its socket closed) and the next attempt starts.  At
most ``MAX_HELPERS`` such threads may be alive at once, so a resolver that hangs for ever
costs a bounded number of threads, not one per retry.

The password and the TLS files are read here too, at every attempt: a technician who fixes
a file is picked up at the next attempt, without a restart.
"""

from __future__ import annotations

import contextlib
import socket
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

from agent.config.mqtt import Broker, MqttConfig
from agent.errors import ConfigError, CredentialError
from agent.mqtt.client import ClientSetupError, client_spec, new_client

__all__ = ["MAX_HELPERS", "SESSION_EXPIRY_S", "Attempt", "Connector", "Outcome"]

MAX_HELPERS = 3  # attempt threads alive at once (stuck ones included)
SESSION_EXPIRY_S = 24 * 3600  # the broker keeps queued commands for a day offline


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended: a client with CONNECT sent, or why not."""

    client: mqtt.Client | None
    state: str = "connecting"  # connecting (CONNECT sent), refused or disconnected
    why: str | None = None  # credentials, tls, dns, timeout, unreachable
    detail: str = ""
    file: str | None = None
    socket_error: str | None = None


def close_client(client: mqtt.Client) -> None:
    """Close a client's socket without any callback (the loop never saw this client)."""
    client.on_disconnect = None
    client.on_log = None
    sock = client.socket()
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()


class Attempt:
    """One attempt on its own thread; the loop polls ``outcome`` or calls ``abandon()``."""

    def __init__(
        self,
        broker: Broker,
        timeout_s: float,
        prepare: Callable[[], mqtt.Client],
        connect: Callable[[mqtt.Client], MQTTErrorCode],
        wake: Callable[[], None],
    ) -> None:
        self.broker = broker
        self.deadline = time.monotonic() + timeout_s
        self.timeout_s = timeout_s
        self.phase = "setup"  # setup, dns, connect (TCP, TLS, CONNECT), done
        self._prepare = prepare
        self._connect = connect
        self._wake = wake
        self._lock = threading.Lock()
        self._outcome: Outcome | None = None
        self._abandoned = False
        self._socket_error: str | None = None
        self.thread = threading.Thread(target=self._run, name="link-connect", daemon=True)

    def start(self) -> Attempt:
        self.thread.start()
        return self

    @property
    def outcome(self) -> Outcome | None:
        with self._lock:
            return self._outcome

    def expired(self, now: float) -> bool:
        return now > self.deadline

    def abandon(self) -> Outcome:
        """Give up on it: a late completion is discarded and its socket closed."""
        with self._lock:
            self._abandoned = True
            if self._outcome is not None and self._outcome.client is not None:
                close_client(self._outcome.client)
        where = {"dns": "resolving the name", "setup": "reading the credentials"}
        doing = where.get(self.phase, "opening TCP/TLS")
        return Outcome(
            None,
            "disconnected",
            "dns" if self.phase == "dns" else "timeout",
            f"no connection to {self.broker} within {self.timeout_s:g}s (stuck {doing})",
        )

    def _on_log(self, _c: mqtt.Client, _u: Any, level: int, buf: str) -> None:
        if level == mqtt.MQTT_LOG_ERR and "socket" in buf:
            self._socket_error = buf

    def _run(self) -> None:
        client: mqtt.Client | None = None
        try:
            client = self._prepare()
            client.on_log = self._on_log
            self.phase = "dns"
            socket.getaddrinfo(self.broker.host, self.broker.port, type=socket.SOCK_STREAM)
            self.phase = "connect"
            rc = self._connect(client)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                close_client(client)
                why = f": {self._socket_error}" if self._socket_error else ""
                outcome = Outcome(
                    None, "disconnected", "unreachable", f"{self.broker} closed at once{why}"
                )
            else:
                outcome = Outcome(client, socket_error=self._socket_error)
        except Exception as exc:  # noqa: BLE001 - every failure is an outcome, never a crash
            if client is not None:
                close_client(client)
            outcome = self._failure(exc)
        self.phase = "done"
        with self._lock:
            if self._abandoned:
                if outcome.client is not None:
                    close_client(outcome.client)
                return
            self._outcome = outcome
        self._wake()

    def _failure(self, exc: BaseException) -> Outcome:
        where = self.broker
        if isinstance(exc, ClientSetupError):
            return Outcome(None, "refused", "tls", str(exc), exc.file)
        if isinstance(exc, CredentialError):
            return Outcome(None, "refused", "credentials", str(exc), exc.path)
        if isinstance(exc, ConfigError):
            return Outcome(None, "refused", "credentials", "; ".join(exc.problems))
        if isinstance(exc, ssl.SSLError):  # before OSError: it is one
            return Outcome(None, "refused", "tls", f"TLS handshake with {where} failed: {exc}")
        if isinstance(exc, socket.gaierror):
            return Outcome(None, "disconnected", "dns", f"cannot resolve {where.host}: {exc}")
        if isinstance(exc, TimeoutError):
            return Outcome(None, "disconnected", "timeout", f"{where} did not answer: {exc}")
        if isinstance(exc, OSError | ValueError):
            return Outcome(None, "disconnected", "unreachable", f"cannot reach {where}: {exc}")
        return Outcome(None, "disconnected", "unreachable", f"connecting to {where}: {exc!r}")


class Connector:
    """Starts attempts; refuses a new one while ``MAX_HELPERS`` threads are still alive."""

    def __init__(self, cfg: MqttConfig, client_id: str, wake: Callable[[], None]) -> None:
        self.cfg = cfg
        self.client_id = client_id
        self._wake = wake
        self._threads: list[threading.Thread] = []

    def busy(self) -> bool:
        self._threads = [t for t in self._threads if t.is_alive()]
        return len(self._threads) >= MAX_HELPERS

    def start(self, broker: Broker, *, v5: bool, will: tuple[str, bytes]) -> Attempt:
        """Connect to ``broker`` on a new thread; the loop polls the returned attempt."""
        cfg = self.cfg

        def prepare() -> mqtt.Client:
            # The password and TLS files are read afresh at each attempt.
            password = cfg.resolve_password()
            client = new_client(client_spec(cfg, self.client_id, password, v5=v5))
            client.max_inflight_messages_set(cfg.max_inflight)
            client.max_queued_messages_set(0)
            client.will_set(will[0], will[1], qos=1, retain=True)
            return client

        def connect(client: mqtt.Client) -> MQTTErrorCode:
            props = None
            if v5:
                props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                props.SessionExpiryInterval = SESSION_EXPIRY_S
            return client.connect(
                broker.host,
                broker.port,
                keepalive=cfg.keepalive_s,
                clean_start=False if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                properties=props,
            )

        attempt = Attempt(broker, cfg.connect_timeout_s, prepare, connect, self._wake).start()
        self._threads.append(attempt.thread)
        return attempt
