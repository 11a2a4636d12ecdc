"""Rows the broker will never take: too large for it, or dropping the connection each time.

A row larger than the broker's maximum packet size makes it close the connection, every
time: without a guard the link reconnects for ever and nothing behind the row leaves.
With MQTT 5 the broker says its limit in CONNACK and such a row is set aside before it is
sent.  Without a stated limit (MQTT 3.1.1, or a broker that says nothing) the guard counts
strikes: a connection that drops within ``WINDOW_S`` of publishing a row counts against
the oldest unacknowledged row; a row with a strike is then sent alone, so the next drop is
its own, and after ``MAX_STRIKES`` it is set aside.  Counts live in memory (per boot).
"""

from __future__ import annotations

__all__ = ["MAX_STRIKES", "WINDOW_S", "RowGuard", "publish_size"]

MAX_STRIKES = 3
WINDOW_S = 10.0


def _varint_len(n: int) -> int:
    size = 1
    while n >= 128:
        n //= 128
        size += 1
    return size


def publish_size(topic: str, payload: bytes, *, v5: bool) -> int:
    """Bytes of a QoS 1 PUBLISH packet without properties, as the broker counts them."""
    rest = 2 + len(topic.encode()) + 2 + len(payload) + (1 if v5 else 0)
    return 1 + _varint_len(rest) + rest


class RowGuard:
    """Strikes per spool row id, and the broker's stated maximum packet size."""

    def __init__(self, max_strikes: int = MAX_STRIKES, window_s: float = WINDOW_S) -> None:
        self.max_strikes = max_strikes
        self.window_s = window_s
        self.max_packet: int | None = None  # from CONNACK; None when the broker said nothing
        self._strikes: dict[int, int] = {}

    def too_large(self, topic: str, payload: bytes, *, v5: bool) -> str | None:
        """Why this message can never be sent to this broker; None when it can."""
        if self.max_packet is None:
            return None
        size = publish_size(topic, payload, v5=v5)
        if size <= self.max_packet:
            return None
        return f"too_large: {size} bytes, the broker takes at most {self.max_packet}"

    def suspect(self, row_id: int) -> bool:
        """A row with a strike: send it alone, with nothing after it until its PUBACK."""
        return row_id in self._strikes

    def delivered(self, row_id: int) -> None:
        self._strikes.pop(row_id, None)

    def blame(self, row_id: int, sent_at: float, dropped_at: float) -> int:
        """The connection dropped with this row oldest in flight: its strikes so far.

        0 when it was sent too long before the drop to be blamed; ``max_strikes`` means
        set it aside (its count is then forgotten).
        """
        if dropped_at - sent_at > self.window_s:
            return 0
        strikes = self._strikes.get(row_id, 0) + 1
        if strikes >= self.max_strikes:
            self._strikes.pop(row_id, None)
        else:
            self._strikes[row_id] = strikes
        return strikes

    def forget(self, row_id: int) -> None:
        self._strikes.pop(row_id, None)

    @property
    def suspects(self) -> int:
        return len(self._strikes)
