"""`pole-agent model quantize`: graph analysis, errors, the floor, and one real run."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from agent import assets
from agent.cli import main
from agent.config import DetectionConfig
from agent.detect import Detector
from agent.model import quantize as quantize_module
from agent.model.agreement import Agreement
from agent.model.measure import Speed


def _frame(index: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    cap = cv2.VideoCapture(str(assets.verify("video")))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = cap.read()
    finally:
        cap.release()
    assert ok
    return np.asarray(frame, dtype=np.uint8)


def test_float_regions_of_the_default_model() -> None:
    import onnx

    from agent.model.graph import float_regions, name_nodes

    model = onnx.load(str(assets.verify("model")))
    name_nodes(model.graph)
    regions = float_regions(model.graph)
    kinds = {n.name: n.op_type for n in model.graph.node}
    assert len(regions.head_concats) == 1
    assert regions.head_concats[0] in regions.tail
    tail_ops = {kinds[n] for n in regions.tail}
    assert {"NonMaxSuppression", "Softmax", "ArgMax", "NonZero"} <= tail_ops
    # The node that makes the output is float; the backbone's first conv is not.
    last = next(n.name for n in model.graph.node if "output0" in n.output)
    assert last in regions.tail
    assert model.graph.node[0].name not in regions.tail
    # One box conv and one class conv per scale, three scales.
    assert sum(kinds[n] == "Conv" for n in regions.head) == 6
    # The stem: the conv on the image and its SiLU.
    assert [kinds[n] for n in regions.stem] == ["Conv", "Sigmoid", "Mul"]
    assert model.graph.node[0].name in regions.stem


def test_softmax_rewrite_is_the_same_arithmetic() -> None:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from agent.model.rewrite import softmax_inner_axes

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 4, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 4, 8])
    last = helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 16, 4, 8])
    graph = helper.make_graph(
        [
            helper.make_node("Softmax", ["x"], ["y"], "dfl", axis=1),
            helper.make_node("Softmax", ["x"], ["z"], "last", axis=-1),
        ],
        "g",
        [x],
        [y, last],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model = onnx.shape_inference.infer_shapes(model)
    before = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert softmax_inner_axes(model, {"dfl", "last"}) == ["dfl"]  # the last axis stays
    assert [n.op_type for n in model.graph.node][:5] == [
        "ReduceMax",
        "Sub",
        "Exp",
        "ReduceSum",
        "Div",
    ]
    after = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    data = np.random.default_rng(1).normal(0, 8, (1, 16, 4, 8)).astype(np.float32)
    want, got = before.run(None, {"x": data}), after.run(None, {"x": data})
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(got[1], want[1])


def test_missing_onnx_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError
    code = main(["model", "quantize", str(assets.verify("model")), str(tmp_path / "q.onnx")])
    err = capsys.readouterr().err
    assert code == 2
    assert "pip install '.[quantize]'" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "q.onnx").exists()


def test_bad_input_model_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a model")
    code = main(["model", "quantize", str(bad), str(tmp_path / "q.onnx")])
    err = capsys.readouterr().err
    assert code == 2
    assert str(bad) in err
    assert "not an ONNX model" in err
    assert "Traceback" not in err
    code = main(["model", "quantize", str(tmp_path / "missing.onnx"), str(tmp_path / "q.onnx")])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_refuses_to_write_below_the_floor(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Skip the calibration (the real run is below) and make the models disagree.
    def fake_build(prepared: Any, out: Path, *args: Any, **kwargs: Any) -> None:
        shutil.copyfile(prepared.path, out)

    monkeypatch.setattr(quantize_module, "build_int8", fake_build)
    monkeypatch.setattr(quantize_module, "agreement", lambda *a: Agreement(6, 2, 6, 4))
    monkeypatch.setattr(quantize_module, "speed", lambda *a, **k: Speed(20.0, 12.5, 10, (640, 640)))
    out = tmp_path / "q.onnx"
    model = str(assets.verify("model"))
    code = main(["model", "quantize", model, str(out), "--frames", "2", "--holdout", "2"])
    captured = capsys.readouterr()
    assert code == 2
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
    assert "F1 0.600" in captured.err  # 2*6 / (2*6 + 2 + 6)
    assert "below the floor 0.9;" in captured.err
    assert "was not written" in captured.err
    assert "1.60x" in captured.out  # the measurements are still shown


@pytest.mark.slow
def test_real_quantization_of_the_default_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "yolo11n-int8.onnx"
    model = str(assets.verify("model"))
    code = main(["model", "quantize", model, str(out), "--frames", "8", "--holdout", "8"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert out.is_file()
    assert "agreement with FP32" in captured.out
    assert re.search(r"session.run at 640x640: .* INT8 \d+\.\d\dx faster", captured.out)

    int8 = Detector(DetectionConfig(model=str(out)))
    assert int8.layout == "end2end"
    assert int8.names[:3] == ["person", "bicycle", "car"]  # metadata kept
    dets = int8(_frame(100))
    persons = [c for c in dets.class_ids if int8.names[int(c)] == "person"]
    assert len(persons) >= 4
