"""What happens to one camera's detections: track, observe against zones, lifecycle, rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from agent.config import CameraConfig
from agent.detect.detections import Detections
from agent.detect.lifecycle import Lifecycle, LifecycleParams, TrackEvent
from agent.detect.rules import RuleEngine, RuleHit, Scene
from agent.detect.tracker import Tracker, TrackerParams
from agent.detect.zones import Seen, ZoneSet, observe

__all__ = ["StepResult", "TrackPipeline"]


@dataclass(frozen=True)
class StepResult:
    tracked: Detections  # confirmed tracks matched in this frame, frame pixels
    seen: list[Seen]  # the same, normalised, with zones
    events: list[TrackEvent]
    hits: list[RuleHit]


class TrackPipeline:
    """Tracker -> lifecycle -> rules for one camera. Pure: time comes in as arguments."""

    def __init__(
        self,
        camera: CameraConfig,
        class_names: Sequence[str],
        *,
        tracker: TrackerParams | None = None,
        lifecycle: LifecycleParams | None = None,
        first_tid: int = 1,
    ) -> None:
        self.camera = camera
        self.zones = ZoneSet.of(camera.zones)
        self.tracker = Tracker(tracker, first_id=first_tid)
        self.lifecycle = Lifecycle(lifecycle)
        self.rules = RuleEngine(camera.rules, class_names)

    def step(
        self, dets: Detections, size: tuple[int, int], t: float, local: datetime
    ) -> StepResult:
        """One analysed frame of ``size`` (width, height) at monotonic ``t``."""
        tracked = self.tracker.update(dets, t)
        live = self.tracker.live_ids
        seen = observe(tracked, size, self.zones)
        events = self.lifecycle.update(seen, t, live)
        started = self.lifecycle.started
        active = [s for s in seen if s.tid in started]
        hits = self.rules.update(Scene(active, live, t, local))
        return StepResult(tracked, seen, events, hits)
