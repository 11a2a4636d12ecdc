"""One ingest worker on NATS: a durable JetStream pull consumer shared by every worker of a
group, batched writes, acknowledgements only after COMMIT.

NATS has no MQTT ``$share``.  Its MQTT layer (2.9) writes every QoS 1 PUBLISH into the
JetStream stream ``$MQTT_msgs`` on the subject ``$MQTT.msgs.<subject>``, where the MQTT topic
``a/b/c`` is the NATS subject ``a.b.c``.  The stream keeps a message while some consumer has
not acknowledged it (interest retention), so the ingest's **durable** consumer
``ingest-<group>`` (filter ``$MQTT.msgs.<prefix>.>``, explicit acks) holds every pole's
message from the moment it is created, whether a worker is connected or not, replicated like
the stream.  Workers pull batches from it; JetStream hands each message to one of them.  A
message not acknowledged within ``ack_wait`` (a worker killed before its COMMIT) is delivered
again, to any worker: at least once, and the writes are idempotent.

nats-py is asyncio: the worker runs its own event loop in the calling thread; the database
write runs in a helper thread (``asyncio.to_thread``) while the next batch is fetched.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import threading
import time

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext

from agent.centre.ingest.records import parse
from agent.centre.ingest.sweeper import GapSweeper
from agent.centre.ingest.worker import BatchWriter, Counts, IngestSettings

__all__ = ["MQTT_STREAM", "NatsIngestWorker", "consumer_name", "topic_of"]

log = logging.getLogger(__name__)

MQTT_STREAM = "$MQTT_msgs"  # where NATS' MQTT layer stores QoS 1 messages
_SUBJECTS = "$MQTT.msgs."
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def topic_of(subject: str) -> str:
    """``$MQTT.msgs.pole.s1.p1.event.bell`` -> ``pole/s1/p1/event/bell``.

    NATS refuses ``.`` in MQTT topics, so every ``.`` after the prefix was a ``/``.
    """
    return subject.removeprefix(_SUBJECTS).replace(".", "/")


def consumer_name(group: str) -> str:
    """The durable consumer of an ingest group; a NATS name has no ``.``, ``*``, ``>``."""
    if not _NAME.match(group):
        raise ValueError(f"ingest group {group!r}: use letters, digits, '-' and '_' on NATS")
    return f"ingest-{group}"


def _tls(s: IngestSettings) -> ssl.SSLContext | None:
    a = s.access
    if not a.ca:
        return None
    ctx = ssl.create_default_context(cafile=a.ca)
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)
    return ctx


class NatsIngestWorker:
    """Consume until ``stop`` is set; ``counts`` says what was stored.

    ``server`` is the NATS node the worker is connected to now; ``connected`` is set once its
    consumer is bound.
    """

    def __init__(self, settings: IngestSettings) -> None:
        if not settings.nats:
            raise ValueError("NatsIngestWorker needs settings.nats (nats://host:port, ...)")
        self.s = settings
        self.durable = consumer_name(settings.group)
        self.writer = BatchWriter(settings.db, settings.client_id)
        self.connected = threading.Event()
        self.server: str | None = None
        self.reconnects = 0

    @property
    def counts(self) -> Counts:
        return self.writer.counts

    def run(self, stop: threading.Event) -> Counts:
        """Connect, consume and write until ``stop``; the sweeper runs alongside."""
        sweeper = GapSweeper(
            self.s.db, window_s=self.s.reorder_window_s, silent_after_s=self.s.silent_after_s
        ).start()
        try:
            asyncio.run(self._main(stop))
        finally:
            sweeper.stop()
            self.writer.close()
        return self.counts

    # ------------------------------------------------------------------ connection
    async def _connect(self, stop: threading.Event) -> NatsClient | None:
        async def disconnected() -> None:
            if not nc.is_closed:
                log.warning("%s: disconnected from %s", self.s.client_id, self.server)
            self.server = None

        async def reconnected() -> None:
            self.reconnects += 1
            self._note_server(nc)
            log.warning("%s: reconnected to %s", self.s.client_id, self.server)

        async def error(exc: Exception) -> None:
            log.debug("%s: nats: %r", self.s.client_id, exc)

        a = self.s.access
        nc = NatsClient()
        while not stop.is_set():
            try:
                await nc.connect(
                    servers=list(self.s.nats), name=self.s.client_id, user=a.username,
                    password=a.password, tls=_tls(self.s), connect_timeout=2,
                    reconnect_time_wait=1, max_reconnect_attempts=-1, ping_interval=5,
                    max_outstanding_pings=2, disconnected_cb=disconnected,
                    reconnected_cb=reconnected, error_cb=error,
                )  # fmt: skip
            except (nats.errors.Error, OSError) as exc:
                log.warning("%s: cannot reach NATS (%r); retrying", self.s.client_id, exc)
                await asyncio.sleep(1.0)
                continue
            self._note_server(nc)
            log.info("%s: connected to %s", self.s.client_id, self.server)
            return nc
        return None

    def _note_server(self, nc: NatsClient) -> None:
        url = nc.connected_url
        self.server = f"{url.hostname}:{url.port}" if url is not None else None

    async def _bind(
        self, js: JetStreamContext, stop: threading.Event
    ) -> JetStreamContext.PullSubscription | None:
        """Create (or update) the group's durable consumer, then bind to it; retried while
        the stream is missing (no MQTT client yet) or JetStream has no leader (a node died)."""
        config = ConsumerConfig(
            durable_name=self.durable,
            description="pole-agent centre ingest",
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.s.ack_wait_s,
            max_deliver=-1,
            max_ack_pending=self.s.inflight,
            filter_subject=f"{_SUBJECTS}{self.s.prefix}.>",
        )
        while not stop.is_set():
            try:
                await js.add_consumer(MQTT_STREAM, config)
                return await js.pull_subscribe_bind(durable=self.durable, stream=MQTT_STREAM)
            except nats.js.errors.NotFoundError:
                log.warning(
                    "%s: no stream %s yet (NATS makes it when the first MQTT client connects); "
                    "retrying", self.s.client_id, MQTT_STREAM,
                )  # fmt: skip
            except (nats.errors.Error, OSError) as exc:
                log.warning("%s: consumer %s: %r; retrying", self.s.client_id, self.durable, exc)
            await asyncio.sleep(1.0)
        return None

    # ------------------------------------------------------------------ the loop
    async def _main(self, stop: threading.Event) -> None:
        nc = await self._connect(stop)
        if nc is None:
            return
        try:
            sub = await self._bind(nc.jetstream(timeout=5.0), stop)
            if sub is None:
                return
            log.info("%s: pulling from %s/%s", self.s.client_id, MQTT_STREAM, self.durable)
            self.connected.set()
            batches: asyncio.Queue[list[Msg]] = asyncio.Queue(maxsize=1)
            fetcher = asyncio.create_task(self._fetch(sub, batches, stop))
            try:
                await self._write(batches, stop)
            finally:
                fetcher.cancel()
                await asyncio.gather(fetcher, return_exceptions=True)
                await self._release(batches)
        finally:
            self.connected.clear()
            await nc.close()

    async def _fetch(
        self,
        sub: JetStreamContext.PullSubscription,
        batches: asyncio.Queue[list[Msg]],
        stop: threading.Event,
    ) -> None:
        """Pull up to ``batch_max`` messages, waiting at most ``batch_wait_s`` after the
        first; hand them to the writer (one batch ahead of it at most)."""
        while not stop.is_set():
            try:
                msgs = await sub.fetch(self.s.batch_max, timeout=1.0)
            except nats.errors.TimeoutError:
                continue  # nothing for a second (or no answer while a node dies)
            except (nats.errors.Error, OSError) as exc:
                log.warning("%s: fetch: %r", self.s.client_id, exc)
                await asyncio.sleep(0.5)
                continue
            deadline = time.monotonic() + self.s.batch_wait_s
            while len(msgs) < self.s.batch_max and (left := deadline - time.monotonic()) > 0.002:
                try:
                    msgs += await sub.fetch(self.s.batch_max - len(msgs), timeout=left)
                except (nats.errors.Error, OSError):
                    break
            await batches.put(msgs)

    async def _write(self, batches: asyncio.Queue[list[Msg]], stop: threading.Event) -> None:
        """Commit each batch, then acknowledge its messages."""
        prefix = self.s.prefix
        while not stop.is_set():
            try:
                msgs = await asyncio.wait_for(batches.get(), 0.5)
            except TimeoutError:
                continue

            def commit(msgs: list[Msg] = msgs) -> bool:
                records = [parse(prefix, topic_of(m.subject), m.data) for m in msgs]
                return self.writer.commit(records, stop)

            if not await asyncio.to_thread(commit):
                await self._nak(msgs)  # stopping with the database away
                return
            for m in msgs:
                try:
                    await m.ack()
                except nats.errors.Error as exc:  # delivered again after ack_wait: a duplicate
                    log.warning("%s: ack: %r", self.s.client_id, exc)
                    break

    async def _release(self, batches: asyncio.Queue[list[Msg]]) -> None:
        """On a clean stop, give back what was fetched and not written: delivered again at
        once to another worker instead of after ``ack_wait``."""
        while not batches.empty():
            await self._nak(batches.get_nowait())

    async def _nak(self, msgs: list[Msg]) -> None:
        for m in msgs:
            try:
                await m.nak()
            except nats.errors.Error:
                return
