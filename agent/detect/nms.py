"""Class-aware non-maximum suppression in numpy."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["iou_one_to_many", "nms", "nms_per_class"]

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
Idx = npt.NDArray[np.intp]


def iou_one_to_many(box: F32, boxes: F32) -> F32:
    """IoU of one xyxy box with each of ``boxes`` (M, 4)."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def nms(boxes: F32, scores: F32, iou: float, max_det: int = 300) -> Idx:
    """Greedy NMS: indices of kept boxes, best score first.

    Each turn keeps the best remaining box and drops, in one vectorised step, every box
    overlapping it by more than ``iou``; the loop runs once per kept box, not per pair.
    """
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < max_det:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        order = rest[iou_one_to_many(boxes[i], boxes[rest]) <= iou]
    return np.asarray(keep, dtype=np.intp)


def nms_per_class(boxes: F32, scores: F32, class_ids: I32, iou: float, max_det: int = 300) -> Idx:
    """Class-aware NMS: boxes of different classes never suppress each other.

    Boxes are shifted by class id times a stride larger than any coordinate, so one pass
    of plain NMS never sees two classes overlap (the usual batched-NMS trick).
    """
    if boxes.shape[0] == 0:
        return np.zeros(0, dtype=np.intp)
    span = float(np.abs(boxes).max()) + 1.0
    shifted = boxes + (class_ids.astype(np.float32) * span)[:, None]
    return nms(shifted.astype(np.float32), scores, iou, max_det)
