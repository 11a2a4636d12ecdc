"""Detector benchmark (run by hand): raw ``session.run`` versus the Detector's full path.

On the sample video, with the same model, session and threads, side by side in one run:

- ``raw``: ``session.run`` on tensors letterboxed beforehand (the limit);
- ``detector``: the agent's per-frame path: read and decode the video frame, letterbox
  into the reused buffer, run, decode the output, filter and map back;
- with ``--raw-model PATH --size 320``: the same for a dynamic-input raw-head model, plus
  ``session.run`` on a square SIZExSIZE tensor (what a square letterbox would cost);
- with ``--ultralytics``: Ultralytics' ``predict`` on the same ONNX file, when importable
  (``pip install torch==2.13.0 ultralytics`` in the bench extra).

The pipelines alternate in short rounds so that load from other processes hits them
alike; the table prints rates, ratios to the raw rate and CPU per frame; the peak RSS
is that of a fresh process running only the Detector on the video (the bench process
itself holds several pipelines and prepared tensors).

    python bench/detector.py [--frames 100] [--threads 2]
        [--raw-model /work/shared/models/yolo11n-coco-raw-dyn.onnx --size 320] [--ultralytics]
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from agent import assets
from agent.config import DetectionConfig
from agent.detect.detector import Detector
from agent.detect.letterbox import Letterbox

Frame = npt.NDArray[np.uint8]


@dataclass
class Tally:
    name: str
    wall: float = 0.0
    cpu: float = 0.0
    frames: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.wall if self.wall else 0.0


def peak_rss_mb() -> float:
    """Peak RSS of this process image: VmHWM, because ru_maxrss survives fork and exec
    (a child started from the big bench process would report the parent's peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Video:
    """The sample video read frame by frame, rewinding at the end (decode is measured)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cap = cv2.VideoCapture(str(path))

    def read(self) -> Frame:
        ok, frame = self.cap.read()
        if not ok:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self.cap.read()
        assert ok, f"cannot read {self.path}"
        return np.asarray(frame, dtype=np.uint8)


def some_frames(path: Path, count: int) -> list[Frame]:
    video = Video(path)
    frames = [video.read() for _ in range(count * 4)]
    return frames[::4]


def tensors_for(frames: list[Frame], letterbox: Letterbox) -> list[npt.NDArray[np.float32]]:
    return [letterbox(f)[0].copy() for f in frames]


def raw_step(session: object, tensors: list[npt.NDArray[np.float32]]) -> Callable[[], None]:
    run = session.run  # type: ignore[attr-defined]
    name = session.get_inputs()[0].name  # type: ignore[attr-defined]
    cycle = iter(range(1 << 62))

    def step() -> None:
        run(None, {name: tensors[next(cycle) % len(tensors)]})

    return step


def detector_step(detector: Detector, video: Video) -> Callable[[], None]:
    def step() -> None:
        detector(video.read())

    return step


def decoded_step(detector: Detector, frames: list[Frame]) -> Callable[[], None]:
    """The Detector alone, as in the agent, where the capture thread decodes the video."""
    cycle = iter(range(1 << 62))

    def step() -> None:
        detector(frames[next(cycle) % len(frames)])

    return step


def rounds(steps: dict[str, Callable[[], None]], frames: int, per_round: int) -> dict[str, Tally]:
    tallies = {name: Tally(name) for name in steps}
    for step in steps.values():  # warm every path once before timing
        for _ in range(3):
            step()
    done = 0
    while done < frames:
        n = min(per_round, frames - done)
        for name, step in steps.items():
            c0, t0 = time.process_time(), time.perf_counter()
            for _ in range(n):
                step()
            tallies[name].wall += time.perf_counter() - t0
            tallies[name].cpu += time.process_time() - c0
            tallies[name].frames += n
        done += n
    return tallies


def table(title: str, tallies: dict[str, Tally], limit: str) -> None:
    """Rates and two ratios to the limit: by wall time, and by CPU time per frame (the
    steadier one when other processes share the cores)."""
    base = tallies[limit]
    base_cpu = base.cpu / base.frames if base.frames else float("nan")
    print(f"\n{title}")
    print(
        f"  {'pipeline':<36} {'frames/s':>9} {'ms/frame':>9} {'CPU ms/frame':>13}"
        f" {'ratio':>6} {'CPU ratio':>10}"
    )
    for t in tallies.values():
        ms = 1000 / t.fps if t.fps else float("nan")
        cpu = t.cpu / t.frames if t.frames else float("nan")
        ratio = t.fps / base.fps if base.fps else float("nan")
        print(
            f"  {t.name:<36} {t.fps:>9.1f} {ms:>9.1f} {1000 * cpu:>13.1f}"
            f" {ratio:>6.2f} {base_cpu / cpu:>10.2f}"
        )
        for note in t.notes:
            print(f"      {note}")


def ultralytics_step(model_path: Path, video: Video, imgsz: int) -> Callable[[], None] | None:
    if importlib.util.find_spec("ultralytics") is None:
        return None
    from ultralytics import YOLO  # type: ignore[import-not-found]  # bench extra only

    model = YOLO(str(model_path), task="detect")

    def step() -> None:
        model.predict(video.read(), imgsz=imgsz, verbose=False)

    return step


def bench_model(
    label: str,
    cfg: DetectionConfig,
    video_path: Path,
    args: argparse.Namespace,
    square: int | None = None,
) -> None:
    detector = Detector(cfg)
    sample = some_frames(video_path, 8)
    tensors = tensors_for(sample, Letterbox(detector.letterbox.fixed_hw, cfg.input_size))
    hw = tensors[0].shape[2:]
    steps: dict[str, Callable[[], None]] = {
        f"raw session.run {hw[0]}x{hw[1]}": raw_step(detector.session, tensors),
        "Detector, frames decoded before": decoded_step(detector, sample),
        "read video + Detector": detector_step(detector, Video(video_path)),
    }
    if square is not None:
        sq = [np.full((1, 3, square, square), 114 / 255, np.float32)]
        sq[0][:, :, : hw[0], : hw[1]] = tensors[0][:, :, :square, :square]
        steps[f"raw session.run {square}x{square} (square)"] = raw_step(detector.session, sq)
    if args.ultralytics:
        ul = ultralytics_step(detector.path, Video(video_path), cfg.input_size)
        if ul is None:
            print(
                "  ultralytics: not importable, skipped "
                "(bench extra: pip install torch==2.13.0 ultralytics)"
            )
        else:
            steps["Ultralytics predict (same ONNX)"] = ul
    tallies = rounds(steps, args.frames, args.per_round)
    title = (
        f"{label}: {detector.path.name}, layout {detector.layout}, threads {cfg.threads}, "
        f"spinning {'on' if cfg.spinning else 'off'}, {args.frames} frames each"
    )
    table(title, tallies, next(iter(tallies)))
    print(f"  peak RSS of a process running only read video + Detector: {child_rss(cfg)} MB")


def child_rss(cfg: DetectionConfig, frames: int = 60) -> str:
    """Peak RSS of a fresh process that builds this Detector and runs it on the video."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", cfg.model_dump_json(), "--frames", str(frames)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    return proc.stdout.strip() or f"failed ({proc.stderr.strip()[-200:]})"


def child(cfg_json: str, frames: int) -> int:
    detector = Detector(DetectionConfig.model_validate_json(cfg_json))
    video = Video(assets.verify("video"))
    for _ in range(frames):
        detector(video.read())
    print(f"{peak_rss_mb():.0f}")
    return 0


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--frames", type=int, default=100, help="frames per pipeline (100)")
    p.add_argument("--per-round", type=int, default=20, help="frames per alternation (20)")
    p.add_argument("--threads", type=int, default=DetectionConfig().threads)
    p.add_argument("--spinning", action="store_true", help="let onnxruntime threads spin")
    p.add_argument("--raw-model", type=Path, help="dynamic raw-head model, e.g. ../shared/...")
    p.add_argument("--size", type=int, default=320, help="input size for --raw-model (320)")
    p.add_argument("--ultralytics", action="store_true", help="also Ultralytics predict")
    p.add_argument("--child", help=argparse.SUPPRESS)  # memory probe, see child_rss()
    return p.parse_args()


def main() -> int:
    args = parse()
    if args.child:
        return child(args.child, args.frames)
    video = assets.verify("video")
    print(f"sample video {video.name}; python {sys.version.split()[0]}")
    common = {"threads": args.threads, "spinning": args.spinning}
    bench_model("default model", DetectionConfig(**common), video, args)
    if args.raw_model is not None:
        cfg = DetectionConfig(model=str(args.raw_model), input_size=args.size, **common)
        bench_model(f"dynamic raw model at {args.size}", cfg, video, args, square=args.size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
