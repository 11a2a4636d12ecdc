"""Detector benchmark (run by hand): raw ``session.run`` versus the agent and Ultralytics.

On the sample video, with the same model, side by side in one run:

- ``raw``: ``session.run`` on tensors letterboxed beforehand (the limit);
- ``Detector``: the agent's per-frame path on frames decoded before (as in the agent,
  where the capture thread decodes), and with the video read in the loop;
- ``full pipeline``: read, Detector, track, rules, events (``bench/pipeline.py``'s
  ``Full``, motion gating off);
- with ``--raw-model PATH --size 320``: the same for a dynamic-input raw-head model, plus
  ``session.run`` on a square SIZExSIZE tensor (what a square letterbox would cost);
- with ``--ultralytics``: Ultralytics' ``predict`` on the same ONNX file and the same
  frames, the same ``predict`` running on the agent's own session (so only the pre- and
  post-processing differ), and ``track`` (ByteTrack, and BoT-SORT, its default). Needs
  the separate venv described in docs/benchmarks.md ("Detection").

The pipelines alternate in short rounds so that load from other processes hits them
alike; the table prints rates, ratios to the raw rate and CPU per frame (process CPU
time: the steadier figure on a shared machine). Peak RSS (VmHWM) is that of a fresh
process running only one pipeline on the video.

    python bench/detector.py [--frames 100] [--threads 2] [--spinning] [--ultralytics]
        [--raw-model /work/shared/models/yolo11n-coco-raw-dyn.onnx --size 320]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from agent import assets
from agent.config import DetectionConfig
from agent.detect.detector import Detector
from agent.detect.letterbox import Letterbox

try:  # one Video and one full pipeline for both benches
    from bench.pipeline import Full, Video  # python -m bench.detector
except ImportError:
    from pipeline import Full, Video  # type: ignore[no-redef]  # python bench/detector.py

Frame = npt.NDArray[np.uint8]
UL_HINT = "not importable, skipped (separate venv: see docs/benchmarks.md, 'Detection')"
CHILD_MODES = ("detector", "full", "ul-predict", "ul-track")


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


def some_frames(path: Path, count: int) -> list[Frame]:
    video = Video(path)
    frames = [video.read() for _ in range(count * 4)]
    return frames[::4]


def tensors_for(frames: list[Frame], letterbox: Letterbox) -> list[npt.NDArray[np.float32]]:
    return [letterbox(f)[0].copy() for f in frames]


def cycling(frames: list[Frame]) -> Callable[[], Frame]:
    """The prepared frames one after the other, forever."""
    cycle = iter(range(1 << 62))
    return lambda: frames[next(cycle) % len(frames)]


def raw_step(session: Any, tensors: list[npt.NDArray[np.float32]]) -> Callable[[], None]:
    run, name = session.run, session.get_inputs()[0].name
    cycle = iter(range(1 << 62))

    def step() -> None:
        run(None, {name: tensors[next(cycle) % len(tensors)]})

    return step


def detector_step(detector: Detector, read: Callable[[], Frame]) -> Callable[[], None]:
    def step() -> None:
        detector(read())

    return step


def full_step(detector: Detector, video_path: Path) -> Callable[[], None]:
    """bench/pipeline.py's ``Full``: read, detect, track, lifecycle, rules, events."""
    return Full(detector, Video(video_path))


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
        f"  {'pipeline':<50} {'frames/s':>9} {'ms/frame':>9} {'CPU ms/frame':>13}"
        f" {'ratio':>6} {'CPU ratio':>10}"
    )
    for t in tallies.values():
        ms = 1000 / t.fps if t.fps else float("nan")
        cpu = t.cpu / t.frames if t.frames else float("nan")
        ratio = t.fps / base.fps if base.fps else float("nan")
        print(
            f"  {t.name:<50} {t.fps:>9.1f} {ms:>9.1f} {1000 * cpu:>13.1f}"
            f" {ratio:>6.2f} {base_cpu / cpu:>10.2f}"
        )
        for note in t.notes:
            print(f"      {note}")


# ----------------------------------------------------------------------- Ultralytics


def yolo(model_path: Path) -> Any | None:
    """Ultralytics' YOLO on the ONNX file, or None when the package is not installed."""
    if importlib.util.find_spec("ultralytics") is None:
        return None
    # No update checks, analytics or DNS probes: this machine has no internet.
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_VERBOSE", "False")  # no "Loading ..." line per model
    from ultralytics import YOLO  # type: ignore[import-not-found]  # bench venv only

    return YOLO(str(model_path), task="detect")


