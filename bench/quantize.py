"""INT8 versus FP32 (run by hand): speed-up and agreement, side by side in one run.

For each case, the model is quantized as ``pole-agent model quantize`` does (calibration
on the first half of the sample video, agreement on held-out frames of the second half),
then the FP32 and the INT8 model run in alternating short rounds:

- ``session.run``: on letterboxed tensors of held-out frames (the limit);
- ``full pipeline``: read, Detector, track, rules, events (``bench/pipeline.py``'s
  ``Full``, motion gating off).

Cases: the default end-to-end model at 640; with ``--raw-model`` the raw-head dynamic
model at 640 and at ``--size`` (320; a rect 256x320 input for this 4:3 video).
Printed: median milliseconds per frame by wall clock; the INT8 speed-up as the median
over rounds of each round's FP32 time / INT8 time (pairing cancels most of the load other
processes put on this shared machine); the same against "FP32 rw", the pre-processed FP32
graph with the decode Softmax rewrite that the INT8 model also has (so that column is the
quantization alone); CPU per frame; and the agreement (precision, recall, F1 at the
default confidence) on held-out frames.

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
from dataclasses import dataclass, field
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


@dataclass
class Timing:
    walls: list[float] = field(default_factory=list)  # ms per call
    rounds: list[float] = field(default_factory=list)  # each round's median ms
    cpu: float = 0.0  # s

    @property
    def ms(self) -> float:
        return float(np.median(self.walls))


def timed_rounds(
    steps: dict[str, Callable[[], None]], rounds: int, per_round: int
) -> dict[str, Timing]:
    """Per-call wall ms, per-round medians and CPU of each step, rounds alternating order."""
    for step in steps.values():
        for _ in range(2):
            step()
    res = {k: Timing() for k in steps}
    order = list(steps)
    for r in range(rounds):
        for label in order if r % 2 == 0 else order[::-1]:
            step, t = steps[label], res[label]
            c0 = time.process_time()
            walls = []
            for _ in range(per_round):
                t0 = time.perf_counter()
                step()
                walls.append((time.perf_counter() - t0) * 1000)
            t.cpu += time.process_time() - c0
            t.walls += walls
            t.rounds.append(float(np.median(walls)))
    return res


def paired(a: Timing, b: Timing) -> float:
    """Median over rounds of a's time / b's time in the same round."""
    return float(np.median([x / y for x, y in zip(a.rounds, b.rounds, strict=True)]))


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
    folder = work / f"{model.stem}-{size}"
    folder.mkdir()
    out = folder / "out-int8.onnx"
    video = assets.verify("video")
    report = quantize(model, out, video, options, work=folder)
    cfg = {"threads": args.threads, "input_size": size}
    fp32 = Detector(DetectionConfig(model=str(model), **cfg))
    fp32rw = Detector(DetectionConfig(model=str(folder / "pre.onnx"), **cfg))
    int8 = Detector(DetectionConfig(model=str(out), **cfg))
    tensors = [fp32.letterbox(f)[0].copy() for f in report.frames.holdout[:8]]
    hw = tensors[0].shape[2:]

    def raw(det: Detector) -> Callable[[], None]:
        sess, name, k = det.session, det.session.get_inputs()[0].name, iter(range(1 << 62))
        return lambda: sess.run(None, {name: tensors[next(k) % len(tensors)]})

    steps: dict[str, Callable[[], None]] = {
        "run FP32": raw(fp32),
        "run FP32rw": raw(fp32rw),
        "run INT8": raw(int8),
        "full FP32": Full(fp32, Video(video)),
        "full FP32rw": Full(fp32rw, Video(video)),
        "full INT8": Full(int8, Video(video)),
    }
    res = timed_rounds(steps, args.rounds, args.per_round)
    n = args.rounds * args.per_round
    rows = []
    for what in ("run", "full"):
        f, rw, i = res[f"{what} FP32"], res[f"{what} FP32rw"], res[f"{what} INT8"]
        name = "session.run" if what == "run" else "full pipeline"
        rows.append(
            f"| {label} | {hw[0]}x{hw[1]} | {name} | {f.ms:.1f} | {rw.ms:.1f} | {i.ms:.1f} | "
            f"**{paired(f, i):.2f}x** | {paired(rw, i):.2f}x | "
            f"{f.cpu / n * 1000:.1f} | {i.cpu / n * 1000:.1f} | {f.cpu / i.cpu:.2f}x |"
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
    print("| model | input | path | FP32 ms | FP32 rw ms | INT8 ms | INT8 vs FP32 | "
          "INT8 vs FP32 rw | FP32 CPU ms | INT8 CPU ms | CPU ratio |")  # fmt: skip
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    print("\nAgreement with FP32 on held-out frames (boxes by class, IoU >= 0.5)\n")
    print("| model | size | agreement |\n|---|---|---|")
    print("\n".join(agreements))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
