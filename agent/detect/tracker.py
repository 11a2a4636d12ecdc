"""Stable track ids across frames.

Choice: ByteTrack-style two-stage IoU matching over a constant-velocity Kalman prediction
(SORT's motion model), without appearance features.  A pole camera is fixed and its objects
move slowly relative to their size at 5 fps, so the predicted box overlaps the next
detection well and IoU alone is a reliable cost; appearance embeddings would cost a second
network per object on a small CPU (and the privacy rules frown on them).  The second stage
(ByteTrack's idea) lets a weak detection (partly occluded person, score between the
detector's threshold and ``high_score``) keep an existing track alive, but never start one,
which is what stops ids from flickering in a crowd.  Matching is greedy by descending IoU:
with tens of objects it equals the Hungarian result in practice and needs no scipy.

Time is an argument (seconds, any monotonic clock): the motion gate makes the gaps between
frames irregular, so prediction uses the real ``dt`` and a track is dropped only after it
was missed both ``lost_frames`` times and for ``lost_s`` seconds: a parked car seen only
at the keep-alive rate is not lost between two looks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from agent.detect.detections import Detections

__all__ = ["Tracker", "TrackerParams", "iou_matrix"]

F = npt.NDArray[np.float64]
LAST_BOX_WEIGHT = 0.8


@dataclass(frozen=True)
class TrackerParams:
    high_score: float = 0.5  # a detection this good may start a track
    match_iou: float = 0.1  # stage 1: least IoU with a predicted box
    low_match_iou: float = 0.4  # stage 2 (weak detections): stricter
    min_hits: int = 3  # hits before a track is confirmed (reported)
    tentative_misses: int = 1  # a detector dropout does not kill a new track
    lost_s: float = 3.0  # missed this long ...
    lost_frames: int = 3  # ... and this many updates: the track is dropped
    max_extrapolate_s: float = 1.0  # never coast a box on its velocity longer than this


def iou_matrix(a: F, b: F) -> F:
    """(len(a), len(b)) IoU of xyxy boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.asarray(np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0))


def _greedy(iou: F, least: float) -> list[tuple[int, int]]:
    """Pairs (row, col) by descending IoU, each row and column used once."""
    pairs: list[tuple[int, int]] = []
    if iou.size == 0:
        return pairs
    rows, cols = np.nonzero(iou >= least)
    order = np.argsort(-iou[rows, cols], kind="stable")
    used_r: set[int] = set()
    used_c: set[int] = set()
    for k in order:
        r, c = int(rows[k]), int(cols[k])
        if r not in used_r and c not in used_c:
            pairs.append((r, c))
            used_r.add(r)
            used_c.add(c)
    return pairs


def _xyxy_to_z(b: F) -> F:
    return np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]])


@dataclass
class _Track:
    """Kalman state [cx, cy, w, h, vx, vy, vw, vh] in pixels and pixels per second."""

    tid: int
    cls: int
    x: F
    p: F
    t: float  # time of the state
    last_hit: float
    hits: int = 1
    misses: int = 0
    confirmed: bool = False
    score: float = 0.0
    box: F = field(default_factory=lambda: np.zeros(4))

    @classmethod
    def new(cls, tid: int, box: F, cls_id: int, score: float, t: float) -> _Track:
        z = _xyxy_to_z(box)
        x = np.concatenate([z, np.zeros(4)])
        h = max(z[3], 1.0)
        p = np.diag(np.square([h / 10, h / 10, h / 10, h / 10, h, h, h / 2, h / 2]))
        return cls(tid, cls_id, x, p, t, t, score=score, box=box.copy())

    def predict(self, t: float, cap_s: float) -> None:
        # The constant-velocity step F = [[I, d I], [0, I]] written out block-wise:
        # F P F^T is two in-place row/column updates, not two 8x8 products per track.
        dt = max(t - self.t, 0.0)
        d = min(dt, cap_s)
        x, p = self.x, self.p
        h = max(x[3], 1.0)
        x[:4] += d * x[4:]
        np.maximum(x[2:4], 1.0, out=x[2:4])
        p[:, :4] += d * p[:, 4:]
        p[:4, :] += d * p[4:, :]
        q = max(dt, 1e-3)
        p.flat[0:36:9] += (h / 20) ** 2 * q  # diagonal of the position block
        p.flat[36:72:9] += (h / 8) ** 2 * q  # ... and of the velocity block
        self.t = t

    def correct(self, box: F, score: float, t: float) -> None:
        # H picks the first four states, so H P H^T and P H^T are slices of P.
        z = _xyxy_to_z(box)
        p = self.p
        s = p[:4, :4].copy()
        s.flat[::5] += (max(z[3], 1.0) / 20) ** 2
        k = np.linalg.solve(s, p[:4, :]).T  # P H^T S^-1 (P and S are symmetric)
        self.x = self.x + k @ (z - self.x[:4])
        self.p = p - k @ p[:4, :]
        self.box, self.score, self.last_hit = box.copy(), score, t
        self.hits += 1
        self.misses = 0

    def predicted_box(self) -> F:
        cx, cy, w, h = self.x[:4]
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


