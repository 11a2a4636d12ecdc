"""INT8 versus FP32 (run by hand): speed-up and agreement, side by side in one run.

For each case, the model is quantized as ``pole-agent model quantize`` does (calibration
on the first half of the sample video, agreement on held-out frames of the second half),
then the FP32 and the INT8 model run in alternating short rounds:

- ``session.run``: on letterboxed tensors of held-out frames (the limit);
- ``full pipeline``: read, Detector, track, rules, events (``bench/pipeline.py``'s
  ``Full``, motion gating off).

Cases: the default end-to-end model at 640; with ``--raw-model`` the raw-head dynamic
model at 640 and at ``--size`` (320; a rect 256x320 input for this 4:3 video).
Printed: milliseconds per frame by wall clock, INT8 speed-up (FP32 time / INT8 time),
CPU per frame, and the agreement (precision, recall, F1 at the default confidence).

    python bench/quantize.py [--frames 32] [--holdout 40] [--rounds 12] [--per-round 5]
        [--method minmax] [--raw-model /work/shared/models/yolo11n-coco-raw-dyn.onnx]
        [--size 320] [--threads 2]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from agent import assets
from agent.config import DetectionConfig
from agent.detect.detector import Detector
from agent.model.quantize import Options, Report, quantize

try:  # one Video and one full pipeline for all benches
    from bench.pipeline import Full, Video  # python -m bench.quantize
except ImportError:
    from pipeline import Full, Video  # type: ignore[no-redef]  # python bench/quantize.py


def timed_rounds(
    steps: dict[str, Callable[[], None]], rounds: int, per_round: int
) -> dict[str, tuple[float, float]]:
    """Median wall ms per call and mean CPU ms per call of each step, rounds alternating."""
    for step in steps.values():
        for _ in range(2):
            step()
    walls: dict[str, list[float]] = {k: [] for k in steps}
    cpu = dict.fromkeys(steps, 0.0)
    order = list(steps)
    for r in range(rounds):
        for label in order if r % 2 == 0 else order[::-1]:
            step = steps[label]
            c0 = time.process_time()
            for _ in range(per_round):
                t0 = time.perf_counter()
                step()
                walls[label].append((time.perf_counter() - t0) * 1000)
            cpu[label] += time.process_time() - c0
    n = rounds * per_round
    return {k: (float(np.median(walls[k])), cpu[k] / n * 1000) for k in steps}


def case(
    label: str, model: Path, size: int, args: argparse.Namespace, work: Path
) -> tuple[Report, list[str]]:
    base = DetectionConfig(threads=args.threads)
    options = Options(
        frames=args.frames,
        holdout=args.holdout,
        method=args.method,
        imgsz=size,
        floor=0.0,  # the bench reports; it does not judge
        detection=base,
    )
    out = work / f"{model.stem}-{size}-int8.onnx"
    video = assets.verify("video")
    report = quantize(model, out, video, options)
    cfg = {"threads": args.threads, "input_size": size}
    fp32 = Detector(DetectionConfig(model=str(model), **cfg))
    int8 = Detector(DetectionConfig(model=str(out), **cfg))
    tensors = [fp32.letterbox(f)[0].copy() for f in report.frames.holdout[:8]]
    hw = tensors[0].shape[2:]

    def raw(det: Detector) -> Callable[[], None]:
        sess, name, k = det.session, det.session.get_inputs()[0].name, iter(range(1 << 62))
        return lambda: sess.run(None, {name: tensors[next(k) % len(tensors)]})

    steps: dict[str, Callable[[], None]] = {
        "run FP32": raw(fp32),
        "run INT8": raw(int8),
        "full FP32": Full(fp32, Video(video)),
        "full INT8": Full(int8, Video(video)),
    }
    res = timed_rounds(steps, args.rounds, args.per_round)
    rows = []
    for what in ("run", "full"):
        (f_ms, f_cpu), (i_ms, i_cpu) = res[f"{what} FP32"], res[f"{what} INT8"]
        name = "session.run" if what == "run" else "full pipeline"
        rows.append(
            f"| {label} | {hw[0]}x{hw[1]} | {name} | {f_ms:.1f} | {i_ms:.1f} | "
            f"**{f_ms / i_ms:.2f}x** | {f_cpu:.1f} | {i_cpu:.1f} | {f_cpu / i_cpu:.2f}x |"
        )
    return report, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=Options().frames)
    parser.add_argument("--holdout", type=int, default=Options().holdout)
    parser.add_argument("--method", default=Options().method)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--per-round", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--raw-model", type=Path)
    parser.add_argument("--size", type=int, default=320)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cases = [("default end-to-end", assets.verify("model"), 640)]
    if args.raw_model:
        cases += [("raw-head dynamic", args.raw_model, 640)]
        cases += [("raw-head dynamic", args.raw_model, args.size)]
    rows, agreements = [], []
    with tempfile.TemporaryDirectory(prefix="bench-quant-") as tmp:
        for label, model, size in cases:
            print(f"quantizing {model.name} at {size} ...", flush=True)
            report, lines = case(label, model, size, args, Path(tmp))
            rows += lines
            agreements.append(f"| {label} | {size} | {report.agreement.summary()} |")
            print(f"  {report.speed.summary()}", flush=True)
    print(
        f"\nINT8 vs FP32, {args.threads} threads, method {args.method}, "
        f"{args.rounds}x{args.per_round} alternating runs each (wall: median ms per frame)\n"
    )
    print("| model | input | path | FP32 ms | INT8 ms | speed-up | FP32 CPU ms | "
          "INT8 CPU ms | CPU ratio |")  # fmt: skip
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    print("\nAgreement with FP32 on held-out frames (boxes by class, IoU >= 0.5)\n")
    print("| model | size | agreement |\n|---|---|---|")
    print("\n".join(agreements))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
