"""The labelled crops of ``labels.json``, a naive HSV-threshold baseline, and the metrics.

The crops are re-extracted from the cached sample video (the images are not kept); the
labels were given by looking at each crop.  Used by ``test_accuracy.py`` and by
``bench/appearance.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from agent import assets
from agent.lookout.colour import COLOURS, LOWER, UPPER, band_pixels, judge

LABELS = Path(__file__).with_name("labels.json")
U8 = npt.NDArray[np.uint8]
Box = tuple[float, float, float, float]
# (upper, lower) distributions over COLOURS for one crop, or None when not judged
Judge = Callable[[U8, Box], tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]] | None]
QUERIES = (("upper", "red"), ("upper", "black"), ("upper", "blue"),
           ("lower", "blue"), ("lower", "black"))  # fmt: skip


@dataclass(frozen=True)
class Crop:
    frame: int
    box: Box
    upper: tuple[str, ...]
    lower: tuple[str, ...]
    image: U8  # the whole frame


def load_crops() -> list[Crop]:
    doc = json.loads(LABELS.read_text())
    want = {c["frame"] for c in doc["crops"]}
    frames: dict[int, U8] = {}
    cap = cv2.VideoCapture(str(assets.verify("video")))
    i = 0
    while len(frames) < len(want):
        ok, img = cap.read()
        if not ok:
            break
        if i in want:
            frames[i] = np.asarray(img, np.uint8)
        i += 1
    cap.release()
    return [
        Crop(c["frame"], tuple(c["box"]), tuple(c["upper"]), tuple(c["lower"]), frames[c["frame"]])
        for c in doc["crops"]
    ]


def ours(frame: U8, box: Box) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]] | None:
    j = judge(frame, box)
    return None if j is None else (j.upper, j.lower)


def _naive_band(pixels: U8) -> npt.NDArray[np.float32]:
    """The usual first try: HSV thresholds, one name per pixel, majority vote."""
    hsv = cv2.cvtColor(pixels, cv2.COLOR_BGR2HSV).reshape(-1, 3).astype(np.int32)
    h, s, v = hsv[:, 0] * 2, hsv[:, 1], hsv[:, 2]
    hue_names = np.array(["red", "orange", "yellow", "green", "blue", "purple", "pink", "red"])
    hue = hue_names[np.searchsorted([15, 45, 70, 160, 260, 290, 340], h, side="right")]
    name = np.where(v < 60, "black", np.where(s < 50, np.where(v > 200, "white", "grey"), hue))
    counts = np.array([np.sum(name == c) for c in COLOURS], np.float32)
    return np.asarray(counts / max(float(counts.sum()), 1.0), np.float32)


def naive(frame: U8, box: Box) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]] | None:
    up, lo = band_pixels(frame, box, UPPER), band_pixels(frame, box, LOWER)
    if up is None or lo is None:
        return None
    return _naive_band(up), _naive_band(lo)


def average_precision(scores: Sequence[float], relevant: Sequence[bool]) -> float:
    order = np.argsort(-np.asarray(scores), kind="stable")
    hits, total = 0, 0.0
    for rank, k in enumerate(order, start=1):
        if relevant[k]:
            hits += 1
            total += hits / rank
    return total / max(1, sum(relevant))


def evaluate(crops: Sequence[Crop], judge_fn: Judge) -> dict[str, float]:
    """top1/top2 per band (the best name, or either of the two best, is an acceptable
    label) and the AP of each query in :data:`QUERIES` (relevant: the first label)."""
    out: dict[str, float] = {}
    dists = [judge_fn(c.image, c.box) for c in crops]
    for b, band in enumerate(("upper", "lower")):
        top1 = top2 = 0
        for crop, d in zip(crops, dists, strict=True):
            if d is None:
                continue
            labels = getattr(crop, band)
            order = [COLOURS[int(k)] for k in np.argsort(-d[b], kind="stable")[:2]]
            top1 += order[0] in labels
            top2 += bool(set(order) & set(labels))
        out[f"{band}_top1"] = top1 / len(crops)
        out[f"{band}_top2"] = top2 / len(crops)
    for band, colour in QUERIES:
        b = 0 if band == "upper" else 1
        k = COLOURS.index(colour)
        scores = [0.0 if d is None else float(d[b][k]) for d in dists]
        relevant = [getattr(c, band)[0] == colour for c in crops]
        out[f"AP {band} {colour}"] = average_precision(scores, relevant)
    queries = [v for key, v in out.items() if key.startswith("AP ")]
    out["mAP"] = float(np.mean(queries))
    return out
