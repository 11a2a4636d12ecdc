"""Output decoders, one pure numpy function per model layout, and the layout chooser.

Every decoder takes the model output without its batch axis and a per-class threshold
vector (``inf`` for classes that are not wanted), and returns boxes in *input* pixels:
mapping back to the frame is the letterbox's job.  Layouts (see docs/detection.md):

- ``end2end``       [1, K, 6]   x1, y1, x2, y2, score, class; NMS done in the graph.
- ``anchor_free``   [1, 4+C, N] cx, cy, w, h, C class scores (YOLOv8, YOLO11).
- ``anchor_free_t`` [1, N, 4+C] the same, transposed.
- ``objectness``    [1, N, 5+C] cx, cy, w, h, objectness, C class probabilities (YOLOv5/7).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from agent.detect.errors import ModelError
from agent.detect.nms import nms_per_class

__all__ = [
    "LAYOUTS",
    "Decoded",
    "Layout",
    "decode",
    "decode_anchor_free",
    "decode_anchor_free_t",
    "decode_end2end",
    "decode_objectness",
    "num_classes",
    "select_layout",
]

Layout = Literal["end2end", "anchor_free", "anchor_free_t", "objectness"]
LAYOUTS: Final[tuple[Layout, ...]] = ("end2end", "anchor_free", "anchor_free_t", "objectness")
F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
MAX_NMS: Final = 30_000  # candidates kept for NMS; more means a threshold far too low
# A raw head has one row per anchor: 8400 at 640, 2100 at 320.  End-to-end models keep a
# few hundred.  Used only to tell [1, K, 6] end-to-end from a tiny raw head.
MAX_END2END_ROWS: Final = 1000

SHAPES_HELP = (
    "supported: end2end [1, K, 6], anchor_free [1, 4+C, N], anchor_free_t [1, N, 4+C], "
    "objectness [1, N, 5+C]"
)


@dataclass(frozen=True)
class Decoded:
    """Boxes (N, 4) x1 y1 x2 y2 in input pixels, scores (N,), class ids (N,)."""

    xyxy: F32
    scores: F32
    class_ids: I32

    @classmethod
    def empty(cls) -> Decoded:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))

    def __len__(self) -> int:
        return len(self.scores)


def _passes(scores: F32, class_ids: I32, thresholds: F32) -> npt.NDArray[np.bool_]:
    """Score at or above its class's threshold; unknown class ids never pass."""
    known = (class_ids >= 0) & (class_ids < len(thresholds))
    limit = np.full(len(scores), np.inf, dtype=np.float32)
    limit[known] = thresholds[class_ids[known]]
    return scores >= limit


def decode_end2end(out: F32, thresholds: F32, max_det: int = 300) -> Decoded:
    """[K, 6] rows x1, y1, x2, y2, score, class: threshold only, NMS is in the graph."""
    if out.ndim != 2 or out.shape[1] != 6:
        raise ValueError(f"end2end output must be [K, 6], got {list(out.shape)}")
    scores = out[:, 4].astype(np.float32)
    class_ids = out[:, 5].astype(np.int32)
    ok = np.flatnonzero(_passes(scores, class_ids, thresholds))
    ok = ok[np.argsort(-scores[ok], kind="stable")][:max_det]
    return Decoded(out[ok, :4].astype(np.float32), scores[ok], class_ids[ok])


def _cxcywh_to_xyxy(b: F32) -> F32:
    half = b[:, 2:4] / 2
    return np.concatenate([b[:, 0:2] - half, b[:, 0:2] + half], axis=1).astype(np.float32)


