"""The vision service end to end on a file made here, into a real spool file."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from agent.config import CameraConfig, DetectionConfig
from agent.detect.detections import Detections
from agent.events import EventStamper, Priority, Topics
from agent.outbox import Outbox
from agent.spool import Spool, SpoolRow
from agent.vision.service import VisionService

pytestmark = pytest.mark.timeout(60)
TOPICS = Topics("pole", "gangnam", "pole-0001")


class BrightBoxDetector:
    """A tiny real detector: the bounding box of the near-white pixels is a person."""

    def __init__(self, fail: bool = False) -> None:
        self.names = ["person", "car"]
        self.fail = fail
        self.calls = 0

    def __call__(self, frame: np.ndarray) -> Detections:
        self.calls += 1
        if self.fail:
            raise RuntimeError("inference exploded")
        ys, xs = np.nonzero(frame.min(axis=2) > 240)
        if len(xs) == 0:
            return Detections.empty()
        box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
        return Detections(box, np.array([0.9], np.float32), np.array([0], np.int32))

    def facts(self) -> dict[str, Any]:
        return {"calls": self.calls}


def walker_video(path: Path, n: int = 80, fps: float = 20.0) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (320, 240))
    for i in range(n):
        img = np.full((240, 320, 3), 60, np.uint8)
        x = 10 + i * 3
        img[120:200, x : x + 30] = 255
        w.write(img)
    w.release()
    return path


def camera(source: Path, **kw: Any) -> CameraConfig:
    return CameraConfig.model_validate(
        {
            "id": "cam-1",
            "source": str(source),
            "fps": 10,
            "motion": {"enabled": False},
            "zones": [{"name": "east", "polygon": [[0.5, 0], [1, 0], [1, 1], [0.5, 1]]}],
            "rules": [
                {"name": "east-intrusion", "type": "intrusion", "zone": "east"},
                {"name": "mid-line", "type": "line_crossing", "line": [[0.5, 0], [0.5, 1]]},
            ],
            "privacy_masks": [[[0, 0], [0.2, 0], [0.2, 0.2], [0, 0.2]]],
            **kw,
        }
    )


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    spool = Spool(tmp_path / "spool.db")
    yield Outbox(spool, TOPICS, EventStamper("pole-0001"))
    spool.close()


def rows(outbox: Outbox) -> list[SpoolRow]:
    return outbox.spool.next_batch(10_000)


def wait_rows(outbox: Outbox, pred: Callable[[list[SpoolRow]], bool], timeout: float = 20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = rows(outbox)
        if pred(got):
            return got
        time.sleep(0.05)
    raise AssertionError(
        f"spool never matched: {[(r.topic, r.payload[:80]) for r in rows(outbox)]}"
    )


def events(got: list[SpoolRow], kind: str) -> list[tuple[SpoolRow, dict[str, Any]]]:
    topic = TOPICS.event(kind)
    return [(r, json.loads(r.payload)) for r in got if r.topic == topic]


def start(service: VisionService) -> VisionService:
    service.start()
    names = sorted(t.name for t in service.threads())
    assert names == ["capture-cam-1", "vision"]
    return service


def test_events_land_in_the_spool_with_topics_and_priorities(tmp_path: Path, outbox: Outbox):
    det = BrightBoxDetector()
    svc = start(
        VisionService(
            [camera(walker_video(tmp_path / "w.avi"))],
            DetectionConfig(),
            outbox,
            detector_factory=lambda: det,
        )
    )
    try:
        got = wait_rows(outbox, lambda g: any(e["ev"] == "lost" for _, e in events(g, "camera")))
        time.sleep(0.2)
        got = rows(outbox)
        facts = svc.facts()["cam-1"]
    finally:
        svc.stop(3.0)
    assert not any(t.is_alive() for t in svc.threads())
    objs = events(got, "object")
    assert objs
    assert all(r.priority == Priority.OBJECT for r, _ in objs)
    starts = [e for _, e in objs if e["ev"] == "start"]
    assert len(starts) == 1
    assert starts[0]["cls"] == "person"
    assert starts[0]["cam"] == "cam-1"
    assert all(0 <= v <= 1 for v in starts[0]["box"])
    assert all(len(r.payload) < 300 for r, _ in objs)
    rules = events(got, "rule")
    assert {e["rule"] for _, e in rules} == {"east-intrusion", "mid-line"}
    assert all(r.priority == Priority.RULE and e["snap"] is True for r, e in rules)
    line = next(e for _, e in rules if e["rule"] == "mid-line")
    assert line["dir"] == "right_to_left"  # seen from a (top) towards b, +x is on the left
    assert line["tids"] == [starts[0]["tid"]]
    for _, e in rules:
        snap = [r for r in got if r.topic == TOPICS.snapshot(e["id"])]
        assert len(snap) == 1
        assert snap[0].priority == Priority.MEDIA
        img = cv2.imdecode(np.frombuffer(snap[0].payload, np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (240, 320, 3)
        assert img[:40, :56].max() <= 8  # the privacy mask
    cams = events(got, "camera")
    assert [(e["ev"], e["why"]) for _, e in cams] == [("lost", "ended")]
    assert cams[0][0].priority == Priority.RULE
    state = [r for r in got if r.topic == TOPICS.state("camera-cam-1")]
    assert state[-1].retain
    assert json.loads(state[-1].payload)["state"] == "lost"
    assert facts["state"] == "ended"
    assert facts["infer_ms_p50"] is not None
    assert facts["tracks"] == 1


def test_snapshot_request_and_arming(tmp_path: Path, outbox: Outbox) -> None:
    det = BrightBoxDetector()
    src = walker_video(tmp_path / "w.avi", n=60)
    svc = start(
        VisionService(
            [camera(src, loop=True, blur_persons=True)],
            DetectionConfig(),
            outbox,
            detector_factory=lambda: det,
        )
    )
    try:
        assert svc.request_snapshot("bell-1", "nope") is False
        assert svc.arm("nope", None) is False
        assert svc.disarm("east", time.monotonic() + 3600) is True
        deadline = time.monotonic() + 10
        while not svc.request_snapshot("bell-1") and time.monotonic() < deadline:
            time.sleep(0.05)
        wait_rows(outbox, lambda g: any(r.topic == TOPICS.snapshot("bell-1") for r in g))
        got = wait_rows(outbox, lambda g: bool(events(g, "rule")))
        assert svc.last_progress() > time.monotonic() - 2
    finally:
        svc.stop(3.0)
    assert {e["rule"] for _, e in events(got, "rule")} == {"mid-line"}  # east is disarmed
    snap = next(r for r in got if r.topic == TOPICS.snapshot("bell-1"))
    assert snap.priority == Priority.MEDIA
    assert cv2.imdecode(np.frombuffer(snap.payload, np.uint8), cv2.IMREAD_COLOR) is not None


def test_failing_detector_degrades_and_never_crashes(tmp_path: Path, outbox: Outbox) -> None:
    det = BrightBoxDetector(fail=True)
    src = walker_video(tmp_path / "w.avi", n=30)
    svc = start(
        VisionService([camera(src)], DetectionConfig(), outbox, detector_factory=lambda: det)
    )
    try:
        wait_rows(outbox, lambda g: bool(events(g, "camera")))
        assert all(t.is_alive() for t in svc.threads() if t.name == "vision")
        assert svc.facts()["cam-1"]["errors"] >= 1
    finally:
        svc.stop(3.0)


def test_detector_that_cannot_load_leaves_cameras_watched(tmp_path: Path, outbox: Outbox):
    def broken() -> BrightBoxDetector:
        raise ValueError("detection.model: /x.onnx is not an ONNX model")

    svc = start(
        VisionService(
            [camera(tmp_path / "missing.avi")], DetectionConfig(), outbox, detector_factory=broken
        )
    )
    try:
        got = wait_rows(outbox, lambda g: bool(events(g, "camera")))
    finally:
        svc.stop(3.0)
    assert [(e["ev"], e["why"]) for _, e in events(got, "camera")] == [("lost", "open_failed")]
    assert svc.detector_facts()["state"] == "failed"
    assert "not an ONNX model" in svc.detector_facts()["why"]
    assert svc.facts()["cam-1"]["detector"] == "off"
