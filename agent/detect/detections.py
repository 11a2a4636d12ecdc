"""The one typed object that flows between vision stages (detector -> tracker -> rules)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["Detections"]

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]


def _empty_i32() -> I32:
    return np.zeros(0, dtype=np.int32)


@dataclass(frozen=True)
class Detections:
    """N detections of one frame, in frame pixels.

    ``xyxy`` (N, 4) float32 x1, y1, x2, y2; ``scores`` (N,) float32; ``class_ids`` (N,)
    int32; ``track_ids`` (N,) int32, -1 until a tracker assigns one.  Shapes and dtypes
    are checked when built, and the arrays are made read-only: stages return new objects.
    """

    xyxy: F32
    scores: F32
    class_ids: I32
    track_ids: I32 = field(default_factory=_empty_i32)

    def __post_init__(self) -> None:
        n = len(self.scores)
        if self.track_ids.size == 0 and n:
            object.__setattr__(self, "track_ids", np.full(n, -1, dtype=np.int32))
        expected = {
            "xyxy": ((n, 4), np.float32),
            "scores": ((n,), np.float32),
            "class_ids": ((n,), np.int32),
            "track_ids": ((n,), np.int32),
        }
        for name, (shape, dtype) in expected.items():
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != dtype:
                got = (
                    f"{arr.shape} {arr.dtype}"
                    if isinstance(arr, np.ndarray)
                    else type(arr).__name__
                )
                raise ValueError(
                    f"Detections.{name}: expected {shape} {np.dtype(dtype)}, got {got}"
                )
            arr.flags.writeable = False

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            np.zeros((0, 4), dtype=np.float32),
            np.zeros(0, dtype=np.float32),
            np.zeros(0, dtype=np.int32),
        )

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, mask: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> Detections:
        """A new Detections with the rows picked by a boolean mask or an index array."""
        return Detections(
            self.xyxy[mask].copy(),
            self.scores[mask].copy(),
            self.class_ids[mask].copy(),
            self.track_ids[mask].copy(),
        )

    def with_tracks(self, track_ids: I32) -> Detections:
        return Detections(self.xyxy, self.scores, self.class_ids, track_ids.astype(np.int32))
