"""The real default model on the real sample video, and the errors a bad model gives."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from agent import assets
from agent.config import DetectionConfig
from agent.detect import Detections, Detector, ModelError


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(DetectionConfig())


@pytest.fixture(scope="module")
def frame100() -> npt.NDArray[np.uint8]:
    cap = cv2.VideoCapture(str(assets.verify("video")))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, 100)
        ok, frame = cap.read()
    finally:
        cap.release()
    assert ok
    assert frame.shape == (576, 768, 3)
    return np.asarray(frame, dtype=np.uint8)


def _named(det: Detector, dets: Detections, name: str) -> npt.NDArray[np.float32]:
    ids = [i for i, n in enumerate(det.names) if n == name]
    return dets.xyxy[np.isin(dets.class_ids, ids)]


def test_default_model_is_end2end_coco(detector: Detector) -> None:
    assert detector.layout == "end2end"
    assert len(detector.names) == 80
    assert detector.names[:3] == ["person", "bicycle", "car"]
    assert detector.input_shape == (1, 3, 640, 640)
    assert not detector.dynamic


def test_frame_100_people_and_vehicles(detector: Detector, frame100: npt.NDArray[np.uint8]) -> None:
    before = frame100.copy()
    dets = detector(frame100)
    assert np.array_equal(frame100, before)  # input not mutated
    persons = _named(detector, dets, "person")
    vehicles = np.concatenate([_named(detector, dets, "truck"), _named(detector, dets, "car")])
    assert len(persons) >= 4
    assert len(vehicles) >= 1
    h, w = frame100.shape[:2]
    assert (dets.xyxy[:, [0, 2]] >= 0).all()
    assert (dets.xyxy[:, [0, 2]] <= w).all()
    assert (dets.xyxy[:, [1, 3]] >= 0).all()
    assert (dets.xyxy[:, [1, 3]] <= h).all()
    assert (dets.xyxy[:, 2] > dets.xyxy[:, 0]).all()
    assert (dets.xyxy[:, 3] > dets.xyxy[:, 1]).all()
    # People walk the precinct below the parked vehicles; their feet are in the middle
    # or lower part of the picture and they are taller than wide.
    feet_y = persons[:, 3]
    assert (np.sort(feet_y)[-4:] > 0.3 * h).all()
    assert ((persons[:, 3] - persons[:, 1]) > (persons[:, 2] - persons[:, 0])).all()
    # The van and the car stand at the top right of the view.
    best_vehicle = vehicles[0]
    cx, cy = (best_vehicle[0] + best_vehicle[2]) / 2, (best_vehicle[1] + best_vehicle[3]) / 2
    assert cx > 0.6 * w
    assert cy < 0.4 * h
    assert (dets.scores >= 0.35).all()
    assert set(dets.track_ids.tolist()) == {-1}


def test_classes_and_per_class_thresholds(frame100: npt.NDArray[np.uint8]) -> None:
    only_cars = Detector(DetectionConfig(classes=["car", "truck"]))
    dets = only_cars(frame100)
    assert len(dets) >= 1
    assert {only_cars.names[c] for c in dets.class_ids} <= {"car", "truck"}
    strict = Detector(DetectionConfig(classes=["person"], class_thresholds={"person": 0.75}))
    dets = strict(frame100)
    assert len(dets) >= 1
    assert (dets.scores >= 0.75).all()
    assert (dets.class_ids == 0).all()


def test_facts_report_timings(detector: Detector, frame100: npt.NDArray[np.uint8]) -> None:
    for _ in range(3):
        detector(frame100)
    facts = detector.facts()
    assert facts["frames"] >= 3
    assert facts["layout"] == "end2end"
    assert facts["infer_ms_p50"] > 0
    assert facts["infer_ms_p95"] >= facts["infer_ms_p50"]
    assert facts["frame_ms_p50"] >= facts["infer_ms_p50"]


def test_grey_frame_accepted_bad_frame_refused(detector: Detector) -> None:
    grey = np.full((120, 160), 90, dtype=np.uint8)
    assert isinstance(detector(grey), Detections)
    with pytest.raises(ValueError, match="BGR uint8"):
        detector(np.zeros((120, 160, 3), dtype=np.float32))  # type: ignore[arg-type]


def test_missing_model_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.onnx"
    with pytest.raises(ModelError, match="does not exist"):
        Detector(DetectionConfig(model=str(missing)))


def test_not_onnx_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ModelError, match=r"junk\.onnx is not an ONNX model"):
        Detector(DetectionConfig(model=str(junk)))


def test_unknown_class_name_is_an_error() -> None:
    with pytest.raises(ModelError, match="'persn'"):
        Detector(DetectionConfig(classes=["persn"]))
    with pytest.raises(ModelError, match="class_thresholds: 'vann'"):
        Detector(DetectionConfig(class_thresholds={"vann": 0.5}))


def test_unavailable_provider_is_an_error() -> None:
    with pytest.raises(ModelError, match=r"provider is 'cuda'.*detection\.provider: cpu"):
        Detector(DetectionConfig(provider="cuda"))


def test_forced_wrong_layout_names_the_shape() -> None:
    with pytest.raises(ModelError, match=r"\[1, 300, 6\]"):
        Detector(DetectionConfig(layout="anchor_free"))
