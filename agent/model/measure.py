"""Speed and agreement of an INT8 model against the FP32 model it came from.

Both are run by the agent's own :class:`Detector` (same layout inference, thresholds,
letterbox and threads as in service).  Speed is ``session.run`` on one and the same
prepared input, in interleaved rounds, so that load from other processes on a shared
machine hits both alike; the ratio of medians is the figure to read.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from agent.model.agreement import Agreement, match

if TYPE_CHECKING:
    from agent.detect.detector import Detector

__all__ = ["Speed", "agreement", "speed"]

Frame = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Speed:
    """Median ``session.run`` milliseconds of the FP32 and the INT8 model, same input."""

    fp32_ms: float
    int8_ms: float
    runs: int
    input_hw: tuple[int, int]

    @property
    def ratio(self) -> float:
        """How many times faster INT8 is (FP32 time / INT8 time)."""
        return self.fp32_ms / self.int8_ms if self.int8_ms > 0 else float("inf")

    def summary(self) -> str:
        h, w = self.input_hw
        return (
            f"session.run at {h}x{w}: FP32 {self.fp32_ms:.1f} ms, INT8 {self.int8_ms:.1f} ms "
            f"(median of {self.runs} interleaved runs each): {self.ratio:.2f}x"
        )


def agreement(fp32: Detector, int8: Detector, frames: Sequence[Frame]) -> Agreement:
    """Agreement of ``int8``'s detections with ``fp32``'s over ``frames``."""
    total = Agreement()
    for frame in frames:
        total = total + match(fp32(frame), int8(frame))
    return total


def _time_runs(session: Any, feed: dict[str, Any], output: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        session.run([output], feed)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def speed(
    fp32: Detector, int8: Detector, frame: Frame, rounds: int = 8, per_round: int = 5
) -> Speed:
    """Interleaved ``session.run`` timing of both detectors' sessions on ``frame``'s tensor."""
    tensor, geo = fp32.letterbox(frame)
    tensor = tensor.copy()
    a, b = fp32.session, int8.session
    feed_a = {a.get_inputs()[0].name: tensor}
    feed_b = {b.get_inputs()[0].name: tensor}
    out_a, out_b = a.get_outputs()[0].name, b.get_outputs()[0].name
    _time_runs(a, feed_a, out_a, 2)  # warm both (first runs allocate)
    _time_runs(b, feed_b, out_b, 2)
    ta: list[float] = []
    tb: list[float] = []
    for r in range(rounds):
        # Alternate which goes first, so neither always runs right after the other.
        if r % 2 == 0:
            ta += _time_runs(a, feed_a, out_a, per_round)
            tb += _time_runs(b, feed_b, out_b, per_round)
        else:
            tb += _time_runs(b, feed_b, out_b, per_round)
            ta += _time_runs(a, feed_a, out_a, per_round)
    return Speed(float(np.median(ta)), float(np.median(tb)), len(ta), geo.input_hw)