def ul_predict(model: Any, read: Callable[[], Frame], imgsz: int) -> Callable[[], None]:
    """A user's straightforward loop: one ``predict`` per BGR frame."""

    def step() -> None:
        model.predict(read(), imgsz=imgsz, verbose=False)

    return step


def ul_track(model: Any, read: Callable[[], Frame], imgsz: int, tracker: str) -> Callable[[], None]:
    def step() -> None:
        model.track(read(), imgsz=imgsz, verbose=False, persist=True, tracker=tracker)

    return step


def ul_session(model: Any) -> Any:
    """The onnxruntime session inside Ultralytics (after a first predict built it)."""
    return model.predictor.model.backend.session


def ul_options(model: Any) -> str:
    so = ul_session(model).get_session_options()
    return (
        f"Ultralytics' session: intra_op_num_threads {so.intra_op_num_threads}, inter "
        f"{so.inter_op_num_threads} (0 = onnxruntime's default: one per physical core, "
        f"{os.cpu_count()} here; spinning on), {so.graph_optimization_level}; "
        "YOLO() exposes no session options"
    )


def matched(a: npt.NDArray[Any], b: npt.NDArray[Any], iou: float = 0.5) -> int:
    """How many boxes of ``a`` have a box of ``b`` with IoU >= ``iou`` (same class)."""
    hits = 0
    for box in a:
        same = b[b[:, 4] == box[4]]
        if len(same) == 0:
            continue
        x1 = np.maximum(box[0], same[:, 0])
        y1 = np.maximum(box[1], same[:, 1])
        x2 = np.minimum(box[2], same[:, 2])
        y2 = np.minimum(box[3], same[:, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        area = (box[2] - box[0]) * (box[3] - box[1])
        areas = (same[:, 2] - same[:, 0]) * (same[:, 3] - same[:, 1])
        hits += bool((inter / (area + areas - inter + 1e-9) >= iou).any())
    return hits


def agreement(detector: Detector, model: Any, frames: list[Frame], imgsz: int) -> str:
    """Same detections? Both at the agent's thresholds and classes, boxes in frame pixels."""
    wanted = [i for i, t in enumerate(detector.thresholds) if np.isfinite(t)]
    n_agent = n_ul = both = 0
    for frame in frames:
        d = detector(frame)
        ours = np.column_stack([d.xyxy, d.class_ids]).astype(np.float32)
        r = model.predict(
            frame, imgsz=imgsz, conf=detector.cfg.confidence, iou=detector.cfg.nms_iou,
            classes=wanted, verbose=False,
        )[0].boxes  # fmt: skip
        theirs = np.column_stack([r.xyxy.numpy(), r.cls.numpy()]).astype(np.float32)
        n_agent, n_ul, both = n_agent + len(ours), n_ul + len(theirs), both + matched(ours, theirs)
    return (
        f"same detections? over {len(frames)} frames: agent {n_agent}, Ultralytics {n_ul}, "
        f"{both} of the agent's matched by class and IoU >= 0.5"
    )


def ultralytics_steps(
    detector: Detector, frames: list[Frame], video_path: Path, imgsz: int
) -> tuple[dict[str, Callable[[], None]], list[str]]:
    """Ultralytics' pipelines on the same file and frames, and notes for the table."""
    if importlib.util.find_spec("ultralytics") is None:
        return {}, [f"ultralytics: {UL_HINT}"]
    models = [yolo(detector.path) for _ in range(6)]  # one each: predict args stick
    for model in models[:2]:  # builds the predictor and its session
        model.predict(frames[0], imgsz=imgsz, verbose=False)
    options = ul_options(models[0])
    shared = models[1]
    shared.predictor.model.backend.session = detector.session
    steps = {
        "Ultralytics predict, frames decoded before": ul_predict(models[0], cycling(frames), imgsz),
        "  same, on the agent's session (pre/post only)": ul_predict(
            shared, cycling(frames), imgsz
        ),
        "read video + Ultralytics predict": ul_predict(models[2], Video(video_path).read, imgsz),
        "read video + Ultralytics track (bytetrack)": ul_track(
            models[3], Video(video_path).read, imgsz, "bytetrack.yaml"
        ),
        "read video + Ultralytics track (botsort, default)": ul_track(
            models[4], Video(video_path).read, imgsz, "botsort.yaml"
        ),
    }
    import ultralytics  # type: ignore[import-not-found]

    notes = [
        f"ultralytics {ultralytics.__version__}, torch {_version('torch')}, "
        f"torchvision {_version('torchvision')}",
        options,
        agreement(detector, models[5], frames, imgsz),
    ]
    return steps, notes


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # noqa: BLE001 - any failure just means "unknown"
        return "absent"


# ----------------------------------------------------------------------- one model


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
        "Detector, frames decoded before": detector_step(detector, cycling(sample)),
        "read video + Detector": detector_step(detector, Video(video_path).read),
        "full pipeline (read, detect, track, rules, events)": full_step(detector, video_path),
    }
    if square is not None:
        sq = [np.full((1, 3, square, square), 114 / 255, np.float32)]
        sq[0][:, :, : hw[0], : hw[1]] = tensors[0][:, :, :square, :square]
        steps[f"raw session.run {square}x{square} (square)"] = raw_step(detector.session, sq)
    notes: list[str] = []
    more: dict[str, Callable[[], None]] = {}
    if args.ultralytics:
        more, notes = ultralytics_steps(detector, sample, video_path, cfg.input_size)
        steps.update(more)
    load0 = os.getloadavg()
    tallies = rounds(steps, args.frames, args.per_round)
    title = (
        f"{label}: {detector.path.name}, layout {detector.layout}, threads {cfg.threads}, "
        f"spinning {'on' if cfg.spinning else 'off'}, {args.frames} frames each"
    )
    table(title, tallies, next(iter(tallies)))
    for note in notes:
        print(f"  {note}")
    print(f"  load average before {load0[0]:.2f}, after {os.getloadavg()[0]:.2f} (2 cores)")
    modes = CHILD_MODES if more else CHILD_MODES[:2]
    print(
        f"  peak RSS (VmHWM) of a fresh process running one pipeline for {args.rss_frames} frames:"
    )
    for mode in modes:
        print(f"    {mode:<12} {child_rss(cfg, mode, args.rss_frames)} MB")


def child_rss(cfg: DetectionConfig, mode: str, frames: int) -> str:
    """Peak RSS of a fresh process that runs one pipeline on the video."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", cfg.model_dump_json(), "--child-mode", mode,
         "--frames", str(frames)],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    return (
        proc.stdout.strip().splitlines()[-1]
        if proc.stdout.strip()
        else (f"failed ({proc.stderr.strip()[-200:]})")
    )


def child(cfg_json: str, mode: str, frames: int) -> int:
    cfg = DetectionConfig.model_validate_json(cfg_json)
    video = Video(assets.verify("video"))
    step: Callable[[], None]
    if mode in ("detector", "full"):
        detector = Detector(cfg)
        step = (
            detector_step(detector, video.read)
            if mode == "detector"
            else (full_step(detector, video.path))
        )
    else:
        from agent.detect.detector import model_path

        model = yolo(model_path(cfg))
        if model is None:
            print(f"ultralytics {UL_HINT}")
            return 1
        step = (
            ul_predict(model, video.read, cfg.input_size)
            if mode == "ul-predict"
            else (ul_track(model, video.read, cfg.input_size, "bytetrack.yaml"))
        )
    for _ in range(frames):
        step()
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
    p.add_argument("--ultralytics", action="store_true", help="also Ultralytics predict/track")
    p.add_argument("--rss-frames", type=int, default=60, help="frames run by each RSS probe")
    p.add_argument("--child", help=argparse.SUPPRESS)  # memory probe, see child_rss()
    p.add_argument("--child-mode", choices=CHILD_MODES, default="detector", help=argparse.SUPPRESS)
    return p.parse_args()


def main() -> int:
    args = parse()
    if args.child:
        return child(args.child, args.child_mode, args.frames)
    video = assets.verify("video")
    print(
        f"sample video {video.name}; python {sys.version.split()[0]}, {sys.prefix}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    common = {"threads": args.threads, "spinning": args.spinning}
    bench_model("default model", DetectionConfig(**common), video, args)
    if args.raw_model is not None:
        cfg = DetectionConfig(model=str(args.raw_model), input_size=args.size, **common)
        bench_model(f"dynamic raw model at {args.size}", cfg, video, args, square=args.size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
