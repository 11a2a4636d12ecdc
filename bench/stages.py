"""Where the full pipeline's time goes outside ``session.run``: CPU per stage per frame.

    python bench/stages.py [--size 320] [--frames 200] [--pyinstrument]

Stages, each timed with ``time.process_time`` around the agent's own code: read (decode a
frame of the sample video), letterbox, ``session.run``, decode the output and map it to the
frame, then tracker + lifecycle + zones + rules (``TrackPipeline.step``).  ``--size 320``
uses the raw-head dynamic model from ../shared (benchmarks only); 640 the default model.
``--pyinstrument`` also profiles bench/pipeline.py's ``Full`` (pyinstrument is a dev tool:
``pip install pyinstrument`` in the venv, not a project dependency).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (str(ROOT), str(ROOT / "bench")):
    if p not in sys.path:
        sys.path.insert(0, p)

from pipeline import NOON, Full, Video, camera  # noqa: E402

from agent import assets  # noqa: E402
from agent.config import DetectionConfig  # noqa: E402
from agent.detect.decoders import decode  # noqa: E402
from agent.detect.detections import Detections  # noqa: E402
from agent.detect.detector import Detector  # noqa: E402
from agent.detect.pipeline import TrackPipeline  # noqa: E402

RAW = "/work/shared/models/yolo11n-coco-raw-dyn.onnx"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--pyinstrument", action="store_true")
    args = ap.parse_args()
    model = RAW if args.size != 640 else "default"
    det = Detector(DetectionConfig(model=model, input_size=args.size))
    video = Video(assets.verify("video"))
    pipe = TrackPipeline(camera(False), det.names)
    cpu: dict[str, list[float]] = {k: [] for k in ("read", "letterbox", "run", "decode", "track")}
    clock = time.process_time
    for i in range(args.frames):
        t0 = clock()
        frame = video.read()
        t1 = clock()
        tensor, geo = det.letterbox(frame)
        t2 = clock()
        out = det.session.run(None, {det.session.get_inputs()[0].name: tensor})[0]
        t3 = clock()
        dec = decode(det.layout, out[0], det.thresholds, det.cfg.nms_iou, det.cfg.max_detections)
        dets = Detections(geo.to_frame(dec.xyxy), dec.scores, dec.class_ids)
        t4 = clock()
        pipe.step(dets, (frame.shape[1], frame.shape[0]), i * 0.2, NOON)
        t5 = clock()
        for key, a, b in zip(cpu, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5), strict=True):
            cpu[key].append((b - a) * 1000)
    print(f"{det.path.name}, input {'x'.join(map(str, geo.input_hw))}, {args.frames} frames")
    for key, ms in cpu.items():
        rest = ms[20:]  # after warm-up
        print(f"  {key:10s} CPU ms/frame median {statistics.median(rest):6.2f}")
    if args.pyinstrument:
        from pyinstrument import Profiler

        full = Full(det, video)
        prof = Profiler(interval=0.0002)
        prof.start()
        for _ in range(args.frames):
            full()
        prof.stop()
        print(prof.output_text(unicode=False, color=False))


if __name__ == "__main__":
    main()
