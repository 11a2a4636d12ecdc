"""`pole-agent lookout scan VIDEO`: the pole's pipeline and matcher over a video file.

Detector, tracker and appearance records exactly as on a pole (one camera ``scan``), into a
temporary index; then the lookout's :class:`~agent.lookout.active.Matcher` looks back over
the whole video.  Candidates' thumbnails and a table (``candidates.tsv``) go into ``--out``.
For technicians and for evaluating the matcher.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.control.lookout import LookoutArgs
from agent.errors import UserError
from agent.events import Event, EventStamper, LookoutEvent, now_ms

__all__ = ["ScanResult", "scan"]


@dataclass
class _Collect:
    """An EventSink that keeps candidates and writes their thumbnails into ``out``."""

    out: Path
    stamper: EventStamper = field(default_factory=lambda: EventStamper("scan"))
    events: list[LookoutEvent] = field(default_factory=list)
    thumbs: dict[str, Path] = field(default_factory=dict)

    def emit(self, event: Event) -> bool:
        if isinstance(event, LookoutEvent):
            self.events.append(event)
        return True

    def state(self, *_a: Any, **_k: Any) -> None:
        return None

    def snapshot(self, event_id: str, jpeg: bytes) -> None:
        event = next(e for e in self.events if e.id == event_id)
        path = self.out / f"{event.cam}_{event.tid}.jpg"
        path.write_bytes(jpeg)
        self.thumbs[event_id] = path


@dataclass
class ScanResult:
    frames: int
    records: int
    candidates: list[tuple[LookoutEvent, Path | None]]
    table: Path


def _records(video: Path, fps: float, index: Any) -> tuple[int, int, int]:
    """Detector, tracker and recorder over the video into ``index``: (frames analysed,
    records, wall ms of the video's start, placed so that it ends now)."""
    import cv2
    import numpy as np

    from agent.config import CameraConfig, DetectionConfig
    from agent.detect.detector import Detector
    from agent.detect.pipeline import TrackPipeline
    from agent.lookout.record import Recorder

    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise UserError(f"VIDEO: {video} cannot be opened as a video")
    det = Detector(DetectionConfig())
    pipe = TrackPipeline(CameraConfig(id="scan", source=str(video)), det.names)
    recorder = Recorder("scan", det.names)
    vfps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    step = max(1, round(vfps / fps))
    base = now_ms() - int((cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) / vfps * 1000)
    n = frames = records = 0
    last = None
    while True:
        ok, raw = cap.read()
        if not ok:
            break
        n += 1
        if (n - 1) % step:
            continue
        frames += 1
        frame, t = np.asarray(raw, np.uint8), n / vfps
        dets = det(frame)
        res = pipe.step(dets, (frame.shape[1], frame.shape[0]), t, datetime.now())
        wall = base + int(t * 1000)
        live = pipe.tracker.live_ids
        records += index.insert(
            recorder.update(frame, dets, res.tracked, live=live, t=t, wall_ms=wall)
        )
        last = (frame, dets.select(dets.class_ids < 0), t, wall)  # no one: every track ends
    cap.release()
    if last is not None:
        image, none, t, wall = last
        got = recorder.update(image, none, none, live=frozenset(), t=t, wall_ms=wall)
        records += index.insert(got)
    return frames, records, base


def scan(video: Path, spec: LookoutArgs, out: Path, *, fps: float = 5.0) -> ScanResult:
    """Run the pipeline over ``video`` at ``fps`` analysed frames a second; match ``spec``."""
    from agent.lookout.active import Lookouts, Matcher
    from agent.lookout.audit import AuditLog
    from agent.lookout.index import AppearanceIndex

    out.mkdir(parents=True, exist_ok=True)
    sink = _Collect(out)
    with tempfile.TemporaryDirectory() as tmp:
        index = AppearanceIndex(Path(tmp) / "scan.db")
        try:
            frames, records, base = _records(video, fps, index)
            table = Lookouts(1)
            whole = spec.model_copy(update={"since_s": 7 * 86400.0})
            table.add(whole, 3600.0, "local", "")
            Matcher(table, index, sink, AuditLog(out / "scan-audit.jsonl")).look_back(spec.id)
        finally:
            index.close()
    found = [(e, sink.thumbs.get(e.id)) for e in sorted(sink.events, key=lambda e: -e.sc)]
    path = out / "candidates.tsv"
    lines = ["rank\ttrack\tfrom_s\tto_s\tscore\tslots\tthumb"]
    for k, (e, thumb) in enumerate(found, 1):
        slots = ", ".join(f"{s} {v.how} {v.m:.2f}" for s, v in e.m.items())
        lines.append(
            f"{k}\t{e.tid}\t{(e.t0 - base) / 1000:.1f}\t{(e.t1 - base) / 1000:.1f}\t{e.sc:.3f}"
            f"\t{slots}\t{thumb.name if thumb else ''}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ScanResult(frames, records, found, path)
