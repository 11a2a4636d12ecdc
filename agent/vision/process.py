"""Vision in a child process, so that the detector never holds the agent's GIL.

:class:`VisionProcess` has the interface of :class:`agent.vision.service.VisionService`.
It starts ``python -m agent.vision.child`` (low CPU priority, see there) with one end of a
socket pair, and two threads of its own (two :class:`~agent.worker.Worker`): "vision-rx"
owns the child (start, read, restart) and turns what the child sends into calls of the
agent's :class:`~agent.outbox.EventSink`; "vision-tx" sends snapshot requests and
arm/disarm to the child from a bounded queue, so that the bell and command threads only
ever queue (never block on the child).

The child gets an environment built from an allow-list (:mod:`agent.vision.launch`): it
parses untrusted network video, so it must not see ``$CREDENTIALS_DIRECTORY``, a password
in an environment variable, or systemd's notify socket.  What it sends is never unpickled: the
frames of :mod:`agent.vision.protocol` are validated JSON and raw JPEG bytes, and a frame
that breaks the protocol is counted and logged (``bad_messages``), never obeyed.

What crosses the boundary, and how it stays correct:

- events are re-stamped here (:meth:`EventStamper.restamp`): one ``seq`` per boot for the
  whole agent, ids made here (a lookout candidate keeps its id: the child's audit log
  names it); a rule's snapshot follows its event's new id;
- a restarted child's tracker carries on from the highest track id already sent (its
  config says where to start), so a ``tid`` stays unique per camera and boot and names
  the same track in object events, rules, lookout candidates and the appearance index;
- ``until`` of arm/disarm is sent as a remaining duration and added to the child's clock
  (on Linux both processes read the same CLOCK_MONOTONIC anyway);
- a child that dies, or whose vision thread stops turning for ``hang_s``, is logged in
  one line, its cameras are reported ``lost`` (why ``vision_crashed`` or ``vision_hung``),
  and it is restarted with exponential backoff; the overrides still in force are replayed
  and ``restored`` follows once a camera delivers frames again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from agent.config import CameraConfig, DetectionConfig, LookoutConfig
from agent.events import Event
from agent.flap import FlapFilter, FlapGuard, Told, show_told
from agent.lookout.registry import Lookouts
from agent.outbox import EventSink
from agent.vision.launch import ChildProcess, end_process, launch
from agent.vision.protocol import (
    Config,
    EventReport,
    Facts,
    Fatal,
    FrameError,
    LookoutCancel,
    LookoutRequest,
    ProtocolError,
    Ready,
    SnapRequest,
    Snapshot,
    StateReport,
    ToParent,
    decode_to_parent,
)
from agent.vision.requests import POLL_S, Override, Queued, Sender
from agent.vision.tids import TrackIds
from agent.worker import Worker

__all__ = ["VisionProcess"]

log = logging.getLogger(__name__)

STABLE_S = 60.0  # a child that lived this long starts the backoff afresh
STARTUP_S = 120.0  # longest start (imports, model load) before it counts as hung
IDS_MAX = 256  # child event ids remembered for their snapshots
_ENDINGS = {
    "vision_hung": "stopped making progress and was killed",
    "capture_hung": "had a camera read stuck in native code and was killed",
}


class VisionProcess(Worker):
    """ "vision-rx": owns the vision child process, and the "vision-tx" worker.

    ``last_progress`` is when the child's vision thread last turned, on this process's
    clock (the child reports the age of its last turn with its facts).
    """

    def __init__(
        self,
        cameras: list[CameraConfig],
        detection: DetectionConfig,
        sink: EventSink,
        *,
        restart_min_s: float = 1.0,
        restart_max_s: float = 30.0,
        hang_s: float = 60.0,
        lookout: LookoutConfig | None = None,
        first_tids: Mapping[str, int] | None = None,
    ) -> None:
        """``first_tids``: per camera, the first track id (a reload's successor carries on
        from its predecessor's :meth:`next_tids`)."""
        super().__init__("vision-rx")
        self.cameras = cameras
        self.detection = detection
        self.lookout = lookout
        self.sink = sink
        self.restart_min_s, self.restart_max_s, self.hang_s = restart_min_s, restart_max_s, hang_s
        self._names = {
            n for c in cameras for r in c.rules for n in (r.name, r.zone) if n is not None
        }
        self._facts: dict[str, dict[str, Any]] = {c.id: {"state": "starting"} for c in cameras}
        self._det: dict[str, Any] = {"state": "starting"}
        self._lock = threading.Lock()  # guards _child (never held while blocking)
        self._child: ChildProcess | None = None
        self._tx = Sender(lambda: self._child)
        self._overrides: dict[str, Override] = {}
        # The lookouts in force, mirrored here: the command's answer, and replayed to a
        # restarted child (which keeps the matcher's own table).
        self._lookouts = Lookouts(lookout.max_active if lookout is not None else 1)
        self._ov_lock = threading.Lock()  # commands thread vs vision-rx (replay)
        self._ids: OrderedDict[str, str] = OrderedDict()
        self._tids = TrackIds((c.id for c in cameras), first_tids)
        self._crashed_cams: set[str] = set()
        # Per camera, the crash-made lost/restored through a flap filter, as a capture's own
        # changes are in the child: a child that keeps crashing is one episode, not a pair
        # of events per restart.
        self._flaps = {
            c.id: FlapFilter(FlapGuard(c.flap_changes, c.flap_window_s), "ok", show_told)
            for c in cameras
        }
        self._dropped_before = 0  # dropped object events of earlier children
        self.restarts = 0
        self.priority: str | None = None  # "idle", a niceness, None: could not lower it
        self.pid: int | None = None
        self.bad_messages = 0

    # ------------------------------------------------------------------ service
    def start(self) -> None:
        super().start()
        self._tx.start()

    def stop(self, timeout: float) -> bool:
        """Ask the child to stop; kill it after ``timeout``; join; False if a thread hangs."""
        end = time.monotonic() + timeout
        with self._lock:  # never held across a blocking call; no child spawns after this
            self._stop.set()
            child = self._child
        self._tx.request_stop()  # "stop" to the child
        if child is not None:
            end_process(child.proc, max(0.1, end - time.monotonic() - 1.0))
        stopped = self._tx.join(max(0.1, end - time.monotonic()))
        # vision-rx reads what the child sent until its end.
        stopped = self.join(max(0.1, end - time.monotonic())) and stopped
        if child is not None and stopped:
            self._forget(child)
        return stopped

    def threads(self) -> list[threading.Thread]:
        return super().threads() + self._tx.threads()

    def carry_on_from(self, before: object) -> None:
        """A reload's successor takes over, for each camera it still watches, what its
        predecessor told the centre of crashes: the flap filters, and the cameras reported
        lost, whose ``restored`` is then still said.  Called with the predecessor stopped,
        before :meth:`start`."""
        if not isinstance(before, VisionProcess):
            return
        for cid in self._flaps:
            if cid in before._flaps:
                self._flaps[cid] = before._flaps[cid]
        self._crashed_cams |= {cid for cid in before._crashed_cams if cid in self._flaps}

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
        return self._queue(SnapRequest(event_id=event_id, camera=camera))

    def arm(self, name: str, until: float | None = None) -> bool:
        """Arm a rule or zone until ``until`` (this process's time.monotonic)."""
        return self._override(name, True, until)

    def disarm(self, name: str, until: float | None = None) -> bool:
        """Disarm a rule or zone until ``until`` (time.monotonic); None: until changed."""
        return self._override(name, False, until)

    def _override(self, name: str, armed: bool, until: float | None) -> bool:
        override = Override(name, armed, until)
        with self._ov_lock:
            if name not in self._names or not self._queue(override):
                return False
            self._overrides[name] = override  # replayed to a restarted child
        log.info("vision: %s %s until %s", "armed" if armed else "disarmed", name, until)
        return True

    def start_lookout(self, msg: LookoutRequest) -> list[dict[str, Any]] | str:
        """Take a lookout on (the child audits, looks back and matches); the lookouts in
        force, or why not."""
        if self.lookout is None or not self.lookout.enabled:
            return "lookout is off on this unit (lookout.enabled is false)"
        with self._ov_lock:
            got = self._lookouts.add(msg.spec, msg.remaining_s, msg.signer, msg.req, msg.site)
            if isinstance(got, str):
                return got
            if not self._queue(msg):
                self._lookouts.cancel(msg.spec.id)
                return "the vision process is busy (its request queue is full); try again"
        return self._lookouts.summary(sent=False)

    def cancel_lookout(self, lookout_id: str) -> bool:
        """End a lookout; False when it was not in force."""
        with self._ov_lock:
            if self._lookouts.cancel(lookout_id) is None:
                return False
            self._queue(LookoutCancel(id=lookout_id))
        return True

    def _queue(self, item: Queued) -> bool:
        return self._tx.put(item)

    # ------------------------------------------------------------------ vision-rx
    def _run(self) -> None:
        failures = 0
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
            self._child_ended(child, why, delay)
            self._stop.wait(delay)

    def _crashed(self, exc: Exception) -> None:
        log.error(
            "vision-rx crashed; vision is no longer supervised (bell unaffected): %s",
            exc,
            exc_info=exc,
        )

    def _spawn(self) -> ChildProcess | None:
        """Start a child and send it its config; None when stopping."""
        with self._lock:
            if self._stop.is_set():
                return None
            stamper = self.sink.stamper
            child = launch(
                Config(
                    cameras=tuple(self.cameras),
                    detection=self.detection,
                    device_id=stamper.device_id,
                    boot_id=f"{stamper.boot_id}v{self.restarts}",  # ids replaced here anyway
                    lookout=self.lookout,
                    first_tids=self.next_tids() if self.restarts else self._tids.first,
                )
            )
            self._child, self.pid = child, child.proc.pid
        self._replay()
        return child

    def _replay(self) -> None:
        now = time.monotonic()
        with self._ov_lock:
            for name, override in list(self._overrides.items()):
                if override.until is not None and override.until <= now:
                    del self._overrides[name]
                else:
                    self._queue(override)
            self._lookouts.expire()
            for a in self._lookouts.active():
                self._queue(
                    LookoutRequest(
                        spec=a.spec, remaining_s=max(0.001, a.until - now),
                        signer=a.signer, req=a.req, site=a.site, replayed=True,
                    )
                )  # fmt: skip

    def _pump(self, child: ChildProcess) -> str:
        """Handle the child's messages until it ends; the reason: crashed, hung or stopped."""
        while True:
            try:
                frame = child.reader.read(POLL_S)
            except FrameError as exc:  # no frame boundary to trust after this: restart it
                self.bad_messages += 1
                log.error("vision: the process broke the frame protocol: %s", exc)
                child.proc.kill()
                return "vision_crashed"
            except (EOFError, OSError):
                return "vision_crashed"
            if frame is not None:
                child.last_msg = time.monotonic()
                self._receive(child, frame)
                continue
            if self._hung(child):
                return "vision_hung"
            if child.stuck:
                # A capture thread inside a native call that ignores its timeouts cannot be
                # ended from inside the child: restarting the child is the only cure.
                return "capture_hung"
            if child.proc.poll() is not None and not child.reader.readable(0):
                return "vision_crashed"

    def _receive(self, child: ChildProcess, frame: bytes) -> None:
        """Decode and handle one frame; one odd message must not end the supervision."""
        try:
            self._handle(child, decode_to_parent(frame))
        except ProtocolError as exc:  # a bug, or a child taken over: count it, keep going
            self.bad_messages += 1
            log.error("vision: a message from the process was dropped: %s", exc)
        except Exception:
            self.bad_messages += 1
            log.exception("vision: a message from the process could not be handled")

    def _hung(self, child: ChildProcess) -> bool:
        """Silent, or its vision thread not turning, for ``hang_s`` (STARTUP_S before ready)."""
        now = time.monotonic()
        if not child.ready:
            return now - child.started > max(STARTUP_S, self.hang_s)
        return now - min(child.last_msg, child.progress) > self.hang_s

    # ------------------------------------------------------------------ messages
    def _handle(self, child: ChildProcess, msg: ToParent) -> None:
        if isinstance(msg, EventReport):
            self._event(msg.event)
        elif isinstance(msg, Snapshot):
            event_id = self._ids.pop(msg.event_id, msg.event_id)  # a rule's: its new id
            self.sink.snapshot(event_id, msg.jpeg)
        elif isinstance(msg, StateReport):
            self.sink.state(msg.name, msg.state, msg.since, msg.detail)
        elif isinstance(msg, Facts):
            self._on_facts(child, msg)
        elif isinstance(msg, Ready):
            child.ready, child.progress, self.priority = True, time.monotonic(), msg.priority
            if msg.priority is None:
                log.warning("vision: process %d ready, but at the agent's CPU priority", msg.pid)
            else:
                log.info("vision: process %d ready (CPU priority %s)", msg.pid, msg.priority)
        elif isinstance(msg, Fatal):
            log.error("vision: the process could not start: %s", msg.text)

    def _event(self, event: Event) -> None:
        self._tids.note(event)
        adopted = self.sink.stamper.restamp(event)
        if event.k == "lookout":
            # A candidate keeps the id the child gave it (unique: the child's boot id is
            # this boot's plus its generation), so that the child's audit log names the very
            # event the centre receives; it still gets this agent's seq.
            adopted = adopted.model_copy(update={"id": event.id})
        if getattr(event, "snap", None):
            self._ids[event.id] = adopted.id
            while len(self._ids) > IDS_MAX:
                self._ids.popitem(last=False)
        self.sink.emit(adopted)

    def next_tids(self) -> dict[str, int]:
        """Per camera, a first track id for a successor (a restarted child, or a reload's
        new process): see :class:`~agent.vision.tids.TrackIds`."""
        return self._tids.successor()

    def _on_facts(self, child: ChildProcess, facts: Facts) -> None:
        self._tids.trackers(facts.next_tids)
        # An age, not the child's clock reading: right whatever the two clocks are.
        child.progress = time.monotonic() - facts.progress_age_s
        self.progress(child.progress)
        child.counters = facts.counters
        child.stuck = facts.stuck
        self._facts.update(facts.cameras)
        self._det = facts.detector
        now = time.monotonic()
        for cid, flap in self._flaps.items():
            self._tell(cid, flap.tick(now))
        for cid in sorted(self._crashed_cams):
            if facts.cameras.get(cid, {}).get("state") == "ok":
                self._crashed_cams.discard(cid)
                self._camera("restored", cid, None)

    def _camera(self, kind: str, cid: str, why: str | None) -> None:
        """``lost`` (its child ended) or ``restored`` (delivering again), unless it flaps."""
        state = "lost" if kind == "lost" else "ok"
        self._tell(cid, self._flaps[cid].change(state, Told(kind, why, time.monotonic())))

    def _tell(self, cid: str, told: list[Told]) -> None:
        for t in told:
            if t.ev == "restored" and self._facts.get(cid, {}).get("state") != "ok":
                # An episode's end while the camera is not delivering (the child says lost,
                # or is starting): the centre still knows it lost, and is told restored when
                # the facts say ok, as after any crash.
                self._flaps[cid].withheld("lost")
                self._crashed_cams.add(cid)
                continue
            ev = self.sink.stamper.camera(ev=t.ev, cam=cid, why=t.why)
            self.sink.emit(ev)
            if t.ev in ("lost", "restored"):
                detail = {"why": t.why} if t.why else None
                state = "lost" if t.ev == "lost" else "ok"
                self.sink.state(f"camera-{cid}", state, ev.ts, detail)
            else:
                log.warning("vision: camera %s %s (its process restarts): %s", cid, t.ev, t.why)

    # ------------------------------------------------------------------ crashes
    def _child_ended(self, child: ChildProcess | None, why: str, delay: float) -> None:
        """One log line; its cameras lost (once per outage); the process ended and closed."""
        code: int | None = None
        if child is not None:
            if why in ("vision_hung", "capture_hung"):
                child.proc.kill()
            code = end_process(child.proc, 1.0)
            self._forget(child)
            self._dropped_before += child.counters.get("dropped_objects", 0)
        self.restarts += 1
        log.error(
            "vision: process %s %s (exit code %s); its cameras are reported lost; "
            "restart %d in %.0f s; the bell is unaffected",
            child.proc.pid if child is not None else "-",
            _ENDINGS.get(why, "died"),
            code,
            self.restarts,
            delay,
        )
        for cid, facts in self._facts.items():
            self._facts[cid] = {**facts, "state": "lost", "why": why}
            if cid not in self._crashed_cams:
                self._crashed_cams.add(cid)
                self._camera("lost", cid, why)

    def _forget(self, child: ChildProcess) -> None:
        with self._lock:
            if self._child is child:
                self._child = None
        child.close()
