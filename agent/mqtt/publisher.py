"""Spool rows out to the broker, PUBACKs back into the spool, poison rows set aside.

Runs on the link thread only (no locks): ``pump`` publishes what fits in the in-flight
window, ``on_publish`` turns a PUBACK into an ack, ``flush`` deletes acked rows in one
commit, ``lost`` is told when the connection dropped.  A row leaves the spool only on its
PUBACK or when it is set aside as poison.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from agent.events import now_ms
from agent.logs import Throttle
from agent.mqtt.poison import RowGuard
from agent.spool import Spool, SpoolRow

__all__ = ["REFUSED_RETRY_S", "DeadLetter", "Publisher", "inject_sent_time"]

log = logging.getLogger("agent.mqtt.link")

DeadLetter = Callable[[SpoolRow, str], None]
REFUSED_RETRY_S = 30.0  # a publish the broker refused (ACL) is tried again after this


def inject_sent_time(payload: bytes) -> bytes:
    # Events are encoded as {"v":1,"id":…}; the send time is added here, at publish, so
    # a replayed event shows both when it happened and when it finally left.
    if payload.startswith(b'{"v":1,"id":'):
        return b'{"st":%d,' % now_ms() + payload[1:]
    return payload


class Publisher:
    """The in-flight window between the spool and one connection at a time."""

    def __init__(self, spool: Spool, max_inflight: int, dead_letter: DeadLetter | None) -> None:
        self.spool = spool
        self.max_inflight = max_inflight
        self.guard = RowGuard()
        self._dead_letter = dead_letter
        self._inflight: dict[int, tuple[SpoolRow, float]] = {}  # mid -> row, when sent
        self._acked: list[int] = []
        self._refused: dict[int, float] = {}  # row id -> monotonic time to retry
        self._aside: set[int] = set()  # set aside, in case a dead_letter left them queued
        self._log_gate = Throttle(60.0)
        self._epoch = 0  # one per connection: a publish that outlived its connection is void
        self.published = 0
        self.delivered = 0
        self.dead = 0

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def idle(self) -> bool:
        """Nothing in flight and nothing left to send."""
        return not self._inflight and not self.spool.next_batch(1, exclude=self._aside)

    def pump(self, client: mqtt.Client, *, v5: bool) -> None:
        """Publish what fits in the window, alarms first; a suspect row goes alone."""
        free = self.max_inflight - len(self._inflight)
        if free <= 0 or any(self.guard.suspect(r.id) for r, _ in self._inflight.values()):
            return
        now = time.monotonic()
        self._refused = {r: t for r, t in self._refused.items() if t > now}
        busy = {r.id for r, _ in self._inflight.values()} | set(self._refused) | self._aside
        for row in self.spool.next_batch(free, exclude=busy):
            payload = inject_sent_time(row.payload)
            too_large = self.guard.too_large(row.topic, payload, v5=v5)
            if too_large is not None:
                self._set_aside(row, too_large)
                continue
            suspect = self.guard.suspect(row.id)
            if suspect and self._inflight:
                break  # wait until it can go alone, so that a drop is surely its own
            epoch = self._epoch
            info = client.publish(row.topic, payload, qos=1, retain=row.retain)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS or self._epoch != epoch:
                break  # connection lost mid-batch; the rows stay in the spool
            self._inflight[info.mid] = (row, now)
            self.published += 1
            if suspect:
                break

    def on_publish(self, mid: int, reason: ReasonCode) -> None:
        entry = self._inflight.pop(mid, None)
        if entry is None:
            return  # birth, offline or another message outside the spool
        row = entry[0]
        self.guard.delivered(row.id)
        if reason.is_failure:
            self._refused[row.id] = time.monotonic() + REFUSED_RETRY_S
            if self._log_gate.ready("refused"):
                log.warning("MQTT link: broker refused a publish (%s); check its ACL", reason)
            return
        self._acked.append(row.id)

    def flush(self) -> None:
        if self._acked:
            acked, self._acked = self._acked, []
            self.spool.ack_many(acked)
            self.delivered += len(acked)

    def lost(self, *, was_connected: bool) -> bool:
        """The connection is gone; True when the drop was counted against a row."""
        blamed = False
        first = next(iter(self._inflight.values()), None)
        if was_connected and first is not None:
            row, sent_at = first  # the oldest unacknowledged row
            strikes = self.guard.blame(row.id, sent_at, time.monotonic())
            if strikes >= self.guard.max_strikes:
                self._set_aside(row, f"broker_drops: the connection dropped {strikes} times")
            blamed = strikes > 0
        self._inflight.clear()
        self._epoch += 1
        return blamed

    def _set_aside(self, row: SpoolRow, reason: str) -> None:
        self.dead += 1
        self._aside.add(row.id)
        self.guard.forget(row.id)
        log.error(
            "MQTT link: set aside spool row %d on %s (%d bytes): %s",
            *(row.id, row.topic, len(row.payload), reason),
        )
        if self._dead_letter is None:
            self.spool.ack_many([row.id])
            return
        try:
            self._dead_letter(row, reason)
        except Exception:
            log.exception("MQTT link: the dead-letter hook failed on row %d", row.id)
