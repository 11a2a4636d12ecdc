"""`pole-agent monitor`: the centre's view of one pole or a whole site, in a terminal.

Subscribes, validates every message against the contract, deduplicates by event id,
reports seqs lost per boot (after the reorder window, :mod:`agent.centre.gaps`) and devices
going online/offline: by their status messages, and by the age of their last heartbeat
(:mod:`agent.centre.liveness`), since a broker may never publish a will.  Technicians use it to
see that a pole works; the tests and the demo use it too.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from pydantic import ValidationError

from agent import events as ev
from agent.centre.gaps import DEFAULT_WINDOW_S, Gap, SeqTracker, dropped_ranges
from agent.centre.liveness import Liveness
from agent.mqtt.client import ClientSpec, new_client

__all__ = ["Monitor", "MonitorView", "connect_client"]

DEDUP_WINDOW = 10_000

log = logging.getLogger(__name__)


@dataclass
class MonitorView:
    """Pure message handling (no network): feed (topic, payload), get lines to print."""

    colour: bool = False
    seen: OrderedDict[str, None] = field(default_factory=OrderedDict)
    tracker: SeqTracker = field(default_factory=SeqTracker)
    liveness: Liveness = field(default_factory=Liveness)
    clock: Callable[[], float] = time.monotonic
    online: dict[str, bool] = field(default_factory=dict)
    counts: dict[str, int] = field(
        default_factory=lambda: {"events": 0, "duplicates": 0, "invalid": 0, "gaps": 0}
    )

    def _paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour else text

    def handle(self, topic: str, payload: bytes, retained: bool = False) -> list[str]:
        parts = topic.split("/")
        if len(parts) < 4:
            return []
        leaf = parts[3] if len(parts) > 3 else ""
        dev = parts[2]
        if leaf == "status":
            return self._status(payload)
        if leaf == "state":
            return self._state(dev, parts[-1], payload)
        if leaf == "snapshot":
            return [f"{dev} snapshot for {parts[-1]}: {len(payload)} bytes JPEG"]
        if leaf in {"event", "heartbeat", "cmd-result"}:
            return self._event(topic, payload)
        if leaf == "cmd":
            return [f"{dev} command sent on {topic}"]
        return []

    def _status(self, payload: bytes) -> list[str]:
        try:
            msg = ev.StatusMessage.model_validate_json(payload)
        except ValidationError as exc:
            self.counts["invalid"] += 1
            return [self._paint(f"INVALID status: {_first_error(exc)}", "33")]
        self.online[msg.dev] = msg.state == "online"
        if msg.state == "offline":
            # it said goodbye (or its will did): not silent
            self.liveness.forget(msg.dev, msg.boot, self.clock())
        else:
            self.liveness.born(msg.dev, msg.boot, self.clock())  # its current boot
        if msg.state == "online":
            where = " ".join(x for x in (msg.pole, msg.place, msg.addr) if x)
            return [self._paint(f"{msg.dev} ONLINE  v{msg.ver} boot {msg.boot} {where}", "32")]
        return [self._paint(f"{msg.dev} OFFLINE ({msg.why}) boot {msg.boot}", "31")]

    def _state(self, dev: str, name: str, payload: bytes) -> list[str]:
        try:
            msg = ev.StateMessage.model_validate_json(payload)
        except ValidationError as exc:
            self.counts["invalid"] += 1
            return [self._paint(f"INVALID state/{name}: {_first_error(exc)}", "33")]
        return [f"{dev} state/{name} = {msg.state}"]

    def _event(self, topic: str, payload: bytes) -> list[str]:
        try:
            event = ev.decode_event(payload)
        except ValidationError as exc:
            self.counts["invalid"] += 1
            return [self._paint(f"INVALID message on {topic}: {_first_error(exc)}", "33")]
        if event.id in self.seen:
            self.counts["duplicates"] += 1
            return []
        self.seen[event.id] = None
        if len(self.seen) > DEDUP_WINDOW:
            self.seen.popitem(last=False)
        self.counts["events"] += 1
        gaps = self.tracker.see(event.dev, event.boot, event.seq)
        if isinstance(event, ev.SystemEvent) and event.what == "spool" and event.data:
            gaps += self.tracker.dropped(event.dev, event.boot, dropped_ranges(event.data))
        lines = self._gap_lines(gaps)
        if isinstance(event, ev.HealthEvent) and self.liveness.update(
            event.dev, self.clock(), event.ts, boot=event.boot, seq=event.seq
        ):
            self.online[event.dev] = True
            lines.append(self._paint(f"{event.dev} ONLINE  (heartbeats again)", "32"))
        return [*lines, self._describe(event)]

    def tick(self) -> list[str]:
        """Lines for the seqs whose reorder window has just passed, and for devices whose
        heartbeats stopped (each ``OFFLINE (silent)`` once): call about once a second."""
        lines = self._gap_lines(self.tracker.expire())
        now = self.clock()
        for dev in self.liveness.silent(now):
            self.online[dev] = False
            age = self.liveness.age(dev, now) or 0.0
            text = f"{dev} OFFLINE (silent) no heartbeat for {age:.0f}s"
            lines.append(self._paint(text, "31"))
        return lines

    def _gap_lines(self, gaps: list[Gap]) -> list[str]:
        lines = []
        for g in gaps:
            if g.state == "late":
                lines.append(self._paint(f"{g.dev} LATE: seq {g.first} arrived after all", "36"))
                continue
            self.counts["gaps"] += 1
            why = (
                "dropped by the pole"
                if g.why == "dropped_by_pole"
                else f"not arrived within {self.tracker.window_s:g} s"
            )
            lines.append(self._paint(f"{g.dev} GAP: seq {g.first}..{g.last} lost ({why})", "33"))
        return lines

    def _describe(self, e: Any) -> str:
        when = time.strftime("%H:%M:%S", time.localtime(e.ts / 1000))
        late = f" (sent +{(e.st - e.ts) / 1000:.1f}s)" if e.st and e.st - e.ts > 2000 else ""
        test = " [TEST]" if e.test else ""
        head = f"{when} {e.dev} #{e.seq}"
        if isinstance(e, ev.BellEvent):
            loc = f" at pole {e.loc.pole} ({e.loc.lat:.5f},{e.loc.lon:.5f})" if e.loc else ""
            held = f" held {e.held / 1000:.1f}s" if e.held is not None else ""
            text = f"{head} BELL {e.ev.upper()} {e.inp}{held}{loc}{test}{late}"
            alarm = e.ev in {"pressed", "activated", "stuck"} and not e.test
            return self._paint(text, "1;41" if alarm else "35")
        if isinstance(e, ev.ObjectEvent):
            zones = f" in {','.join(e.zones)}" if e.zones else ""
            why = f" ({e.why})" if e.why else ""
            return f"{head} object {e.ev} {e.cam}#{e.tid} {e.cls} {e.sc:.2f}{zones}{why}{late}"
        if isinstance(e, ev.RuleEvent):
            extra = f" n={e.n}" if e.n is not None else ""
            text = f"{head} RULE {e.type} {e.rule} {e.cam}/{e.zone} tracks {e.tids}{extra}{late}"
            return self._paint(text, "1;33")
        if isinstance(e, ev.CameraEvent):
            return self._paint(f"{head} CAMERA {e.cam} {e.ev} {e.why or ''}{late}", "36")
        if isinstance(e, ev.SystemEvent):
            colour = "1;31" if e.ev == "fault" else "32" if e.ev == "cleared" else "36"
            return self._paint(f"{head} SYSTEM {e.what} {e.ev.upper()}: {e.why}{late}", colour)
        if isinstance(e, ev.HealthEvent):
            return (
                f"{head} heartbeat up {e.up}s, {_spool_words(e.spool)}, link {e.link.get('state')}"
            )
        if isinstance(e, ev.CommandResultEvent):
            why = f": {e.why}" if e.why else ""
            return self._paint(f"{head} RESULT {e.cmd} {e.req} {e.res}{why}", "34")
        return f"{head} {e.k}"  # pragma: no cover - every kind is listed above


def _spool_words(spool: dict[str, Any]) -> str:
    """``spool empty`` or ``spool 12 waiting (alarm 1, object 11)`` for the heartbeat line."""
    depth = spool.get("depth") or {}
    waiting = {k: v for k, v in depth.items() if isinstance(v, int) and v > 0}
    if not waiting:
        return "spool empty"
    parts = ", ".join(f"{k} {v}" for k, v in waiting.items())
    return f"spool {sum(waiting.values())} waiting ({parts})"


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(message)"
    return f"{loc}: {err['msg']} ({exc.error_count()} problem(s))"


def connect_client(
    host: str,
    port: int,
    *,
    username: str | None = None,
    password: str | None = None,
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    client_id: str = "",
    v5: bool = True,
) -> mqtt.Client:
    """A paho client for the centre's side (monitor, command sender), not yet connected.

    ``v5=False`` for a broker that speaks MQTT 3.1.1 only (NATS, RabbitMQ).
    """
    spec = ClientSpec(
        client_id=client_id,
        v5=v5,
        clean_session=True,
        username=username or None,
        password=password,
        tls_ca=tls_ca,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )
    client = new_client(spec)
    client.reconnect_delay_set(1, 5)
    return client


class Output(Protocol):
    """Where the monitor prints: a terminal, a file, or a labelled stream (the demo)."""

    def write(self, text: str, /) -> int: ...
    def flush(self) -> None: ...
    def isatty(self) -> bool: ...


class Monitor:
    """Subscribes to ``filter`` and prints what arrives until stopped or ``count`` events."""

    def __init__(
        self,
        client: mqtt.Client,
        topic_filter: str,
        *,
        out: Output = sys.stdout,
        as_json: bool = False,
        count: int | None = None,
        on_line: Callable[[str], None] | None = None,
        reorder_window_s: float = DEFAULT_WINDOW_S,
        liveness: Liveness | None = None,
    ) -> None:
        self.client = client
        self.filter = topic_filter
        self.out = out
        self.as_json = as_json
        self.count = count
        self.view = MonitorView(
            colour=out.isatty() and not as_json, tracker=SeqTracker(reorder_window_s)
        )
        if liveness is not None:
            self.view.liveness = liveness
        self._lock = threading.Lock()  # paho's thread handles messages, run() ticks
        self.on_line = on_line
        self.done = threading.Event()
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._emit(f"broker refused the monitor: {reason}")
            self.done.set()
            return
        client.subscribe(self.filter, qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, codes: Any, _p: Any) -> None:
        """The SUBACK, on the log (stderr, not the output): what is published from now on is
        seen; a script that drives the monitor waits for this line."""
        failed = [c for c in codes if c.is_failure]
        if failed:
            self._emit(f"broker refused the subscription to {self.filter}: {failed[0]}")
            self.done.set()
            return
        log.info("monitor: subscribed to %s", self.filter)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self._handle(msg)

    def _handle(self, msg: mqtt.MQTTMessage) -> None:
        payload = bytes(msg.payload)
        if self.as_json:
            before = self.view.counts["events"]
            self.view.handle(msg.topic, payload, bool(msg.retain))
            if "/snapshot/" not in msg.topic:
                try:
                    body: Any = json.loads(payload)
                except ValueError:
                    body = None
                self._emit(json.dumps({"topic": msg.topic, "payload": body}, ensure_ascii=False))
            new = self.view.counts["events"] > before
        else:
            before = self.view.counts["events"]
            for line in self.view.handle(msg.topic, payload, bool(msg.retain)):
                self._emit(line)
            new = self.view.counts["events"] > before
        if new and self.count is not None and self.view.counts["events"] >= self.count:
            self.done.set()

    def _emit(self, line: str) -> None:
        print(line, file=self.out, flush=True)
        if self.on_line is not None:
            self.on_line(line)

    def run(self, host: str, port: int, timeout: float | None = None) -> dict[str, int]:
        self.client.connect_async(host, port, keepalive=30)
        self.client.loop_start()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not self.done.wait(_tick_wait(deadline)):
                if deadline is not None and time.monotonic() >= deadline:
                    break
                with self._lock:
                    lines = self.view.tick()
                if not self.as_json:
                    for line in lines:
                        self._emit(line)
        finally:
            self.client.loop_stop()
            self.client.disconnect()
        return dict(self.view.counts)


def _tick_wait(deadline: float | None) -> float:
    """Wake once a second to report expired gaps, or at the deadline if sooner."""
    if deadline is None:
        return 1.0
    return max(0.0, min(1.0, deadline - time.monotonic()))
