"""Vision in a child process, so that the detector never holds the agent's GIL.

:class:`VisionProcess` has the interface of :class:`agent.vision.VisionService`.  It starts
``python -m agent.vision.child`` (low CPU priority, see there) with one end of a socket
pair, and two threads of its own: "vision-rx" owns the child (start, read, restart) and
turns what the child sends into calls of the real :class:`~agent.outbox.Outbox`;
"vision-tx" sends snapshot requests and arm/disarm to the child from a bounded queue, so
that the bell and command threads only ever queue (never block on the child).

What crosses the boundary, and how it stays correct:

- events are re-stamped here (:meth:`EventStamper.restamp`): one ``seq`` per boot for the
  whole agent, ids made here; a rule's snapshot follows its event's new id;
- a restarted child's tracker counts from 1 again: its track ids are shifted past the
  highest one already sent, so a ``tid`` stays unique per camera and boot;
- ``until`` of arm/disarm is sent as a remaining duration and added to the child's clock
  (on Linux both processes read the same CLOCK_MONOTONIC anyway);
- a child that dies, or whose vision thread stops turning for ``hang_s``, is logged in
  one line, its cameras are reported ``lost`` (why ``vision_crashed`` or ``vision_hung``),
  and it is restarted with exponential backoff; the overrides still in force are replayed
  and ``restored`` follows once a camera delivers frames again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent.config import CameraConfig, DetectionConfig
from agent.events import Event, decode_event
from agent.outbox import Outbox

__all__ = ["VisionProcess"]

log = logging.getLogger(__name__)

TX_MAX = 32  # requests waiting for the child
STABLE_S = 60.0  # a child that lived this long starts the backoff afresh
STARTUP_S = 120.0  # longest start (imports, model load) before it counts as hung
IDS_MAX = 256  # child event ids remembered for their snapshots
POLL_S = 0.5


@dataclass
class _Child:
    """One generation of the child process and its end of the socket."""

    proc: subprocess.Popen[bytes]
    conn: Connection
    started: float
    last_msg: float  # this process's monotonic time of the last message
    progress: float  # ... of the child's last vision turn
    ready: bool = False  # its service started (the model is loaded)
    counters: dict[str, int] = field(default_factory=dict)
    # Held while sending; the socket is closed under it, so that a send never lands on
    # a reused descriptor.  vision-rx kills the process first, which unblocks a send.
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False

    def send(self, msg: tuple[Any, ...]) -> None:
        with self.send_lock:
            if not self.closed:
                with contextlib.suppress(OSError):  # it died: vision-rx restarts it
                    self.conn.send(msg)

    def close(self) -> None:
        with self.send_lock:
            self.closed = True
            self.conn.close()


class VisionProcess:
    """Owns the vision child process and the threads "vision-rx" and "vision-tx"."""

    def __init__(
        self,
        cameras: list[CameraConfig],
        detection: DetectionConfig,
        outbox: Outbox,
        *,
        restart_min_s: float = 1.0,
        restart_max_s: float = 30.0,
        hang_s: float = 60.0,
    ) -> None:
        self.cameras = cameras
        self.detection = detection
        self.outbox = outbox
        self.restart_min_s, self.restart_max_s, self.hang_s = restart_min_s, restart_max_s, hang_s
        self._names = {
            n for c in cameras for r in c.rules for n in (r.name, r.zone) if n is not None
        }
        self._facts: dict[str, dict[str, Any]] = {c.id: {"state": "starting"} for c in cameras}
        self._det: dict[str, Any] = {"state": "starting"}
        self._tx: queue.Queue[tuple[Any, ...]] = queue.Queue(maxsize=TX_MAX)
        self._lock = threading.Lock()  # guards _child (never held while blocking)
        self._child: _Child | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._overrides: dict[str, tuple[bool, float | None]] = {}
        self._ov_lock = threading.Lock()  # commands thread vs vision-rx (replay)
        self._ids: OrderedDict[str, str] = OrderedDict()
        self._tid_max: dict[str, int] = {c.id: -1 for c in cameras}
        self._tid_off: dict[str, int] = {c.id: 0 for c in cameras}
        self._crashed_cams: set[str] = set()
        self._progress = time.monotonic()
        self._dropped_before = 0  # dropped object events of earlier children
        self.restarts = 0
        self.priority: str | None = None  # "idle", a niceness, None: could not lower it
        self.pid: int | None = None
        self.bad_messages = 0

    # ------------------------------------------------------------------ service
    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._supervise, name="vision-rx", daemon=True),
            threading.Thread(target=self._send_loop, name="vision-tx", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def stop(self, timeout: float) -> None:
        """Ask the child to stop; terminate, then kill it after ``timeout``; join."""
        end = time.monotonic() + timeout
        with self._lock:  # never held across a blocking call
            self._stop.set()
            child = self._child
        # When vision-tx is stuck on a hung child, the kill below frees it.
        with contextlib.suppress(queue.Full):
            self._tx.put(("stop",), timeout=0.2)
        if child is not None:
            _end(child.proc, max(0.1, end - time.monotonic() - 1.0))
        for t in self._threads:  # vision-rx reads what the child sent until its end
            t.join(max(0.1, end - time.monotonic()))
        if child is not None:
            self._forget(child)

    def threads(self) -> list[threading.Thread]:
        return list(self._threads)

    def last_progress(self) -> float:
        """When the child's vision thread last turned, on this process's monotonic clock."""
        return self._progress

    def facts(self) -> dict[str, Any]:
        """Per camera, as the child last reported them (or lost while it is down)."""
        return {cid: dict(f) for cid, f in self._facts.items()}

    def detector_facts(self) -> dict[str, Any]:
        child = self._child
        dropped = self._dropped_before + (child.counters.get("dropped_objects", 0) if child else 0)
        proc = {
            "isolation": "process",
            "pid": self.pid,
            "running": child is not None and child.proc.poll() is None,
            "restarts": self.restarts,
            "priority": self.priority,
            "dropped_objects": dropped,
        }
        return {**self._det, "proc": proc}

    # ------------------------------------------------------------------ requests
    def request_snapshot(self, event_id: str, camera: str | None = None) -> bool:
        """Queue a snapshot for ``event_id``; False when no camera has frames or busy."""
        if camera is not None and camera not in self._facts:
            return False
        cams = [camera] if camera is not None else list(self._facts)
        if self._child is None or not any(self._facts[c].get("state") == "ok" for c in cams):
            return False
        return self._queue(("snap", event_id, camera))

    def arm(self, name: str, until: float | None = None) -> bool:
        """Arm a rule or zone until ``until`` (this process's time.monotonic)."""
        return self._override(name, True, until)

    def disarm(self, name: str, until: float | None = None) -> bool:
        """Disarm a rule or zone until ``until`` (time.monotonic); None: until changed."""
        return self._override(name, False, until)

    def _override(self, name: str, armed: bool, until: float | None) -> bool:
        with self._ov_lock:
            if name not in self._names or not self._queue(("rule", name, armed, until)):
                return False
            self._overrides[name] = (armed, until)  # replayed to a restarted child
        log.info("vision: %s %s until %s", "armed" if armed else "disarmed", name, until)
        return True

    def _queue(self, msg: tuple[Any, ...]) -> bool:
        try:
            self._tx.put_nowait(msg)
        except queue.Full:
            log.warning("vision: %s request refused, %d already waiting", msg[0], TX_MAX)
            return False
        return True

    # ------------------------------------------------------------------ vision-tx
    def _send_loop(self) -> None:
        try:
            while True:
                try:
                    msg = self._tx.get(timeout=POLL_S)
                except queue.Empty:
                    if self._stop.is_set():
                        return
                    continue
                if msg[0] == "rule" and msg[3] is not None:
                    # Sent as a duration, converted at the last moment: the child adds it
                    # to its own clock.
                    msg = (*msg[:3], msg[3] - time.monotonic())
                child = self._child
                if child is not None:
                    child.send(msg)  # no child: a snapshot is moot, overrides get replayed
                if msg[0] == "stop":
                    return
        except Exception:
            log.exception("vision-tx crashed; requests no longer reach the vision process")

    # ------------------------------------------------------------------ vision-rx
    def _supervise(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    child = self._spawn()
                except OSError as exc:
                    log.error("vision: cannot start the vision process: %s", exc)
                    child, why = None, "vision_crashed"
                if child is not None:
                    why = self._pump(child)
                if self._stop.is_set():
                    return
                failures = 0 if time.monotonic() - started > STABLE_S else failures + 1
                delay = min(self.restart_max_s, self.restart_min_s * 2 ** (failures - 1))
                self._crashed(child, why, delay)
                self._stop.wait(delay)
        except Exception:
            log.exception("vision-rx crashed; vision is no longer supervised (bell unaffected)")

    def _spawn(self) -> _Child | None:
        """Start a child and send it its config; None when stopping."""
        mine, theirs = socket.socketpair()
        with self._lock:
            if self._stop.is_set():
                mine.close()
                theirs.close()
                return None
            try:
                proc = subprocess.Popen(
                    self._argv(theirs.fileno()),
                    pass_fds=[theirs.fileno()],
                    stdin=subprocess.DEVNULL,
                    env=_child_env(),
                )
            except OSError:
                mine.close()
                raise
            finally:
                theirs.close()
            now = time.monotonic()
            child = _Child(proc, Connection(mine.detach()), now, now, now)
            boot = f"{self.outbox.stamper.boot_id}v{self.restarts}"  # ids replaced here anyway
            cfg = ("config", self.cameras, self.detection, self.outbox.stamper.device_id, boot)
            child.send(cfg)
            self._child, self.pid = child, proc.pid
            if self.restarts:
                self._tid_off = {cid: m + 1 for cid, m in self._tid_max.items()}
        self._replay()
        return child

    def _argv(self, fd: int) -> list[str]:
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
        prio = str(self.detection.process_priority)
        module = "agent.vision.child"
        return [
            sys.executable,
            "-m",
            module,
            "--fd",
            str(fd),
            "--priority",
            prio,
            "--log-level",
            level,
        ]

    def _replay(self) -> None:
        now = time.monotonic()
        with self._ov_lock:
            for name, (armed, until) in list(self._overrides.items()):
                if until is not None and until <= now:
                    del self._overrides[name]
                else:
                    self._queue(("rule", name, armed, until))

    def _pump(self, child: _Child) -> str:
        """Handle the child's messages until it ends; the reason: crashed, hung or stopped."""
        while True:
            try:
                if child.conn.poll(POLL_S):
                    msg = child.conn.recv()
                    child.last_msg = time.monotonic()
                    self._handle(child, msg)
                    continue
            except (EOFError, OSError):
                return "vision_crashed"
            except Exception:  # one odd message (a bug) must not end the supervision
                self.bad_messages += 1
                log.exception("vision: a message from the process could not be handled")
                continue
            if self._hung(child):
                return "vision_hung"
            if child.proc.poll() is not None and not child.conn.poll(0):
                return "vision_crashed"

    def _hung(self, child: _Child) -> bool:
        """Silent, or its vision thread not turning, for ``hang_s`` (STARTUP_S before ready)."""
        now = time.monotonic()
        if not child.ready:
            return now - child.started > max(STARTUP_S, self.hang_s)
        return now - min(child.last_msg, child.progress) > self.hang_s

    # ------------------------------------------------------------------ messages
    def _handle(self, child: _Child, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "event":
            self._event(msg[1])
        elif kind == "snap":
            event_id = self._ids.pop(msg[1], msg[1])  # a rule's own snapshot: its new id
            self.outbox.snapshot(event_id, msg[2])
        elif kind == "state":
            self.outbox.state(*msg[1:])
        elif kind == "facts":
            self._on_facts(child, *msg[1:])
        elif kind == "ready":
            child.ready, child.progress, self.priority = True, time.monotonic(), msg[2]
            if msg[2] is None:
                log.warning("vision: process %d ready, but at the agent's CPU priority", msg[1])
            else:
                log.info("vision: process %d ready (CPU priority %s)", msg[1], msg[2])
        elif kind == "fatal":
            log.error("vision: the process could not start: %s", msg[1])

    def _event(self, payload: bytes) -> None:
        try:
            event = decode_event(payload)
        except ValidationError as exc:  # a bug on the other side: count it, keep going
            self.bad_messages += 1
            log.error("vision: invalid event from the process dropped: %s", exc)
            return
        adopted = self.outbox.stamper.restamp(self._shift_tids(event))
        if getattr(event, "snap", None):
            self._ids[event.id] = adopted.id
            while len(self._ids) > IDS_MAX:
                self._ids.popitem(last=False)
        self.outbox.emit(adopted)

    def _shift_tids(self, event: Event) -> Event:
        if event.k == "object":
            tid = event.tid + self._tid_off.get(event.cam, 0)
            self._tid_max[event.cam] = max(self._tid_max.get(event.cam, -1), tid)
            return event.model_copy(update={"tid": tid})
        if event.k == "rule":
            off = self._tid_off.get(event.cam, 0)
            return event.model_copy(update={"tids": [t + off for t in event.tids]})
        return event

    def _on_facts(
        self,
        child: _Child,
        cams: dict[str, dict[str, Any]],
        det: dict[str, Any],
        progress_age: float,
        counters: dict[str, int],
    ) -> None:
        # An age, not the child's clock reading: right whatever the two clocks are.
        child.progress = self._progress = time.monotonic() - progress_age
        child.counters = counters
        self._facts.update(cams)
        self._det = det
        for cid in sorted(self._crashed_cams):
            if cams.get(cid, {}).get("state") == "ok":
                self._crashed_cams.discard(cid)
                self._camera("restored", cid, None)

    def _camera(self, kind: str, cid: str, why: str | None) -> None:
        ev = self.outbox.stamper.camera(ev=kind, cam=cid, why=why)
        self.outbox.emit(ev)
        detail = {"why": why} if why else None
        self.outbox.state(f"camera-{cid}", "lost" if kind == "lost" else "ok", ev.ts, detail)

    # ------------------------------------------------------------------ crashes
    def _crashed(self, child: _Child | None, why: str, delay: float) -> None:
        """One log line; its cameras lost (once per outage); the process ended and closed."""
        code: int | None = None
        if child is not None:
            if why == "vision_hung":
                child.proc.kill()
            code = _end(child.proc, 1.0)
            self._forget(child)
            self._dropped_before += child.counters.get("dropped_objects", 0)
        self.restarts += 1
        log.error(
            "vision: process %s %s (exit code %s); its cameras are reported lost; "
            "restart %d in %.0f s; the bell is unaffected",
            child.proc.pid if child is not None else "-",
            "stopped making progress and was killed" if why == "vision_hung" else "died",
            code,
            self.restarts,
            delay,
        )
        for cid, facts in self._facts.items():
            self._facts[cid] = {**facts, "state": "lost", "why": why}
            if cid not in self._crashed_cams:
                self._crashed_cams.add(cid)
                self._camera("lost", cid, why)

    def _forget(self, child: _Child) -> None:
        with self._lock:
            if self._child is child:
                self._child = None
        child.close()


def _end(proc: subprocess.Popen[bytes], grace: float) -> int | None:
    """Wait ``grace`` for the process to exit, then terminate and kill it."""
    try:
        return proc.wait(grace)
    except subprocess.TimeoutExpired:
        log.warning("vision: process %d did not stop in %.1f s; killing it", proc.pid, grace)
    proc.terminate()  # ignored once it has set up; kept for a child stuck before that
    try:
        return proc.wait(0.5)
    except subprocess.TimeoutExpired:
        proc.kill()
    return proc.wait()


def _child_env() -> dict[str, str]:
    """The agent's environment minus systemd's notify variables (NotifyAccess=main)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
    # The child imports the same source tree as this process, installed or not.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env
