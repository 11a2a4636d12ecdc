"""The vision service: capture threads, and one "vision" thread that analyses every camera.

Per camera, at its ``fps``: newest frame -> motion gate -> detector -> tracker -> lifecycle
-> rules -> appearance records of person tracks (``lookout``, into the local index, never
sent from here); object, rule and camera events go out through an :class:`EventSink` (the
agent's Outbox, or the vision process's socket), a rule event with a masked, size-capped
snapshot.  Nothing here may take the agent down: a camera that
fails is reported (``camera`` events, facts), a detector that cannot load or that fails on
a frame leaves the cameras watched without detection, and the bell never waits on video
(``request_snapshot`` only queues).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from agent.config import CameraConfig, DetectionConfig, LookoutConfig
from agent.detect.detections import Detections
from agent.detect.lifecycle import TrackEvent
from agent.detect.pipeline import TrackPipeline
from agent.detect.rules import RuleHit
from agent.lookout.active import Lookouts, Matcher
from agent.lookout.audit import AuditLog
from agent.lookout.index import AppearanceIndex
from agent.lookout.record import Recorder
from agent.outbox import EventSink
from agent.video.capture import Capture, Frame
from agent.video.motion import MotionGate
from agent.video.snapshot import SnapshotError, encode_snapshot
from agent.vision.protocol import LookoutRequest
from agent.worker import Worker

__all__ = ["DetectorLike", "VisionService"]

log = logging.getLogger(__name__)

WINDOW = 256  # samples for timing percentiles
REQUESTS = 16  # bounded snapshot request queue
LOG_EVERY = 100  # repeated per-frame errors: log the first and then every Nth


class DetectorLike(Protocol):
    names: list[str]

    def __call__(self, frame_bgr: npt.NDArray[np.uint8]) -> Detections: ...

    def facts(self) -> dict[str, Any]: ...


@dataclass
class _Camera:
    cfg: CameraConfig
    capture: Capture
    gate: MotionGate
    pipeline: TrackPipeline
    next_due: float = 0.0
    last_seq: int = 0
    analysed: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    infer_ms: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    errors: int = 0
    last: tuple[Frame, Detections] | None = None
    recorder: Recorder | None = None
    lookout_ms: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))


def _pct(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


class VisionService(Worker):
    """The "vision" thread; owns the capture threads ("capture-<id>")."""

    def __init__(
        self,
        cameras: list[CameraConfig],
        detection: DetectionConfig,
        sink: EventSink,
        *,
        detector_factory: Callable[[], DetectorLike] | None = None,
        lookout: LookoutConfig | None = None,
        first_tids: Mapping[str, int] | None = None,
    ) -> None:
        """``lookout`` with its ``index_path`` resolved (see :func:`agent.config.index_path`);
        None or disabled: no appearance records.  ``first_tids``: per camera, the first
        track id to give (a restarted vision process carries on from its predecessor's)."""
        super().__init__("vision")
        self.sink = sink
        self.detection = detection
        self.detector: DetectorLike | None = None
        self.detector_error: str | None = None
        if detection.enabled:
            self._load_detector(detector_factory)
        names: list[str] = self.detector.names if self.detector is not None else []
        self._cams: dict[str, _Camera] = {}
        for cfg in cameras:
            report = self._reporter(cfg.id)
            cap = Capture(cfg, report)
            self._cams[cfg.id] = _Camera(
                cfg,
                cap,
                MotionGate(cfg.motion),
                TrackPipeline(cfg, names, first_tid=(first_tids or {}).get(cfg.id, 1)),
            )
        self._person = names.index("person") if "person" in names else -1
        self.index: AppearanceIndex | None = None
        self.lookout_errors = 0
        self.lookouts = Lookouts(lookout.max_active if lookout is not None else 1)
        self.matcher: Matcher | None = None
        if lookout is not None and lookout.enabled and self.detector is not None:
            self._open_lookout(lookout, names)
        # (event id, camera) of a snapshot to take, or the id of a lookout to look back for
        self._requests: queue.Queue[tuple[str, str] | str] = queue.Queue(maxsize=REQUESTS)
        self._rules_lock = threading.Lock()
        self.snapshots = 0

    def _load_detector(self, factory: Callable[[], DetectorLike] | None) -> None:
        try:
            if factory is None:
                from agent.detect.detector import Detector

                self.detector = Detector(self.detection)
            else:
                self.detector = factory()
        except Exception as exc:  # noqa: BLE001 - the cameras stay watched without a model
            self.detector_error = str(exc).splitlines()[0][:300] if str(exc) else repr(exc)
            log.error("vision: no detection, the detector could not load: %s", exc)

    def _open_lookout(self, cfg: LookoutConfig, names: list[str]) -> None:
        try:
            self.index = AppearanceIndex(
                cfg.index_path or "lookout.db",
                retention_h=cfg.retention_h,
                max_rows=cfg.max_rows,
                max_bytes=cfg.max_bytes,
            )
            audit = AuditLog(cfg.audit_path or "lookout-audit.jsonl", cfg.audit_days)
        except Exception as exc:  # noqa: BLE001 - no index: detection goes on without it
            log.error("vision: no appearance records, the index could not open: %s", exc)
            return
        self.matcher = Matcher(self.lookouts, self.index, self.sink, audit)
        for cam in self._cams.values():
            cam.recorder = Recorder(
                cam.cfg.id,
                names,
                masks=cam.cfg.privacy_masks,
                best=cfg.best_frames,
                refresh_s=cfg.refresh_s,
                thumbnails=cfg.thumbnails,
            )

    # ------------------------------------------------------------------ service
    def start(self) -> None:
        for cam in self._cams.values():
            cam.capture.start()
        super().start()

    def stop(self, timeout: float) -> bool:
        """Stop the vision thread, then the captures; False if any did not stop."""
        end = time.monotonic() + timeout
        stopped = super().stop(timeout)
        for cam in self._cams.values():
            stopped = cam.capture.stop(max(0.1, end - time.monotonic())) and stopped
        if self.index is not None and stopped:
            self.index.close()
        return stopped

    def next_tids(self) -> dict[str, int]:
        """Per camera, a first track id for a successor (a reload): above every id given,
        with :data:`~agent.vision.protocol.TID_GAP` for the tracks made before this stops."""
        from agent.vision.protocol import TID_GAP

        return {cid: n + TID_GAP for cid, n in self.tracker_next_ids().items()}

    def tracker_next_ids(self) -> dict[str, int]:
        """Per camera, the id its tracker gives next."""
        return {cid: cam.pipeline.tracker.next_id for cid, cam in self._cams.items()}

    def threads(self) -> list[threading.Thread]:
        out = super().threads()
        for cam in self._cams.values():
            out += cam.capture.threads()
        return out

    def stuck_captures(self, now: float | None = None) -> dict[str, float]:
        """Cameras whose capture thread is stuck in native code past its bound, and how long."""
        now = time.monotonic() if now is None else now
        out = {}
        for cid, cam in self._cams.items():
            stuck = cam.capture.stuck_for(now)
            if stuck > cam.capture.hang_bound():
                out[cid] = round(stuck, 1)
        return out

    def facts(self) -> dict[str, Any]:
        """Per camera: state, analysed fps, dropped and gated frames, frame age, timings."""
        now = time.monotonic()
        out: dict[str, Any] = {}
        for cid, cam in self._cams.items():
            recent = [t for t in list(cam.analysed) if now - t <= 10.0]
            fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 2 else 0.0
            cap = cam.capture.facts(now)
            infer = list(cam.infer_ms)
            out[cid] = {
                **cap,
                "fps": round(fps, 2),
                "gated": cam.gate.facts.gated,
                "infer_ms_p50": _pct(infer, 50),
                "infer_ms_p95": _pct(infer, 95),
                "errors": cam.errors,
                "tracks": cam.pipeline.tracker.created,
                "detector": "ok" if self.detector is not None else "off",
            }
            if cam.recorder is not None:
                out[cid]["lookout_ms_p50"] = _pct(list(cam.lookout_ms), 50)
        return out

    def detector_facts(self) -> dict[str, Any]:
        if self.detector is None:
            return {"state": "failed" if self.detector_error else "off", "why": self.detector_error}
        out = {"state": "ok", **self.detector.facts()}
        if self.matcher is not None:
            out["lookouts"] = self.lookouts.summary()
        return out

    # ------------------------------------------------------------------ lookouts
    def start_lookout(self, msg: LookoutRequest) -> list[dict[str, Any]] | str:
        """Take a lookout on (audited), look back in the index on the vision thread, then
        match live; the lookouts in force, or why not."""
        if self.matcher is None:
            return "lookout is off on this unit (no detector or no appearance index)"
        spec = msg.spec
        got = self.lookouts.add(spec, msg.remaining_s, msg.signer, msg.req, msg.site)
        if isinstance(got, str):
            return got
        self.matcher.started(got, broadcast=msg.site, replayed=msg.replayed)
        try:
            self._requests.put_nowait(spec.id)
        except queue.Full:  # live matching still runs; only the look-back is skipped
            log.warning("vision: lookout %s: no room to look back, live matching only", spec.id)
        return self.lookouts.summary()

    def cancel_lookout(self, lookout_id: str) -> bool:
        """End a lookout; False when it was not in force."""
        active = self.lookouts.cancel(lookout_id)
        if active is not None and self.matcher is not None:
            self.matcher.ended(active, "cancel")
        return active is not None

    # ------------------------------------------------------------------ requests
    def request_snapshot(self, event_id: str, camera: str | None = None) -> bool:
        """Queue a snapshot for ``event_id``; False when no frame is available or busy."""
        cam = self._pick(camera)
        if cam is None:
            return False
        try:
            self._requests.put_nowait((event_id, cam.cfg.id))
        except queue.Full:
            log.warning("vision: snapshot %s refused, %d already waiting", event_id, REQUESTS)
            return False
        return True

    def _pick(self, camera: str | None) -> _Camera | None:
        cams = [self._cams[camera]] if camera in self._cams else []
        if camera is None:
            cams = list(self._cams.values())
        for cam in cams:
            if cam.capture.slot.peek() is not None and cam.capture.state == "ok":
                return cam
        return None

    def arm(self, name: str, until: float | None = None) -> bool:
        """Arm a rule or zone (every camera that has it) until ``until`` (time.monotonic)."""
        return self._override(name, until, armed=True)

    def disarm(self, name: str, until: float | None = None) -> bool:
        """Disarm a rule or zone until ``until`` (time.monotonic); None: until changed."""
        return self._override(name, until, armed=False)

    def _override(self, name: str, until: float | None, *, armed: bool) -> bool:
        found = False
        with self._rules_lock:
            for cam in self._cams.values():
                rules = cam.pipeline.rules
                found |= rules.arm(name, until) if armed else rules.disarm(name, until)
        if found:
            log.info("vision: %s %s until %s", "armed" if armed else "disarmed", name, until)
        return found

    # ------------------------------------------------------------------ the thread
    def _turn(self) -> None:
        """Every camera that is due, then wait for the next one (serving snapshots)."""
        now = time.monotonic()
        for cam in self._cams.values():
            cam.capture.check(now)
            if now >= cam.next_due:
                cam.next_due = max(cam.next_due + 1.0 / cam.cfg.fps, now)
                self._analyse(cam)
        due = min((c.next_due for c in self._cams.values()), default=now + 1.0)
        self._serve(max(0.0, min(due - time.monotonic(), 1.0)))

    def _wake(self) -> None:
        with contextlib.suppress(queue.Full):  # full: the thread is not waiting anyway
            self._requests.put_nowait(("", ""))

    def _crashed(self, exc: Exception) -> None:
        log.error(
            "vision thread crashed; detection stopped (the bell is unaffected): %s",
            exc,
            exc_info=exc,
        )

    def _serve(self, wait: float) -> None:
        """Wait for the next due camera, answering snapshot requests meanwhile."""
        if self.matcher is not None:
            self.matcher.expire()
        try:
            # Behind schedule (a slow detector), one request is still served per turn: a
            # snapshot or a lookout must not wait until the cameras are idle.
            item = self._requests.get(timeout=wait) if wait > 0 else self._requests.get_nowait()
        except queue.Empty:
            return
        if isinstance(item, str):
            self._look_back(item)
        elif item[0]:
            self._requested_snapshot(item[0], self._cams[item[1]])

    def _look_back(self, lookout_id: str) -> None:
        assert self.matcher is not None
        try:
            t0 = time.perf_counter()
            sent = self.matcher.look_back(lookout_id)
            ms = (time.perf_counter() - t0) * 1000
            log.info("vision: lookout %s looked back in %.0f ms, %d sent", lookout_id, ms, sent)
        except Exception:  # a lookout is never worth the cameras' detection
            self.lookout_errors += 1
            log.exception("vision: lookout %s: looking back failed", lookout_id)

    def _analyse(self, cam: _Camera) -> None:
        frame = cam.capture.slot.take(cam.last_seq)
        if frame is None:
            return
        cam.last_seq = frame.seq
        if not cam.gate(frame.image, frame.t) or self.detector is None:
            return
        try:
            t0 = time.perf_counter()
            dets = self.detector(frame.image)
            cam.infer_ms.append((time.perf_counter() - t0) * 1000)
            cam.analysed.append(frame.t)
            h, w = frame.image.shape[:2]
            local = datetime.fromtimestamp(frame.wall_ms / 1000)
            with self._rules_lock:
                result = cam.pipeline.step(dets, (w, h), frame.t, local)
        except Exception:  # one bad frame must not stop the other cameras
            cam.errors += 1
            if cam.errors % LOG_EVERY == 1:
                log.exception("vision: camera %s frame failed (%d so far)", cam.cfg.id, cam.errors)
            return
        cam.last = (frame, dets)
        if cam.recorder is not None:
            self._record(cam, frame, dets, result.tracked)
        for ev in result.events:
            self._object_event(cam, ev, frame.wall_ms)
        for hit in result.hits:
            self._rule_event(cam, hit, frame, dets)

    def _record(self, cam: _Camera, frame: Frame, dets: Detections, tracked: Detections) -> None:
        """Appearance records of the person tracks that ended (or are due a refresh)."""
        assert cam.recorder is not None
        assert self.index is not None
        try:
            t0 = time.perf_counter()
            live = cam.pipeline.tracker.live_ids
            records = cam.recorder.update(
                frame.image, dets, tracked, live=live, t=frame.t, wall_ms=frame.wall_ms
            )
            if records:
                self.index.insert(records)
                if self.matcher is not None:
                    self.matcher.live(records)
            cam.lookout_ms.append((time.perf_counter() - t0) * 1000)
        except Exception:  # appearance records are never worth a camera's detection
            self.lookout_errors += 1
            if self.lookout_errors % LOG_EVERY == 1:
                log.exception("vision: appearance records failed (%d so far)", self.lookout_errors)

    # ------------------------------------------------------------------ events
    def _reporter(self, cid: str) -> Callable[[str, str | None], None]:
        def report(kind: str, why: str | None) -> None:
            ev = self.sink.stamper.camera(ev=kind, cam=cid, why=why)
            self.sink.emit(ev)
            if kind.startswith("flapping"):
                return  # the retained state stays the one the centre was last told
            state = {"lost": "lost", "tampered": "tampered"}.get(kind, "ok")
            self.sink.state(f"camera-{cid}", state, ev.ts, {"why": why} if why else None)

        return report

    def _class_name(self, cls: int) -> str:
        names: list[str] = self.detector.names if self.detector is not None else []
        return names[cls] if 0 <= cls < len(names) else f"class{cls}"

    def _object_event(self, cam: _Camera, ev: TrackEvent, wall_ms: int) -> None:
        self.sink.emit(
            self.sink.stamper.object(
                ts=wall_ms,
                ev=ev.ev,
                cam=cam.cfg.id,
                tid=ev.tid,
                cls=self._class_name(ev.cls),
                sc=ev.score,
                box=ev.box,
                zones=list(ev.zones) or None,
                why=ev.why,
                dur=None if ev.dur_s is None else round(ev.dur_s * 1000),
            )
        )

    def _rule_event(self, cam: _Camera, hit: RuleHit, frame: Frame, dets: Detections) -> None:
        event = self.sink.stamper.rule(
            ts=frame.wall_ms,
            rule=hit.rule,
            type=hit.type,
            cam=cam.cfg.id,
            zone=hit.zone,
            tids=list(hit.tids),
            n=hit.n,
            dwell=None if hit.dwell_s is None else round(hit.dwell_s * 1000),
            dir=hit.dir,
            snap=True,
        )
        self.sink.emit(event)
        self._send_snapshot(event.id, cam, frame.image, dets)

    def _requested_snapshot(self, event_id: str, cam: _Camera) -> None:
        frame = cam.capture.slot.peek()
        if frame is None:
            log.warning("vision: snapshot %s: camera %s has no frame", event_id, cam.cfg.id)
            return
        dets = None
        if cam.last is not None and cam.last[0].seq == frame.seq:
            dets = cam.last[1]
        elif cam.cfg.blur_persons and self.detector is not None:
            try:
                dets = self.detector(frame.image)  # blur must cover who is there now
            except Exception:  # a snapshot is not worth a crash
                log.exception("vision: snapshot %s: detector failed", event_id)
                return  # no blur possible: send nothing rather than an unblurred face
        self._send_snapshot(event_id, cam, frame.image, dets)

    def _send_snapshot(
        self, event_id: str, cam: _Camera, image: npt.NDArray[np.uint8], dets: Detections | None
    ) -> None:
        blur = None
        if cam.cfg.blur_persons:
            if dets is None:  # cannot know where people are: send nothing, not a face
                log.error("vision: snapshot %s not sent: person blur without a detector", event_id)
                return
            blur = dets.xyxy[dets.class_ids == self._person]
        try:
            jpeg = encode_snapshot(
                image,
                masks=cam.cfg.privacy_masks,
                blur_boxes=blur,
                max_bytes=cam.cfg.snapshot_max_bytes,
            )
        except SnapshotError as exc:
            log.error("vision: snapshot %s not sent: %s", event_id, exc)
            return
        self.sink.snapshot(event_id, jpeg)
        self.snapshots += 1
