"""What the vision thread sends: camera, object and rule events, and their snapshots.

Kept apart from :mod:`agent.vision.service` (which decides *when*): this module turns the
pipeline's results into the contract's events through the stage's
:class:`~agent.outbox.EventSink`, and a frame into a masked, person-blurred, size-capped
JPEG.  A snapshot that cannot be made safely (blur wanted, but no detections) is not sent:
never an unblurred face.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from agent.config import CameraConfig
from agent.detect.detections import Detections
from agent.detect.lifecycle import TrackEvent
from agent.detect.rules import RuleHit
from agent.outbox import EventSink
from agent.video.snapshot import SnapshotError, encode_snapshot

__all__ = ["Emitter"]

log = logging.getLogger(__name__)


class Emitter:
    """Events of one vision service, named by the detector's class ``names``."""

    def __init__(self, sink: EventSink, names: list[str]) -> None:
        self.sink = sink
        self.names = names
        self.person = names.index("person") if "person" in names else -1

    def reporter(self, cid: str) -> Callable[[str, str | None], None]:
        """A capture's report callback: a camera event and the camera's retained state."""

        def report(kind: str, why: str | None) -> None:
            ev = self.sink.stamper.camera(ev=kind, cam=cid, why=why)
            self.sink.emit(ev)
            if kind.startswith("flapping"):
                return  # the retained state stays the one the centre was last told
            state = {"lost": "lost", "tampered": "tampered"}.get(kind, "ok")
            self.sink.state(f"camera-{cid}", state, ev.ts, {"why": why} if why else None)

        return report

    def class_name(self, cls: int) -> str:
        return self.names[cls] if 0 <= cls < len(self.names) else f"class{cls}"

    def object_event(self, cid: str, ev: TrackEvent, wall_ms: int) -> None:
        self.sink.emit(
            self.sink.stamper.object(
                ts=wall_ms,
                ev=ev.ev,
                cam=cid,
                tid=ev.tid,
                cls=self.class_name(ev.cls),
                sc=ev.score,
                box=ev.box,
                zones=list(ev.zones) or None,
                why=ev.why,
                dur=None if ev.dur_s is None else round(ev.dur_s * 1000),
            )
        )

    def rule_event(
        self,
        cfg: CameraConfig,
        hit: RuleHit,
        wall_ms: int,
        image: npt.NDArray[np.uint8],
        dets: Detections,
    ) -> None:
        """The rule's event, then its snapshot (the frame that triggered it)."""
        event = self.sink.stamper.rule(
            ts=wall_ms,
            rule=hit.rule,
            type=hit.type,
            cam=cfg.id,
            zone=hit.zone,
            tids=list(hit.tids),
            n=hit.n,
            dwell=None if hit.dwell_s is None else round(hit.dwell_s * 1000),
            dir=hit.dir,
            snap=True,
        )
        self.sink.emit(event)
        self.snapshot(event.id, cfg, image, dets)

    def snapshot(
        self,
        event_id: str,
        cfg: CameraConfig,
        image: npt.NDArray[np.uint8],
        dets: Detections | None,
    ) -> None:
        """Masked, persons blurred when configured, capped at the camera's size limit."""
        blur = None
        if cfg.blur_persons:
            if dets is None:  # cannot know where people are: send nothing, not a face
                log.error("vision: snapshot %s not sent: person blur without a detector", event_id)
                return
            blur = dets.xyxy[dets.class_ids == self.person]
        try:
            jpeg = encode_snapshot(
                image,
                masks=cfg.privacy_masks,
                blur_boxes=blur,
                max_bytes=cfg.snapshot_max_bytes,
            )
        except SnapshotError as exc:
            log.error("vision: snapshot %s not sent: %s", event_id, exc)
            return
        self.sink.snapshot(event_id, jpeg)
