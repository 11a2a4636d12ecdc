"""One ingest worker: a persistent MQTT 5 session in a shared subscription, batched writes,
acknowledgements only after COMMIT.

paho delivers each message on its network thread; the message is parsed there and queued.
The writer (the caller's thread) takes up to ``batch_max`` messages or ``batch_wait_s``,
writes them in one transaction, and only then sends each PUBACK (paho's manual ack).  A
worker killed at any point leaves its unacknowledged messages in its broker session, which
delivers them again when the worker (same client id) comes back.  The broker never has more
than ``inflight`` unacknowledged messages out to one worker (MQTT 5 Receive Maximum), which
bounds the queue.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.centre.ingest.records import Ignore, Record, Reject, parse
from agent.centre.ingest.store import Store, Written
from agent.centre.ingest.sweeper import GapSweeper
from agent.centre.monitor import connect_client
from agent.centre.sender import BrokerAccess

__all__ = ["BatchWriter", "Counts", "IngestSettings", "IngestWorker"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestSettings:
    db: str
    access: BrokerAccess = field(default_factory=BrokerAccess)
    group: str = "ingest"
    index: int = 0
    prefix: str = "pole"
    batch_max: int = 500
    batch_wait_s: float = 0.05
    inflight: int = 2000
    session_expiry_s: int = 24 * 3600
    reorder_window_s: float = 30.0
    silent_after_s: float = 90.0
    nats: tuple[str, ...] = ()  # NATS servers: consume the JetStream consumer instead of MQTT
    ack_wait_s: float = 30.0  # NATS: an unacknowledged message is delivered again after this

    @property
    def client_id(self) -> str:
        return f"ingest-{self.group}-{self.index}"

    @property
    def topic_filter(self) -> str:
        return f"$share/{self.group}/{self.prefix}/+/+/#"


@dataclass
class _Delivery:
    conn: int  # which connection it came on: a PUBACK on a later one would ack another message
    mid: int
    qos: int
    record: Record


@dataclass
class Counts:
    events: int = 0
    duplicates: int = 0
    rejected: int = 0
    other: int = 0
    batches: int = 0
    retries: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class BatchWriter:
    """One batch of records into the database, whatever broker they came from.

    :meth:`commit` returns True once the batch is committed (or had nothing to store), and
    only then may the caller acknowledge its messages to the broker.  A database outage is
    retried with backoff; a batch whose content the database refuses (not an outage) is
    written one record at a time and the refused record is set aside, logged.
    """

    def __init__(self, db: str, name: str) -> None:
        self.name = name
        self.counts = Counts()
        self.store = Store(db)

    def commit(self, batch: list[Record], stop: threading.Event) -> bool:
        """Write, counting; False if ``stop`` came while the database was away (no ack)."""
        records: list[Record] = []
        for r in batch:
            if isinstance(r, Reject):
                self.counts.rejected += 1
                log.warning("%s: rejected %s: %s", self.name, r.topic, r.why)
            elif isinstance(r, Ignore):
                self.counts.other += 1
            else:
                records.append(r)
        delay = 0.5
        while records:
            try:
                written = self._write(records)
                break
            except psycopg.OperationalError as exc:  # also deadlocks: all of it again
                self.counts.retries += 1
                log.warning("%s: database: %s; retrying in %.1f s", self.name, exc, delay)
                if stop.wait(delay):
                    return False  # stopping with the batch unwritten: the broker keeps it
                delay = min(delay * 2, 10.0)
        else:
            written = Written(0, 0)
        self.counts.events += written.events
        self.counts.duplicates += written.duplicates
        self.counts.batches += 1
        return True

    def _write(self, records: list[Record]) -> Written:
        """The batch in one transaction; if the database refuses its content (not an outage),
        each record alone, setting aside the ones it refuses."""
        try:
            return self.store.write(records)
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            log.warning("%s: batch refused (%s); writing one by one", self.name, exc)
        events = duplicates = 0
        for r in records:
            try:
                w = self.store.write([r])
            except psycopg.OperationalError:
                raise
            except psycopg.Error as exc:
                self.counts.rejected += 1
                log.warning("%s: the database refused a record: %s", self.name, exc)
                continue
            events += w.events
            duplicates += w.duplicates
        return Written(events, duplicates)

    def close(self) -> None:
        self.store.close()


class IngestWorker:
    """Consume until ``stop`` is set; ``counts`` says what was stored."""

    @property
    def counts(self) -> Counts:
        return self.writer.counts

    def __init__(self, settings: IngestSettings) -> None:
        self.s = settings
        self.writer = BatchWriter(settings.db, settings.client_id)
        self._queue: queue.Queue[_Delivery] = queue.Queue()
        self._conn_no = 0
        self._lock = threading.Lock()
        a = settings.access
        self.client = connect_client(
            a.host, a.port, username=a.username, password=a.password, tls_ca=a.ca,
            tls_cert=a.cert, tls_key=a.key, client_id=settings.client_id,
        )  # fmt: skip
        self.client.manual_ack_set(True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # the SUBACK came: publishing from now on is kept

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("%s: broker refused: %s", self.s.client_id, reason)
            return
        with self._lock:
            self._conn_no += 1
        client.subscribe(self.s.topic_filter, qos=1)
        self.connected.set()
        log.info("%s: connected; subscribing to %s", self.s.client_id, self.s.topic_filter)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, codes: Any, _p: Any) -> None:
        """The SUBACK.  Until it came, a ``$share`` group without this worker drops what
        poles publish (mosquitto keeps no messages for absent members), so this one line is
        what tests, benches and operators wait for: ``<client id>: subscribed to <filter>``."""
        failed = [c for c in codes if c.is_failure]
        if failed:
            log.error("%s: broker refused the subscription: %s", self.s.client_id, failed[0])
            return
        self.subscribed.set()
        log.info("%s: subscribed to %s", self.s.client_id, self.s.topic_filter)

    def _on_disconnect(self, *_a: Any) -> None:
        self.connected.clear()
        self.subscribed.clear()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        record = parse(self.s.prefix, msg.topic, bytes(msg.payload))
        with self._lock:
            conn = self._conn_no
        self._queue.put(_Delivery(conn, msg.mid, msg.qos, record))

    def run(self, stop: threading.Event) -> Counts:
        """Connect, consume and write until ``stop``; the sweeper runs alongside."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.s.session_expiry_s
        props.ReceiveMaximum = self.s.inflight
        self.client.connect_async(
            self.s.access.host, self.s.access.port, keepalive=30, clean_start=False,
            properties=props,
        )  # fmt: skip
        sweeper = GapSweeper(
            self.s.db, window_s=self.s.reorder_window_s, silent_after_s=self.s.silent_after_s
        ).start()
        self.client.loop_start()
        try:
            while not stop.is_set():
                batch = self._take(stop)
                if batch:
                    self._commit(batch, stop)
        finally:
            self.client.disconnect()
            self.client.loop_stop()
            sweeper.stop()
            self.writer.close()
        return self.counts

    def _take(self, stop: threading.Event) -> list[_Delivery]:
        try:
            batch = [self._queue.get(timeout=0.2)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.s.batch_wait_s
        while len(batch) < self.s.batch_max and not stop.is_set():
            left = deadline - time.monotonic()
            try:
                batch.append(
                    self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                )
            except queue.Empty:
                break
        return batch

    def _commit(self, batch: list[_Delivery], stop: threading.Event) -> None:
        if self.writer.commit([d.record for d in batch], stop):
            self._ack(batch)

    def _ack(self, batch: list[_Delivery]) -> None:
        with self._lock:
            current = self._conn_no
        for d in batch:
            if d.qos > 0 and d.conn == current:
                self.client.ack(d.mid, d.qos)
