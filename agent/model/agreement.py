"""How far a model's detections agree with a reference model's, frame by frame.

The quantized model is judged against the FP32 model it came from, not against ground
truth: the question is "does INT8 see what FP32 saw".  Boxes are matched greedily within
each class, the candidate's highest-scoring box first, to the unmatched reference box of
highest IoU, and count as agreeing at IoU >= 0.5 (the usual detection criterion).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agent.detect.detections import Detections
from agent.detect.tracker import iou_matrix as tracker_iou

__all__ = ["Agreement", "iou_matrix", "match"]

F32 = npt.NDArray[np.float32]
IOU_MATCH = 0.5


@dataclass(frozen=True)
class Agreement:
    """Counts of matched (tp), extra (fp) and missed (fn) boxes, and what follows from them.

    With nothing on either side the models agree perfectly (precision = recall = F1 = 1).
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0
    frames: int = 0

    def __add__(self, other: Agreement) -> Agreement:
        return Agreement(
            self.tp + other.tp,
            self.fp + other.fp,
            self.fn + other.fn,
            self.frames + other.frames,
        )

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        # 2TP / (2TP + FP + FN): the harmonic mean of precision and recall, and defined
        # (as 1) when neither model found anything.
        denom = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denom if denom else 1.0

    def summary(self) -> str:
        return (
            f"precision {self.precision:.3f}, recall {self.recall:.3f}, F1 {self.f1:.3f} "
            f"({self.tp} matched, {self.fp} extra, {self.fn} missed boxes over "
            f"{self.frames} frame(s))"
        )


def iou_matrix(a: F32, b: F32) -> F32:
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4), xyxy (the tracker's)."""
    return np.asarray(tracker_iou(a.astype(np.float64), b.astype(np.float64)), dtype=np.float32)


def match(reference: Detections, candidate: Detections, iou: float = IOU_MATCH) -> Agreement:
    """Agreement of ``candidate`` with ``reference`` on one frame."""
    tp = 0
    for cls in np.union1d(reference.class_ids, candidate.class_ids):
        ref = reference.xyxy[reference.class_ids == cls]
        cand_mask = candidate.class_ids == cls
        cand = candidate.xyxy[cand_mask][np.argsort(-candidate.scores[cand_mask], kind="stable")]
        ious = iou_matrix(cand, ref)
        taken = np.zeros(len(ref), dtype=bool)
        for row in ious:
            free = np.where(taken, -1.0, row)
            if len(free) and free.max() >= iou:
                taken[int(free.argmax())] = True
                tp += 1
    return Agreement(tp, len(candidate) - tp, len(reference) - tp, 1)