def _decode_rows(
    boxes: F32,
    cls: F32,
    obj: F32 | None,
    thresholds: F32,
    *,
    iou: float,
    max_det: int,
) -> Decoded:
    """Shared raw-head path: rows are anchors; ``boxes`` (N, 4) cxcywh, ``cls`` (N, C)."""
    if cls.shape[1] == 0 or not np.isfinite(thresholds).any():
        return Decoded.empty()
    floor = float(thresholds.min())
    # Cheap prefilter first: most of the N anchors are background.
    if obj is None:
        best = cls.max(axis=1)
        cand = np.flatnonzero(best >= floor)
        ids = cls[cand].argmax(axis=1).astype(np.int32)
        scores = best[cand].astype(np.float32)
    else:
        cand = np.flatnonzero(obj >= floor)  # class probabilities are <= 1
        ids = cls[cand].argmax(axis=1).astype(np.int32)
        scores = (obj[cand] * cls[cand, ids]).astype(np.float32)
    ok = _passes(scores, ids, thresholds)
    cand, ids, scores = cand[ok], ids[ok], scores[ok]
    if cand.size > MAX_NMS:
        top = np.argsort(-scores, kind="stable")[:MAX_NMS]
        cand, ids, scores = cand[top], ids[top], scores[top]
    xyxy = _cxcywh_to_xyxy(np.asarray(boxes[cand], dtype=np.float32))
    keep = nms_per_class(xyxy, scores, ids, iou, max_det)
    return Decoded(xyxy[keep], scores[keep], ids[keep])


def decode_anchor_free(out: F32, thresholds: F32, iou: float, max_det: int = 300) -> Decoded:
    """[4+C, N]: rows cx, cy, w, h, then one row of class scores per class."""
    if out.ndim != 2 or out.shape[0] < 5:
        raise ValueError(f"anchor_free output must be [4+C, N], got {list(out.shape)}")
    if out.shape[0] == 4 or not np.isfinite(thresholds).any():
        return Decoded.empty()
    # Prefilter along the contiguous axis (max over class rows), then transpose only the
    # few surviving anchors: reducing the strided (N, C) view costs several times more.
    # Only the wanted classes' rows (6 of COCO's 80 by default): an anchor none of them
    # reaches could only be decoded as another class, which the thresholds drop anyway.
    wanted = np.flatnonzero(np.isfinite(thresholds))
    scores = out[4:] if wanted.size == len(thresholds) else out[4 + wanted]
    cand = np.flatnonzero(scores.max(axis=0) >= thresholds[wanted].min())
    rows = out[:, cand].T
    return _decode_rows(rows[:, :4], rows[:, 4:], None, thresholds, iou=iou, max_det=max_det)


def decode_anchor_free_t(out: F32, thresholds: F32, iou: float, max_det: int = 300) -> Decoded:
    """[N, 4+C]: one row per anchor, cx, cy, w, h, class scores."""
    if out.ndim != 2 or out.shape[1] < 5:
        raise ValueError(f"anchor_free_t output must be [N, 4+C], got {list(out.shape)}")
    return _decode_rows(out[:, :4], out[:, 4:], None, thresholds, iou=iou, max_det=max_det)


def decode_objectness(out: F32, thresholds: F32, iou: float, max_det: int = 300) -> Decoded:
    """[N, 5+C]: cx, cy, w, h, objectness, class probabilities; score = obj x prob."""
    if out.ndim != 2 or out.shape[1] < 6:
        raise ValueError(f"objectness output must be [N, 5+C], got {list(out.shape)}")
    return _decode_rows(out[:, :4], out[:, 5:], out[:, 4], thresholds, iou=iou, max_det=max_det)


def decode(layout: Layout, out: F32, thresholds: F32, iou: float, max_det: int = 300) -> Decoded:
    """Decode one image's output (batch axis removed) with the decoder of ``layout``."""
    if layout == "end2end":
        return decode_end2end(out, thresholds, max_det)
    if layout == "anchor_free":
        return decode_anchor_free(out, thresholds, iou, max_det)
    if layout == "anchor_free_t":
        return decode_anchor_free_t(out, thresholds, iou, max_det)
    return decode_objectness(out, thresholds, iou, max_det)


