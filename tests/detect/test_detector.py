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
from agent.detect.labels import names_from_metadata


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
    # The config checks the file at load; this is a model removed after that.
    missing = tmp_path / "nope.onnx"
    missing.write_bytes(b"")
    cfg = DetectionConfig(model=str(missing))
    missing.unlink()
    with pytest.raises(ModelError, match="does not exist"):
        Detector(cfg)


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


# --------------------------------------------------------------------------- tiny models
# onnx is not installed, so tiny models are written as protobuf by hand: a few message
# types of onnx.proto (field numbers from onnx/onnx.proto, IR version 8, opset 17).
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num: int, value: int | bytes | str) -> bytes:
    if isinstance(value, int):
        return _varint(num << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def _value_info(name: str, dims: list[int | str]) -> bytes:
    shape = b"".join(_field(1, _field(1, d) if isinstance(d, int) else _field(2, d)) for d in dims)
    tensor_type = _field(1, 1) + _field(2, shape)  # elem_type FLOAT, shape
    return _field(1, name) + _field(2, _field(1, tensor_type))


def tiny_model(path: Path, const: npt.NDArray[np.float32], names: str | None = None) -> Path:
    """An ONNX model whose one output is ``const`` whatever the image input."""
    tensor = b"".join(_field(1, d) for d in const.shape) + _field(2, 1)
    tensor += _field(9, const.astype("<f4").tobytes())
    attr = _field(1, "value") + _field(5, tensor) + _field(20, 4)  # type TENSOR
    node = _field(2, "output0") + _field(4, "Constant") + _field(5, attr)
    graph = _field(1, node) + _field(2, "tiny")
    graph += _field(11, _value_info("images", [1, 3, "height", "width"]))
    graph += _field(12, _value_info("output0", list(const.shape)))
    model = _field(1, 8) + _field(2, "pole-agent-test") + _field(7, graph)
    model += _field(8, _field(1, "") + _field(2, 17))
    if names is not None:
        model += _field(14, _field(1, "names") + _field(2, names))
    path.write_bytes(model)
    return path


def test_raw_anchor_free_model_end_to_end(tmp_path: Path) -> None:
    # Three classes, 16 anchors: A and B overlap (same class), C overlaps A (other class),
    # the rest is background.  Boxes cx, cy, w, h in input pixels.
    out = np.zeros((1, 7, 16), np.float32)
    out[0, :, 0] = [50, 50, 20, 40, 0.9, 0.1, 0.0]
    out[0, :, 1] = [52, 51, 20, 40, 0.8, 0.2, 0.1]
    out[0, :, 2] = [51, 50, 20, 40, 0.1, 0.7, 0.0]
    out[0, :, 3] = [200, 100, 10, 10, 0.1, 0.3, 0.95]
    model = tiny_model(tmp_path / "raw.onnx", out, "{0: 'person', 1: 'car', 2: 'dog'}")
    det = Detector(DetectionConfig(model=str(model), input_size=320, classes=["person", "car"]))
    assert det.layout == "anchor_free"
    assert det.dynamic
    assert det.names == ["person", "car", "dog"]
    dets = det(np.zeros((576, 768, 3), np.uint8))
    assert det.input_shape == (1, 3, 256, 320)  # 4:3 letterboxed to a multiple of 32
    assert dets.class_ids.tolist() == [0, 1]
    np.testing.assert_allclose(dets.scores, [0.9, 0.7])
    # input -> frame: scale 768/320 = 2.4, vertical pad (256 - 240) / 2 = 8
    np.testing.assert_allclose(
        dets.xyxy,
        [[40 * 2.4, 22 * 2.4, 60 * 2.4, 62 * 2.4], [41 * 2.4, 22 * 2.4, 61 * 2.4, 62 * 2.4]],
        rtol=1e-5,
    )


def test_labels_file_names_classes(tmp_path: Path) -> None:
    out = np.zeros((1, 6, 20), np.float32)
    model = tiny_model(tmp_path / "nolabels.onnx", out)
    labels = tmp_path / "labels.txt"
    labels.write_text("# site classes\nperson\nbicycle\n", encoding="utf-8")
    det = Detector(DetectionConfig(model=str(model), labels=str(labels)))
    assert det.names == ["person", "bicycle"]
    unnamed = Detector(DetectionConfig(model=str(model), classes=["class1"]))
    assert unnamed.names == ["class0", "class1"]
    labels.write_text("person\nbicycle\ncar\n", encoding="utf-8")
    with pytest.raises(
        ModelError, match=r"\[1, 6, 20\] reads as anchor_free with 2 classes, but 3"
    ):
        Detector(DetectionConfig(model=str(model), labels=str(labels)))
    with pytest.raises(
        ModelError, match=r"'anchor_free' but the output shape is \[1, 6, 20\] with 3 class names"
    ):
        Detector(DetectionConfig(model=str(model), labels=str(labels), layout="anchor_free"))


def test_unknown_output_shape_names_it(tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "odd.onnx", np.zeros((1, 3, 5, 7), np.float32))
    with pytest.raises(ModelError, match=r"odd\.onnx: output shape \[1, 3, 5, 7\] is not"):
        Detector(DetectionConfig(model=str(model)))
    model = tiny_model(tmp_path / "odd2.onnx", np.zeros((1, 4, 9), np.float32))
    with pytest.raises(ModelError, match=r"\[1, 4, 9\] matches no known layout"):
        Detector(DetectionConfig(model=str(model)))


def test_metadata_names_parsed_as_literals_only() -> None:
    assert names_from_metadata({"names": "{0: 'person', 2: 'car'}"}) == ["person", "class1", "car"]
    assert names_from_metadata({"names": "['a', 'b']"}) == ["a", "b"]
    assert names_from_metadata({}) is None
    # Code in a model file is never run: not a literal, so no names (and no side effect).
    assert names_from_metadata({"names": "__import__('os').getcwd()"}) is None
    assert names_from_metadata({"names": "{0: 'a'"}) is None
    assert names_from_metadata({"names": "{-1: 'a'}"}) is None
