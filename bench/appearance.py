"""Appearance benchmark (run by hand): colour accuracy and the cost of appearance records.

1. Accuracy on the labelled crops (tests/lookout/labels.json) of our colour judge and of a
   naive HSV-threshold baseline, as is and at half the light.
2. Cost, side by side in one run over the sample video at 5 fps (every 2nd frame): the
   pipeline (detector, tracker, lifecycle, rules) with and without the Recorder and the
   index insert; CPU ms per analysed frame and per person track recorded.

    python bench/appearance.py [--frames 400] [--threads 2]
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


def cost(frames: int, threads: int) -> None:
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


def _time(fn: object) -> float:
    t0 = time.process_time()
    fn()  # type: ignore[operator]
    return (time.process_time() - t0) * 1000


def _arm(images, dets, cam, names, lookout):  # type: ignore[no-untyped-def]
    pipe = TrackPipeline(cam, names)
    local = datetime.now()
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
    args = ap.parse_args()
    accuracy()
    cost(args.frames, args.threads)


if __name__ == "__main__":
    main()
