"""`pole-agent detect` as a technician runs it: a real process, real files, real model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent import assets


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "detect", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def still(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cap = cv2.VideoCapture(str(assets.verify("video")))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 100)
    ok, frame = cap.read()
    cap.release()
    assert ok
    path = tmp_path_factory.mktemp("still") / "frame100.png"
    assert cv2.imwrite(str(path), frame)
    return path


def test_image_json(still: Path, tmp_path: Path) -> None:
    proc = run(str(still), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["frame"] == 0
    classes = [d["class"] for d in record["detections"]]
    assert classes.count("person") >= 4
    assert {"truck", "car"} & set(classes)
    for d in record["detections"]:
        x1, y1, x2, y2 = d["box"]
        assert 0 <= x1 < x2 <= 768
        assert 0 <= y1 < y2 <= 576
        assert 0.35 <= d["score"] <= 1
    assert "1 frame(s)" in proc.stderr


def test_image_text_and_annotated_output(still: Path, tmp_path: Path) -> None:
    out = tmp_path / "annotated.png"
    proc = run(str(still), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("frame 0: ")
    assert "  person " in proc.stdout
    drawn = cv2.imread(str(out))
    original = cv2.imread(str(still))
    assert drawn.shape == original.shape
    changed = np.any(drawn != original, axis=2)
    assert 0.001 < changed.mean() < 0.2  # boxes drawn, picture otherwise intact


def test_sample_video_frames_and_video_out(tmp_path: Path) -> None:
    out = tmp_path / "clip.avi"
    proc = run(
        "sample", "--start", "100", "--frames", "2", "--json", "--out", str(out), cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["frame"] for r in records] == [100, 101]
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 2
    cap.release()


def one_paragraph_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("pole-agent: ")
    for needle in needles:
        assert needle in lines[0]


def test_bad_model_is_one_paragraph(still: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(np.random.default_rng(7).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    proc = run(str(still), "--model", str(bad), cwd=tmp_path)
    one_paragraph_error(proc, "bad.onnx", "not an ONNX model")
    assert proc.stdout == ""


def test_bad_source_and_out(still: Path, tmp_path: Path) -> None:
    one_paragraph_error(run(str(tmp_path / "nope.mp4"), cwd=tmp_path), "nope.mp4 does not exist")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00garbage" * 100)
    one_paragraph_error(run(str(junk), cwd=tmp_path), "junk.mp4")
    one_paragraph_error(run(str(still), "--out", "x.gif", cwd=tmp_path), "--out")
