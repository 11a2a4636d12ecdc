"""Appearance records: what one person or vehicle track looked like, voted over its best frames.

A :class:`Recorder` per camera watches the tracker's output.  For each person track it
keeps the ``best`` frames by quality (box height times sharpness), counting only frames
where the box is judgeable: at least :data:`~agent.lookout.colour.MIN_HEIGHT` px tall, not
cut by the frame border, not overlapping another person (IoU above ``OCCLUDED_IOU``).
When the track ends, or every ``refresh_s`` while it lasts, it gives an
:class:`AppearanceRecord`: colours voted over those frames (quality-weighted mean of the
per-frame distributions, top two kept), items and riding from the detector's own classes
seen with the person in at least ``ITEM_FRAMES`` frames, a size class from the camera's
:class:`~agent.lookout.height.HeightModel`, heading and speed in the image, first and last
seen, the histogram, and a small masked thumbnail of the body (no face crop is made: the
whole box is scaled down to at most 96 x 192).

A vehicle track (the detector's car, truck, bus, motorcycle and bicycle) gets a record of
the same shape with ``cls`` "vehicle": its type (its track's class: the tracker keeps one
class per track, so a van the detector calls a car in some frames and a truck in others may
make two tracks, and the score tolerates car~truck), its body colour in ``upper``
(:func:`~agent.lookout.colour.judge_vehicle`), no lower colour, items, riding or size, and
a thumbnail of at most 192 x 96.  A vehicle box cut by the left or right frame border is
still judged (its body band is where it would be); one cut at the top or bottom is not.
Vehicles never teach the person-height model.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt

from agent.detect.detections import Detections
from agent.detect.tracker import iou_matrix
from agent.lookout.colour import (
    MIN_HEIGHT,
    MIN_WIDTH,
    VEHICLE_MIN,
    Judgement,
    judge,
    judge_vehicle,
    top_two,
)
from agent.lookout.height import HeightModel, SizeClass, classify
from agent.video.snapshot import Polygon, mask_crop

__all__ = ["ITEMS", "RIDES", "VEHICLES", "AppearanceRecord", "Recorder"]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
Colours = tuple[tuple[str, float], ...]

ITEMS: Final = ("backpack", "handbag", "umbrella", "suitcase")
RIDES: Final = ("bicycle", "motorcycle")
VEHICLES: Final = ("car", "truck", "bus", "motorcycle", "bicycle")
OCCLUDED_IOU: Final = 0.1
SAME_OBJECT_IOU: Final = 0.7  # a box of another vehicle class this close is the same vehicle
BORDER_PX: Final = 2
ITEM_FRAMES: Final = 3
THUMB_W, THUMB_H = 96, 192
VEHICLE_THUMB_W, VEHICLE_THUMB_H = 192, 96
THUMB_QUALITY: Final = 80
STILL: Final = 0.02  # foot moved less than this (frame heights): "still"
KEEP_SAMPLES: Final = 300
RESAMPLE: Final = 5  # once a track has its best frames, only every 5th no larger is judged


@dataclass(frozen=True)
class AppearanceRecord:
    """One person or vehicle track.  Times are wall-clock ms; motion is in frame heights.
    A vehicle's colour is in ``upper``, its type in ``vtype``; a person's ``vtype`` is None."""

    camera: str
    track: int
    cls: str
    first_ms: int
    last_ms: int
    upper: Colours
    lower: Colours
    items: tuple[str, ...]
    riding: str | None
    size: SizeClass
    height_ratio: float | None  # box height / the camera's adult height at that row
    heading: str  # left, right, up, down (in the image) or still
    speed: float  # frame heights per second, foot point, first to last judged frame
    frames: int  # judged frames voted over
    histogram: bytes
    thumbnail: bytes | None
    vtype: str | None = None

    def attrs(self) -> dict[str, Any]:
        """Everything but the slots the index keeps in columns, as JSON-able values."""
        return {
            "upper": [list(c) for c in self.upper],
            "lower": [list(c) for c in self.lower],
            "height_ratio": self.height_ratio,
            "heading": self.heading,
            "speed": self.speed,
            "frames": self.frames,
        }


@dataclass
class _Best:
    quality: float
    judgement: Judgement
    size: float = 0.0  # px: the box height (a vehicle: sqrt of its area)


@dataclass
class _Track:
    first_ms: int
    first_t: float
    last_ms: int = 0
    written_t: float = 0.0
    best: list[_Best] = field(default_factory=list)
    thumb: tuple[float, U8] | None = None
    feet: list[tuple[float, float, float]] = field(default_factory=list)  # first, last
    samples: list[tuple[float, float]] = field(default_factory=list)  # foot_y, height
    items: Counter[str] = field(default_factory=Counter)
    vtype: str | None = None  # a vehicle's class (a track keeps one class)
    judgeable: int = 0


def _sharpness(grey: npt.NDArray[Any]) -> float:
    """Variance of the Laplacian, scaled so that about 1 is sharp enough."""
    return min(1.0, float(cv2.Laplacian(grey, cv2.CV_32F).var()) / 100.0)


def _thumbnail(
    frame: U8, box: tuple[int, int, int, int], masks: Sequence[Polygon], *, vehicle: bool
) -> U8:
    crop = mask_crop(frame, masks, box)
    h, w = crop.shape[:2]
    tw, th = (VEHICLE_THUMB_W, VEHICLE_THUMB_H) if vehicle else (THUMB_W, THUMB_H)
    scale = min(tw / w, th / h, 1.0)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(cv2.resize(crop, size, interpolation=cv2.INTER_AREA), np.uint8)


def _vote(best: Sequence[_Best]) -> tuple[Colours, Colours, bytes]:
    weights = np.array([b.quality for b in best], np.float32)
    weights /= max(float(weights.sum()), 1e-6)
    upper = sum((w * b.judgement.upper for w, b in zip(weights, best, strict=True)), np.zeros(11))
    lower = sum((w * b.judgement.lower for w, b in zip(weights, best, strict=True)), np.zeros(11))
    # histograms hold sqrt(p): average the p, store sqrt again
    p = sum(
        (
            w * (b.judgement.histogram.astype(np.float32) / 255.0) ** 2
            for w, b in zip(weights, best, strict=True)
        ),
        np.zeros(len(best[0].judgement.histogram)),
    )
    hist = np.round(255.0 * np.sqrt(p)).astype(np.uint8)
    up, lo = np.asarray(upper, np.float32), np.asarray(lower, np.float32)
    return tuple(top_two(up)), tuple(top_two(lo)), hist.tobytes()


def _motion(feet: Sequence[tuple[float, float, float]]) -> tuple[str, float]:
    if len(feet) < 2:
        return "still", 0.0
    (t0, x0, y0), (t1, x1, y1) = feet[0], feet[-1]
    dx, dy = x1 - x0, y1 - y0
    dist = float(np.hypot(dx, dy))
    speed = round(dist / (t1 - t0), 3) if t1 > t0 else 0.0
    if dist < STILL:
        return "still", speed
    if abs(dx) >= abs(dy):
        return ("right" if dx > 0 else "left"), speed
    return ("down" if dy > 0 else "up"), speed


class Recorder:
    """``update(...) -> [AppearanceRecord]`` per analysed frame of one camera."""

    def __init__(
        self,
        camera: str,
        class_names: Sequence[str],
        *,
        masks: Sequence[Polygon] = (),
        heights: HeightModel | None = None,
        best: int = 5,
        refresh_s: float = 60.0,
        thumbnails: bool = True,
        vehicles: bool = True,
    ) -> None:
        self.camera = camera
        self.masks = list(masks)
        self.heights = heights or HeightModel()
        self.best, self.refresh_s, self.thumbnails = best, refresh_s, thumbnails
        names = list(class_names)
        self._person = names.index("person") if "person" in names else -1
        self._carried = {names.index(n): n for n in (*ITEMS, *RIDES) if n in names}
        self._vehicles = {names.index(n): n for n in VEHICLES if n in names} if vehicles else {}
        self._person_ids = np.array([self._person], np.int64)  # built once, not per frame
        self._vehicle_ids = np.array(list(self._vehicles), np.int64)
        self._tracks: dict[int, _Track] = {}

    def update(
        self,
        frame: U8,
        dets: Detections,
        tracked: Detections,
        *,
        live: frozenset[int],
        t: float,
        wall_ms: int,
    ) -> list[AppearanceRecord]:
        """One analysed frame: all detections, the tracked ones, the ids still alive."""
        people = self._observe_class(frame, dets, tracked, self._person_ids, t=t, wall_ms=wall_ms)
        if self._vehicles:
            self._observe_class(frame, dets, tracked, self._vehicle_ids, t=t, wall_ms=wall_ms)
        self._associate(people, dets)
        return self._finished(live, t)

    def _observe_class(
        self,
        frame: U8,
        dets: Detections,
        tracked: Detections,
        ids: npt.NDArray[np.int64],
        *,
        t: float,
        wall_ms: int,
    ) -> Detections:
        """Observe the tracks of the class ``ids`` (the person, or the vehicle classes); an
        object overlapping another detection of those classes is occluded.  Their detections."""
        chosen = tracked.select(np.isin(tracked.class_ids, ids))
        h, w = frame.shape[:2]
        mine = np.isin(dets.class_ids, ids)
        others, other_cls = dets.xyxy[mine].astype(np.float64), dets.class_ids[mine]
        overlap = iou_matrix(chosen.xyxy.astype(np.float64), others)
        for k, tid in enumerate(chosen.track_ids.tolist()):
            tr = self._tracks.get(tid)
            if tr is None:
                tr = self._tracks[tid] = _Track(first_ms=wall_ms, first_t=t, written_t=t)
            tr.last_ms = wall_ms
            cls = int(chosen.class_ids[k])
            vehicle = self._vehicles.get(cls)
            tr.vtype = vehicle
            box = tuple(float(v) for v in chosen.xyxy[k])
            # Its own detection has IoU about 1; a second one above the bound occludes it,
            # but not the same vehicle detected as another class too (a van as car and as
            # truck: the detector's NMS is per class).
            near = overlap[k] > OCCLUDED_IOU
            near &= ~((other_cls != cls) & (overlap[k] > SAME_OBJECT_IOU))
            occluded = int(np.sum(near)) > 1
            self._observe(tr, frame, box, (w, h), t, occluded=occluded, vehicle=vehicle is not None)
        return chosen

    def _observe(
        self,
        tr: _Track,
        frame: U8,
        box: tuple[float, ...],
        size: tuple[int, int],
        t: float,
        *,
        occluded: bool,
        vehicle: bool = False,
    ) -> None:
        w, h = size
        x1, y1, x2, y2 = box
        foot = (t, (x1 + x2) / 2 / h, y2 / h)
        tr.feet = [tr.feet[0], foot] if tr.feet else [foot]
        cut = y1 < BORDER_PX or y2 > h - BORDER_PX
        if not vehicle:  # a vehicle's body band is where it was, whatever the sides
            cut = cut or x1 < BORDER_PX or x2 > w - BORDER_PX
        least = VEHICLE_MIN if vehicle else (MIN_WIDTH, MIN_HEIGHT)
        if cut or occluded or y2 - y1 < least[1] or x2 - x1 < least[0]:
            return
        if not vehicle and len(tr.samples) < KEEP_SAMPLES:
            tr.samples.append((y2 / h, (y2 - y1) / h))
        size_px = float(np.sqrt((y2 - y1) * (x2 - x1))) if vehicle else y2 - y1
        worst = min((b.quality for b in tr.best), default=0.0)
        full = len(tr.best) >= self.best
        if full and size_px <= worst:
            return  # even perfectly sharp, it would not make the list
        tr.judgeable += 1
        if full and size_px <= max(b.size for b in tr.best) and tr.judgeable % RESAMPLE:
            return  # a long track (a parked car, a person waiting): no bigger than its best
        ib = (int(x1), int(y1), int(x2), int(y2))
        grey = cv2.cvtColor(frame[ib[1] : ib[3], ib[0] : ib[2]], cv2.COLOR_BGR2GRAY)
        quality = size_px * _sharpness(grey)
        if full and quality <= worst:
            return
        judged = (judge_vehicle if vehicle else judge)(frame, (x1, y1, x2, y2))
        if judged is None:
            return
        tr.best.append(_Best(quality, judged, size_px))
        tr.best.sort(key=lambda b: -b.quality)
        del tr.best[self.best :]
        if self.thumbnails and (tr.thumb is None or quality > tr.thumb[0]):
            tr.thumb = (quality, _thumbnail(frame, ib, self.masks, vehicle=vehicle))

    def _associate(self, people: Detections, dets: Detections) -> None:
        """Count, per person, the frames an item or a ride was next to them."""
        if not len(people) or not self._carried:
            return
        pb = people.xyxy.astype(np.float64)
        centre_x = (pb[:, 0] + pb[:, 2]) / 2
        for box, cls in zip(dets.xyxy.tolist(), dets.class_ids.tolist(), strict=True):
            name = self._carried.get(cls)
            if name is None:
                continue
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            pad = 0.25 * (pb[:, 2] - pb[:, 0])  # an item is carried beside the body
            near = (cx > pb[:, 0] - pad) & (cx < pb[:, 2] + pad) & (cy > pb[:, 1])
            near &= cy < pb[:, 3] + 0.25 * (pb[:, 3] - pb[:, 1])  # a bicycle reaches below
            if near.any():
                k = int(np.argmin(np.where(near, np.abs(centre_x - cx), np.inf)))
                tr = self._tracks.get(int(people.track_ids[k]))
                if tr is not None:
                    tr.items[name] += 1

    def _finished(self, live: frozenset[int], t: float) -> list[AppearanceRecord]:
        out = []
        for tid in [tid for tid in self._tracks if tid not in live]:
            tr = self._tracks.pop(tid)
            rec = self._record(tid, tr)
            if tr.vtype is None:  # after judging: a track never judges itself
                self.heights.learn(tr.samples)
            if rec is not None:
                out.append(rec)
        for tid, tr in self._tracks.items():
            if t - tr.written_t >= self.refresh_s and tr.best:
                tr.written_t = t
                rec = self._record(tid, tr)
                if rec is not None:
                    out.append(rec)
        return out

    def _size(self, tr: _Track) -> tuple[SizeClass, float | None]:
        ratios = [r for fy, hh in tr.samples if (r := self.heights.ratio(fy, hh)) is not None]
        if not ratios:
            return "unknown", None
        ratio = statistics.median(ratios)
        return classify(ratio), round(ratio, 2)

    def _record(self, tid: int, tr: _Track) -> AppearanceRecord | None:
        if not tr.best:
            return None  # never judgeable: too small, cut or occluded all along
        upper, lower, hist = _vote(tr.best)
        heading, speed = _motion(tr.feet)
        thumb = None
        if tr.thumb is not None:
            ok, buf = cv2.imencode(".jpg", tr.thumb[1], [cv2.IMWRITE_JPEG_QUALITY, THUMB_QUALITY])
            thumb = bytes(buf.tobytes()) if ok else None
        if tr.vtype is not None:
            return AppearanceRecord(
                camera=self.camera, track=tid, cls="vehicle", first_ms=tr.first_ms,
                last_ms=tr.last_ms, upper=upper, lower=(), items=(), riding=None,
                size="unknown", height_ratio=None, heading=heading, speed=speed,
                frames=len(tr.best), histogram=hist, thumbnail=thumb,
                vtype=tr.vtype,
            )  # fmt: skip
        size, ratio = self._size(tr)
        carried = [n for n, c in tr.items.most_common() if c >= ITEM_FRAMES]
        return AppearanceRecord(
            camera=self.camera,
            track=tid,
            cls="person",
            first_ms=tr.first_ms,
            last_ms=tr.last_ms,
            upper=upper,
            lower=lower,
            items=tuple(n for n in carried if n in ITEMS),
            riding=next((n for n in carried if n in RIDES), None),
            size=size,
            height_ratio=ratio,
            heading=heading,
            speed=speed,
            frames=len(tr.best),
            histogram=hist,
            thumbnail=thumb,
        )