def num_classes(layout: Layout, shape: Sequence[int]) -> int | None:
    """Classes implied by an output shape; None for end2end (class ids are values)."""
    _, a, b = shape
    return {"end2end": None, "anchor_free": a - 4, "anchor_free_t": b - 4, "objectness": b - 5}[
        layout
    ]


def _meta_end2end(meta: Mapping[str, str]) -> bool | None:
    """What the exporter's metadata says about NMS in the graph, if anything."""
    flag = meta.get("end2end", "").strip().lower()
    if flag in ("true", "false"):
        return flag == "true"
    args = meta.get("args", "").replace(" ", "")
    if "'nms':True" in args:
        return True
    return None


def _fits(layout: Layout, a: int, b: int, c: int | None) -> bool:
    if layout == "end2end":
        return b == 6
    if layout == "anchor_free":
        return a >= 5 and (c is None or a == 4 + c)
    if layout == "anchor_free_t":
        return b >= 5 and (c is None or b == 4 + c)
    return b >= 6 and (c is None or b == 5 + c)


def select_layout(
    shape: Sequence[int | str | None],
    *,
    forced: Layout | Literal["auto"] = "auto",
    metadata: Mapping[str, str] | None = None,
    num_names: int | None = None,
) -> Layout:
    """The layout of an output of ``shape``; ModelError naming the shape when none fits.

    ``num_names`` (class names known from metadata or a labels file) tells [1, N, 4+C]
    from [1, N, 5+C]; ``metadata`` (Ultralytics' ``end2end`` / ``args``) tells an
    end-to-end [1, K, 6] from a raw head with one or two classes.
    """
    dims = list(shape)
    if len(dims) != 3 or dims[0] != 1 or not all(isinstance(d, int) and d > 0 for d in dims):
        raise ModelError(f"output shape {dims} is not [1, A, B]; {SHAPES_HELP}")
    _, a, b = (int(d) for d in dims)  # type: ignore[arg-type]
    c = num_names
    if forced != "auto":
        if not _fits(forced, a, b, c):
            names = f" with {c} class names" if c is not None else ""
            raise ModelError(
                f"detection.layout is {forced!r} but the output shape is [1, {a}, {b}]{names}; "
                f"{SHAPES_HELP}"
            )
        return forced
    end2end = _meta_end2end(metadata or {})
    found = _auto(a, b, c, end2end)
    if found is None and c is not None:
        try:
            blind = _auto(a, b, None, end2end)
        except ModelError:
            blind = None
        if blind is not None:
            raise ModelError(
                f"output shape [1, {a}, {b}] reads as {blind} with "
                f"{num_classes(blind, (1, a, b))} classes, but {c} class names were given "
                "(detection.labels or the model's metadata); make them agree"
            )
    if found is None:
        names = f"; with {c} class names (C={c})" if c is not None else ""
        raise ModelError(
            f"output shape [1, {a}, {b}] matches no known layout{names}; {SHAPES_HELP}"
        )
    return found


def _auto(a: int, b: int, c: int | None, end2end: bool | None) -> Layout | None:
    if end2end is True:
        return "end2end" if b == 6 else None
    raw_by_names = c is not None and b in (4 + c, 5 + c) and a > b
    if b == 6 and end2end is None and a <= MAX_END2END_ROWS and not raw_by_names:
        return "end2end"
    if c is not None:
        if a == 4 + c and b > a:
            return "anchor_free"
        if a > b and b == 4 + c:
            return "anchor_free_t"
        if a > b and b == 5 + c:
            return "objectness"
        return None
    if 4 < a < b:
        return "anchor_free"  # anchors always outnumber channels
    if a > b >= 5:
        raise ModelError(
            f"output shape [1, {a}, {b}] may be anchor_free_t [1, N, 4+C] or objectness "
            "[1, N, 5+C], and the model has no class names to tell; set detection.layout, "
            "or give detection.labels"
        )
    return None
