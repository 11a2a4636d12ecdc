"""Appearance benchmark (run by hand): colour accuracy and the cost of appearance records.

1. Accuracy on the labelled crops (tests/lookout/labels.json) of our colour judge and of a
   naive HSV-threshold baseline, as is and at half the light.
2. Cost, side by side in one run over the sample video at 5 fps (every 2nd frame): the
   pipeline (detector, tracker, lifecycle, rules) with and without the Recorder and the
   index insert; CPU ms per analysed frame and per person track recorded.
3. An hour of video (``--hours``): the same detections looped to one hour at 5 fps (the
   tracker sees each loop as new people), through tracker, recorder and index: CPU seconds
   of the records per hour, rows (person and vehicle) and the index file's size per hour,
   and what the default bounds (6 h, 20 000 rows, 64 MiB) then hold.

    python bench/appearance.py [--frames 400] [--threads 2] [--hours 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from agent import assets
from agent.config import CameraConfig, DetectionConfig
from agent.detect.detector import Detector
from agent.detect.pipeline import TrackPipeline
from agent.lookout.index import AppearanceIndex
from agent.lookout.record import Recorder
from tests.lookout.labelled import evaluate, load_crops, naive, ours
from tests.lookout.test_accuracy import shadowed


def accuracy() -> None:
    crops = load_crops()
    print(f"labelled crops: {len(crops)}")
    for tag, data in (("as is", crops), ("half light", shadowed(crops))):
        a, b = evaluate(data, ours), evaluate(data, naive)
        print(f"\n{tag:<12}{'ours':>8}{'naive':>8}{'diff':>8}")
        for key in a:
            print(f"{key:<20}{a[key]:>8.3f}{b[key]:>8.3f}{a[key] - b[key]:>+8.3f}")


def cost(frames: int, threads: int):  # type: ignore[no-untyped-def]
    det = Detector(DetectionConfig(threads=threads))
    cap = cv2.VideoCapture(str(assets.verify("video")))
    images = []
    while len(images) < frames:
        ok, img = cap.read()
        if not ok:
            break
        images.append(np.asarray(img, np.uint8))
    images = images[::2]
    dets = [det(img) for img in images]  # the detector is the same in both arms
    cam = CameraConfig(id="cam-1", source="sample")
    with tempfile.TemporaryDirectory() as tmp:
        base = _arm(images, dets, cam, det.names, None)
        index = AppearanceIndex(Path(tmp) / "lookout.db")
        rec = Recorder(cam.id, det.names)
        withl, records = _arm(images, dets, cam, det.names, (rec, index))[0], index.stats()["rows"]
        index.close()  # checkpoints the WAL into the file
        size = (Path(tmp) / "lookout.db").stat().st_size
    infer = _time(lambda: [det(img) for img in images[:20]]) / 20
    n = len(images)
    extra = (withl - base[0]) / n
    print(f"\nanalysed frames: {n}; detector {infer:.1f} ms/frame (CPU)")
    print(f"tracker+rules            {base[0] / n:8.3f} ms/frame")
    print(f"tracker+rules+lookout    {withl / n:8.3f} ms/frame  (+{extra:.3f} ms)")
    print(f"lookout / (detector+pipeline)  {extra / (infer + base[0] / n):.4f}")
    print(f"records {records}; lookout CPU per record {(withl - base[0]) / max(records, 1):.2f} ms")
    print(f"index file {size} bytes, {size / max(records, 1):.0f} bytes per record")
    return images, dets, det.names


def hour(images, dets, names, hours: float) -> None:  # type: ignore[no-untyped-def]
    """The detections looped to ``hours`` of video at 5 analysed fps, tracker and records."""
    loops = max(1, round(hours * 3600 * 5 / len(images)))
    frames = len(images) * loops
    span_s = frames / 5.0
    cam = CameraConfig(id="cam-1", source="sample")
    with tempfile.TemporaryDirectory() as tmp:
        start_ms = int((time.time() - span_s) * 1000)
        base = _arm(images * loops, dets * loops, cam, names, None, start_ms)[0]
        path = Path(tmp) / "lookout.db"
        index = AppearanceIndex(path)
        rec = Recorder(cam.id, names)
        withl = _arm(images * loops, dets * loops, cam, names, (rec, index), start_ms)[0]
        stats = index.stats()
        rows = stats["rows"]
        kinds = {k: stats.get(k, 0) for k in ("person", "vehicle")}
        index.close()
        size = path.stat().st_size
    per_h = 3600 / span_s
    print(f"\n{span_s / 3600:.2f} h of video at 5 fps ({frames} analysed frames, {loops} loops)")
    print(f"records CPU          {(withl - base) / 1000 * per_h:8.1f} s per hour of video "
          f"({(withl - base) / frames:.3f} ms per analysed frame)")  # fmt: skip
    print(f"rows                 {rows * per_h:8.0f} per hour  {kinds}")
    print(f"index file           {size * per_h / 1e6:8.2f} MB per hour, "
          f"{size / max(rows, 1):.0f} B/row")  # fmt: skip
    hold_rows = 20_000 / (rows * per_h)
    hold_bytes = 64 * 1024 * 1024 / (size * per_h)
    print(
        f"the default bounds hold {min(6.0, hold_rows, hold_bytes):.1f} h of this scene "
        f"(6 h retention, 20 000 rows = {hold_rows:.1f} h, 64 MiB = {hold_bytes:.1f} h)"
    )


def _time(fn: object) -> float:
    t0 = time.process_time()
    fn()  # type: ignore[operator]
    return (time.process_time() - t0) * 1000


def _arm(images, dets, cam, names, lookout, start_ms=None):  # type: ignore[no-untyped-def]  # noqa: PLR0917
    pipe = TrackPipeline(cam, names)
    local = datetime.now()
    if start_ms is None:
        start_ms = int(time.time() * 1000)  # records older than the retention are pruned
    t0 = time.process_time()
    for k, (img, d) in enumerate(zip(images, dets, strict=True)):
        t = k / 5.0
        res = pipe.step(d, (img.shape[1], img.shape[0]), t, local)
        if lookout is not None:
            rec, index = lookout
            out = rec.update(img, d, res.tracked, live=pipe.tracker.live_ids, t=t,
                             wall_ms=start_ms + int(t * 1000))  # fmt: skip
            if out:
                index.insert(out)
    if lookout is not None:  # the tracks still alive at the end
        rec, index = lookout
        none = dets[-1].select(np.zeros(len(dets[-1]), bool))
        end = len(images) / 5.0
        index.insert(
            rec.update(images[-1], dets[-1], none, live=frozenset(), t=end, wall_ms=start_ms)
        )
    return (time.process_time() - t0) * 1000, 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--frames", type=int, default=400, help="video frames read (every 2nd analysed)"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hours", type=float, default=1.0, help="video looped to this long; 0: skip")
    args = ap.parse_args()
    accuracy()
    images, dets, names = cost(args.frames, args.threads)
    if args.hours > 0:
        hour(images, dets, names, args.hours)


if __name__ == "__main__":
    main()
