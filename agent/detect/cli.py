"""`pole-agent detect SOURCE`: run the detector on an image or a video file, on the spot.

For a technician checking a model and a camera view: prints the detections of each
frame (or JSON lines), and can write an annotated image or video.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from agent.config import DetectionConfig

if TYPE_CHECKING:  # numpy loads with the command, not with `pole-agent run`'s parser
    import numpy as np
    import numpy.typing as npt

    Frame = npt.NDArray[np.uint8]

__all__ = ["FrameSource", "annotate", "detection_config", "register"]

IMAGE_SUFFIXES: Final = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_FOURCC: Final = {".mp4": "mp4v", ".avi": "MJPG"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "detect",
        help="run the detector on an image or a video file and print what it finds",
        description="Run the configured detector on an image or a video file and print the "
        "detections of each frame (class, score, box in frame pixels).",
    )
    p.add_argument("source", metavar="SOURCE", help="image or video file, or 'sample'")
    p.add_argument("--config", metavar="FILE", help="site file; its detection section is used")
    p.add_argument("--model", metavar="PATH", help="ONNX model (overrides the config)")
    p.add_argument("--out", metavar="FILE", help="annotated .jpg/.png (last frame) or .mp4/.avi")
    p.add_argument("--frames", type=int, metavar="N", help="stop after N frames of a video")
    p.add_argument("--start", type=int, default=0, metavar="I", help="first video frame (0)")
    p.add_argument("--json", action="store_true", help="one JSON object per frame on stdout")
    p.set_defaults(func=_cmd_detect)


def _user_error(message: str) -> Exception:
    from agent.errors import UserError

    return UserError(message)


def detection_config(config: str | None, model: str | None) -> DetectionConfig:
    """The detection section of a site file (or the defaults), with ``--model`` applied."""
    cfg = DetectionConfig()
    if config is not None:
        from agent.config import load

        cfg = load(config).detection
    if model is None:
        return cfg
    # exclude_unset keeps "which fields the technician wrote" (the detector treats an
    # explicit class list strictly and the default one leniently).
    return DetectionConfig.model_validate({**cfg.model_dump(exclude_unset=True), "model": model})


def _source_path(source: str) -> Path:
    if source == "sample":
        from agent import assets

        return assets.verify("video")
    path = Path(source).expanduser()
    if not path.is_file():
        raise _user_error(f"SOURCE: {path} does not exist or is not a file")
    return path


class FrameSource:
    """Frames of an image (one) or a video file, opened and checked before any model loads.

    Iterating yields ``(index, BGR frame)`` from ``start``, at most ``limit`` of them.
    """

    def __init__(self, path: Path, start: int = 0, limit: int | None = None) -> None:
        import cv2
        import numpy as np

        self.path, self.start, self.limit = path, start, limit
        self.image: Frame | None = None
        self.cap: Any = None
        self.fps = 10.0
        if path.suffix.lower() in IMAGE_SUFFIXES:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise _user_error(f"SOURCE: {path} is not an image OpenCV can read")
            self.image = np.asarray(image, dtype=np.uint8)
            return
        self.cap = cv2.VideoCapture(str(path))
        if not self.cap.isOpened():
            raise _user_error(f"SOURCE: {path} is neither an image nor a video OpenCV can read")
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.5 <= fps <= 240 else 10.0
        if start:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, start)

    def __iter__(self) -> Iterator[tuple[int, Frame]]:
        if self.image is not None:
            yield 0, self.image
            return
        import numpy as np

        index, count = self.start, 0
        while self.limit is None or count < self.limit:
            ok, frame = self.cap.read()
            if not ok:
                if count == 0:
                    raise _user_error(f"SOURCE: {self.path} gave no frame from frame {self.start}")
                return
            yield index, np.asarray(frame, dtype=np.uint8)
            index, count = index + 1, count + 1

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()


def _colour(class_id: int) -> tuple[int, int, int]:
    hue = (class_id * 47) % 180
    import cv2
    import numpy as np

    hsv = np.array([[[hue, 200, 255]]], dtype=np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def annotate(frame: Frame, rows: list[dict[str, Any]]) -> Frame:
    """A copy of ``frame`` with boxes and ``class score`` labels drawn."""
    import cv2

    out = frame.copy()
    for row in rows:
        x1, y1, x2, y2 = (round(v) for v in row["box"])
        colour = _colour(int(row["class_id"]))
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 2)
        label = f"{row['class']} {row['score']:.2f}"
        cv2.putText(out, label, (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1)
    return out


class _Sink:
    """Where annotated frames go: the last one as an image, or all into a video."""

    def __init__(self, out: str | None, fps: float) -> None:
        self.path = Path(out) if out else None
        self.fps = fps
        self.writer: Any = None
        self.last: Frame | None = None
        if self.path is not None:
            suffix = self.path.suffix.lower()
            if suffix not in IMAGE_SUFFIXES and suffix not in VIDEO_FOURCC:
                raise _user_error(
                    f"--out: {self.path} must end in .jpg, .png (image) or .mp4, .avi (video)"
                )

    def add(self, frame: Frame) -> None:
        import cv2

        if self.path is None:
            return
        if self.path.suffix.lower() in IMAGE_SUFFIXES:
            self.last = frame
            return
        if self.writer is None:
            fourcc = cv2.VideoWriter.fourcc(*VIDEO_FOURCC[self.path.suffix.lower()])
            h, w = frame.shape[:2]
            self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (w, h))
            if not self.writer.isOpened():
                raise _user_error(f"--out: cannot write a video to {self.path}")
        self.writer.write(frame)

    def close(self) -> None:
        import cv2

        if self.writer is not None:
            self.writer.release()
        if (
            self.path is not None
            and self.last is not None
            and not cv2.imwrite(str(self.path), self.last)
        ):
            raise _user_error(f"--out: cannot write an image to {self.path}")


def _cmd_detect(args: argparse.Namespace) -> int:
    from agent.detect.detector import Detector

    if args.frames is not None and args.frames < 1:
        raise _user_error(f"--frames must be at least 1, got {args.frames}")
    if args.start < 0:
        raise _user_error(f"--start must be 0 or more, got {args.start}")
    if not getattr(args, "verbose", False):
        # FFmpeg prints its own lines for a damaged file; the paragraph below says it.
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    sink = _Sink(args.out, 10.0)
    source = FrameSource(_source_path(args.source), args.start, args.frames)
    sink.fps = source.fps
    total = seen = 0
    try:
        detector = Detector(detection_config(args.config, args.model))
        for index, frame in source:
            dets = detector(frame)
            rows = [
                {
                    "class": detector.class_name(int(c)),
                    "class_id": int(c),
                    "score": round(float(s), 3),
                    "box": [round(float(v), 1) for v in box],
                }
                for box, s, c in zip(dets.xyxy, dets.scores, dets.class_ids, strict=True)
            ]
            _print_frame(index, rows, args.json)
            sink.add(annotate(frame, rows) if sink.path else frame)
            total, seen = total + len(rows), seen + 1
    finally:
        source.close()
        sink.close()
    facts = detector.facts()
    print(
        f"{seen} frame(s), {total} detection(s); {facts['model']} {facts['layout']} input "
        f"{facts['input'][0]}x{facts['input'][1]}, inference p50 {facts['infer_ms_p50']} ms, "
        f"p95 {facts['infer_ms_p95']} ms" + (f"; wrote {sink.path}" if sink.path else ""),
        file=sys.stderr,
    )
    return 0


def _print_frame(index: int, rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"frame": index, "detections": rows}, ensure_ascii=False), flush=True)
        return
    print(f"frame {index}: {len(rows)} detection(s)")
    for r in rows:
        x1, y1, x2, y2 = r["box"]
        print(f"  {r['class']:<14} {r['score']:.2f}  [{x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}]")