class Tracker:
    """``update(dets, t) -> Detections`` of confirmed tracks matched in this frame."""

    def __init__(self, params: TrackerParams | None = None, *, first_id: int = 1) -> None:
        """``first_id``: the first track's id (a restarted vision process carries on from
        the ids its predecessor gave, so that a track id stays unique per camera and boot)."""
        self.params = params or TrackerParams()
        self._tracks: list[_Track] = []
        self._next_id = first_id
        self.created = 0

    @property
    def next_id(self) -> int:
        """The id the next new track gets."""
        return self._next_id

    @property
    def live_ids(self) -> frozenset[int]:
        """Ids of confirmed tracks the tracker still holds (matched or coasting)."""
        return frozenset(tr.tid for tr in self._tracks if tr.confirmed)

    def update(self, dets: Detections, t: float) -> Detections:
        p = self.params
        for tr in self._tracks:
            tr.predict(t, p.max_extrapolate_s)
        boxes = dets.xyxy.astype(np.float64)
        high = np.flatnonzero(dets.scores >= p.high_score)
        low = np.flatnonzero(dets.scores < p.high_score)
        matched: dict[int, _Track] = {}  # detection row -> its track
        free = list(self._tracks)
        for cand, least in ((high, p.match_iou), (low, p.low_match_iou)):
            pairs = self._match(free, cand, boxes, dets.class_ids, least)
            for ti, di in pairs:
                matched[int(cand[di])] = free[ti]
            taken = {ti for ti, _ in pairs}
            free = [tr for k, tr in enumerate(free) if k not in taken]
        for row, tr in matched.items():
            tr.correct(boxes[row], float(dets.scores[row]), t)
        for tr in free:
            tr.misses += 1
        for i in high.tolist():
            if i not in matched:
                matched[i] = self._spawn(boxes[i], int(dets.class_ids[i]), float(dets.scores[i]), t)
        self._confirm_and_prune(t)
        rows = sorted(r for r, tr in matched.items() if tr.confirmed)
        if not rows:
            return Detections.empty()
        tids = np.array([matched[r].tid for r in rows], dtype=np.int32)
        return dets.select(np.array(rows, dtype=np.intp)).with_tracks(tids)

    def _match(
        self,
        free: list[_Track],
        rows: npt.NDArray[np.intp],
        boxes: F,
        classes: npt.NDArray[np.int32],
        least: float,
    ) -> list[tuple[int, int]]:
        if not free or len(rows) == 0:
            return []
        pred = np.stack([tr.predicted_box() for tr in free])
        last = np.stack([tr.box for tr in free])
        cand = boxes[rows]
        # The last-seen box too, discounted: a sudden stop must not break the match, but
        # where two paths cross the prediction must win over where the other one was.
        iou = np.maximum(iou_matrix(pred, cand), LAST_BOX_WEIGHT * iou_matrix(last, cand))
        cls_t = np.array([tr.cls for tr in free])
        cls_d = classes[rows]
        iou[cls_t[:, None] != cls_d[None, :]] = 0.0
        return _greedy(iou, least)

    def _spawn(self, box: F, cls_id: int, score: float, t: float) -> _Track:
        track = _Track.new(self._next_id, box, cls_id, score, t)
        self._tracks.append(track)
        self._next_id += 1
        self.created += 1
        return track

    def _confirm_and_prune(self, t: float) -> None:
        p = self.params
        keep: list[_Track] = []
        for tr in self._tracks:
            if not tr.confirmed and tr.hits >= p.min_hits:
                tr.confirmed = True
            if not tr.confirmed and tr.misses > p.tentative_misses:
                continue  # a tentative track must be seen (almost) every frame
            if tr.misses >= p.lost_frames and t - tr.last_hit >= p.lost_s:
                continue
            keep.append(tr)
        self._tracks = keep
