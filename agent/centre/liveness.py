"""Is a pole still there? Judged by the age of its last heartbeat, not by the last will alone.

A broker publishes a pole's last will only if it notices the pole is gone.  On a NATS cluster
the node that held the pole's session may itself die, and then nobody publishes the will: the
retained status says ``online`` for as long as the pole is unreachable.  So the centre also
watches the heartbeats: a pole none of whose heartbeats arrived for ``silent_after`` seconds is
offline, why ``silent``, until the next one arrives.

No message announces the heartbeat period, so it is learnt from the heartbeats themselves:
the shortest spacing of their ``ts`` (the pole's clock), which replay bursts cannot shorten
(they arrive close together but were stamped a period apart) and dropped or coalesced
heartbeats can only lengthen.  Until two have been seen, ``default_period_s`` stands in.

The rule, which the ingest's SQL (:mod:`agent.centre.ingest.store`) follows too and
``tests/centre/test_liveness_agreement.py`` holds the two to:

- every heartbeat proves life, from its arrival: a replayed one, an older one arriving late,
  one stamped by a clock that stepped back;
- it becomes the pole's *last* heartbeat when it is of the same boot with a higher ``seq``
  (a reordered older one does not), so a clock that stepped back does not freeze what
  counts as last; or of another boot that is the pole's current one (the boot of its
  birth, or of its first heartbeat) or, neither being that, stamped no earlier: an old
  boot's heartbeats replayed after a reboot never displace the new boot's (a new boot's
  heartbeat that arrives before its birth waits for it: it is proof of life meanwhile);
- a new boot forgets the period (it may run another config): a birth of another boot, or
  a heartbeat of another boot that becomes the last; an offline status does not (the pole
  is only not judged until it is heard again);
- the period is the shortest spacing of the stamps of a heartbeat and the last one it
  replaces, within one boot, of at least ``MIN_PERIOD_S`` (shorter, or backwards, is a
  clock step).

Pure and clocked from outside: ``now`` is any monotonic seconds (the monitor passes
``time.monotonic()``), so the ingest and the console can reuse it and tests inject time.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_PERIOD_S", "FACTOR", "MIN_PERIOD_S", "Liveness"]

DEFAULT_PERIOD_S = 30.0  # health.heartbeat_s's default
FACTOR = 3.0  # silent after this many periods without a heartbeat
MIN_PERIOD_S = 1.0  # health.heartbeat_s's lower bound: a shorter spacing is a clock step


@dataclass
class _Pole:
    last: float  # arrival of the last heartbeat (monotonic seconds)
    sent_ms: int | None = None  # its ts
    period_s: float | None = None  # the shortest spacing seen
    silent: bool = False
    boot: str | None = None  # of the last heartbeat
    seq: int | None = None  # of the last heartbeat
    current: str | None = None  # the pole's current boot: of its birth, or first heartbeat
    away: bool = False  # said offline: not judged until heard again


class Liveness:
    """Heartbeat ages per device; ``silent(now)`` names each newly silent device once.

    ``silent_after_s`` fixes the limit for every device; otherwise it is ``FACTOR`` times the
    device's learnt heartbeat period.
    """

    def __init__(
        self, silent_after_s: float | None = None, *, default_period_s: float = DEFAULT_PERIOD_S
    ) -> None:
        if silent_after_s is not None and silent_after_s <= 0:
            raise ValueError("silent_after_s must be positive")
        self.silent_after_s = silent_after_s
        self.default_period_s = default_period_s
        self._poles: dict[str, _Pole] = {}

    def update(
        self,
        dev: str,
        now: float,
        sent_ms: int | None = None,
        *,
        boot: str | None = None,
        seq: int | None = None,
    ) -> bool:
        """A heartbeat of ``dev`` came at ``now``, stamped ``sent_ms`` (its ``boot`` and
        ``seq`` when known); True if the device was silent."""
        pole = self._poles.get(dev)
        if pole is None:
            self._poles[dev] = _Pole(now, sent_ms, boot=boot, seq=seq, current=boot)
            return False
        if boot is not None and pole.boot is not None and boot != pole.boot:
            if _other_boot_is_newer(pole, boot, sent_ms):
                pole.boot, pole.seq, pole.sent_ms, pole.period_s = boot, seq, sent_ms, None
        elif _newer(pole, sent_ms, seq):
            if sent_ms is not None and pole.sent_ms is not None:
                gap = (sent_ms - pole.sent_ms) / 1000
                if gap >= MIN_PERIOD_S and (pole.period_s is None or gap < pole.period_s):
                    pole.period_s = gap
            pole.sent_ms, pole.seq = sent_ms, seq
            pole.boot = pole.boot if boot is None else boot
        back = pole.silent
        pole.last, pole.silent, pole.away = max(pole.last, now), False, False
        return back

    def born(self, dev: str, boot: str, now: float) -> None:
        """``dev`` said it is online (its birth, ``boot``): proof of life, and its current
        boot; another boot than before forgets the period."""
        pole = self._poles.get(dev)
        if pole is None:
            self._poles[dev] = _Pole(now, current=boot)
            return
        if boot != pole.current:
            pole.current, pole.period_s = boot, None
        # Not ``silent = False``: a pole judged silent is back when its heartbeats are (the
        # monitor says so then); its birth says online in its own line.
        pole.last, pole.away = max(pole.last, now), False

    def period(self, dev: str) -> float | None:
        """``dev``'s learnt heartbeat period; None until two heartbeats of a boot were seen."""
        pole = self._poles.get(dev)
        return None if pole is None else pole.period_s

    def forget(self, dev: str, boot: str | None = None, now: float = 0.0) -> None:
        """``dev`` said it is offline (clean stop or will, of ``boot``): no silent judgement
        until it is heard again (what was learnt of it is kept; a pole first known by its
        offline status has that boot as its current one)."""
        pole = self._poles.get(dev)
        if pole is None:
            if boot is not None:
                self._poles[dev] = _Pole(now, current=boot, away=True)
            return
        pole.away, pole.silent = True, False

    def limit(self, dev: str) -> float:
        """Seconds without a heartbeat after which ``dev`` is silent."""
        if self.silent_after_s is not None:
            return self.silent_after_s
        pole = self._poles.get(dev)
        period = pole.period_s if pole is not None and pole.period_s else self.default_period_s
        return FACTOR * period

    def age(self, dev: str, now: float) -> float | None:
        """Seconds since ``dev``'s last heartbeat; None when none was seen, or it said offline."""
        pole = self._poles.get(dev)
        return None if pole is None or pole.away else now - pole.last

    def silent(self, now: float) -> list[str]:
        """Devices that became silent since the last call, each reported once."""
        found = []
        for dev, pole in self._poles.items():
            if not pole.silent and not pole.away and now - pole.last > self.limit(dev):
                pole.silent = True
                found.append(dev)
        return sorted(found)

    def is_silent(self, dev: str) -> bool:
        pole = self._poles.get(dev)
        return pole is not None and pole.silent


def _newer(pole: _Pole, sent_ms: int | None, seq: int | None) -> bool:
    """Is a heartbeat of the pole's current boot later than its last one?  By ``seq`` when
    both are known (a clock step cannot reorder it), else by the stamps."""
    if seq is not None and pole.seq is not None:
        return seq > pole.seq
    return sent_ms is not None and (pole.sent_ms is None or sent_ms > pole.sent_ms)


def _other_boot_is_newer(pole: _Pole, boot: str, sent_ms: int | None) -> bool:
    """Does a heartbeat of ``boot`` (not the last one's) become the last?  When it is of the
    pole's current boot, or, the last one not being of that either, stamped no earlier."""
    if boot == pole.current:
        return True
    if pole.boot == pole.current:
        return False
    return sent_ms is not None and (pole.sent_ms is None or sent_ms >= pole.sent_ms)
