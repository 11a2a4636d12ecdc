"""Real frames for calibration and, apart from them, for judging the result.

The calibration frames come from the first half of a video (or of a sorted folder of
images), the held-out frames from the second half, each spread evenly over its half:
the agreement is measured on footage the calibration never saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from agent.model.errors import QuantizeError

__all__ = ["FrameSplit", "split_frames"]

Frame = npt.NDArray[np.uint8]
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


@dataclass(frozen=True)
class FrameSplit:
    """BGR frames for calibration and for the holdout, and where they came from."""

    source: Path
    total: int
    calibration: list[Frame]
    holdout: list[Frame]
    calibration_span: tuple[int, int]  # first and last index used
    holdout_span: tuple[int, int]

    def describe(self) -> str:
        (a, b), (c, d) = self.calibration_span, self.holdout_span
        return (
            f"{self.source.name}: {len(self.calibration)} calibration frames from #{a}-#{b}, "
            f"{len(self.holdout)} held-out frames from #{c}-#{d} (of {self.total})"
        )


def _spread(first: int, end: int, n: int) -> list[int]:
    return sorted({int(i) for i in np.linspace(first, end - 1, n).round()})


def _plan(total: int, calibrate: int, holdout: int, what: str) -> tuple[list[int], list[int]]:
    cut = total // 2
    if calibrate < 1 or holdout < 1:
        raise QuantizeError(
            f"--frames and --holdout must be at least 1 (got {calibrate}, {holdout})"
        )
    if calibrate > cut or holdout > total - cut:
        raise QuantizeError(
            f"--calibrate: {what} has {total} frames; calibration takes at most the first "
            f"half ({cut}) and the holdout at most the second half ({total - cut}), but "
            f"{calibrate} and {holdout} were asked for"
        )
    return _spread(0, cut, calibrate), _spread(cut, total, holdout)


def _read_images(files: list[Path], indices: list[int]) -> list[Frame]:
    import cv2

    frames = []
    for i in indices:
        image = cv2.imread(str(files[i]), cv2.IMREAD_COLOR)
        if image is None:
            raise QuantizeError(f"--calibrate: {files[i]} is not an image OpenCV can read")
        frames.append(np.asarray(image, dtype=np.uint8))
    return frames


def _read_video(path: Path, wanted: set[int]) -> tuple[dict[int, Frame], int]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise QuantizeError(f"--calibrate: {path} is neither a folder nor a video OpenCV can read")
    got: dict[int, Frame] = {}
    index = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if index in wanted:
                got[index] = np.asarray(frame, dtype=np.uint8)
            index += 1
    finally:
        cap.release()
    return got, index


def _count_video(path: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise QuantizeError(f"--calibrate: {path} is neither a folder nor a video OpenCV can read")
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        cap.release()
    # Some containers do not say how many frames they hold: count them.
    return total if total > 0 else _read_video(path, set())[1]


def split_frames(source: Path, calibrate: int, holdout: int) -> FrameSplit:
    """``calibrate`` frames from the first half of ``source``, ``holdout`` from the second."""
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        cal, hold = _plan(len(files), calibrate, holdout, f"folder {source}")
        return FrameSplit(
            source,
            len(files),
            _read_images(files, cal),
            _read_images(files, hold),
            (cal[0], cal[-1]),
            (hold[0], hold[-1]),
        )
    if not source.is_file():
        raise QuantizeError(f"--calibrate: {source} is neither a video file nor a folder")
    total = _count_video(source)
    cal, hold = _plan(total, calibrate, holdout, f"video {source}")
    got, _ = _read_video(source, {*cal, *hold})
    missing = [i for i in (*cal, *hold) if i not in got]
    if missing:
        raise QuantizeError(
            f"--calibrate: {source} claims {total} frames but frame {missing[0]} could not be "
            "decoded; give a smaller --frames/--holdout or another video"
        )
    return FrameSplit(
        source,
        total,
        [got[i] for i in cal],
        [got[i] for i in hold],
        (cal[0], cal[-1]),
        (hold[0], hold[-1]),
    )
