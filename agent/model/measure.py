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
    rewritten_ms: float | None = None  # FP32 with the float-tail rewrite, if any
    paired: float | None = None  # median over rounds of that round's FP32/INT8 ratio
    paired_quant: float | None = None  # the same for rewritten FP32 / INT8

    @property
    def ratio(self) -> float:
        """How many times faster INT8 is: the paired per-round ratio when measured.

        Pairing each round's FP32 and INT8 runs cancels most of the load that other
        processes put on a shared machine; the ratio of overall medians is close to it
        on a quiet one.
        """
        if self.paired is not None:
            return self.paired
        return self.fp32_ms / self.int8_ms if self.int8_ms > 0 else float("inf")

    def summary(self) -> str:
        h, w = self.input_hw
        text = (
            f"session.run at {h}x{w}: FP32 {self.fp32_ms:.1f} ms, INT8 {self.int8_ms:.1f} ms "
            f"(median of {self.runs} interleaved runs each): INT8 {self.ratio:.2f}x faster"
        )
        if self.rewritten_ms is not None:
            quant = self.paired_quant or self.rewritten_ms / self.int8_ms
            text += (
                f"; FP32 with the same Softmax rewrite {self.rewritten_ms:.1f} ms: "
                f"{quant:.2f}x of it is the quantization, {self.ratio / quant:.2f}x the rewrite"
            )
        return text


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
    fp32: Detector,
    int8: Detector,
    frame: Frame,
    *,
    rounds: int = 8,
    per_round: int = 5,
    rewritten: Detector | None = None,
) -> Speed:
    """Interleaved ``session.run`` timing of the detectors' sessions on ``frame``'s tensor."""
    tensor, geo = fp32.letterbox(frame)
    tensor = tensor.copy()
    sessions = [d.session for d in (fp32, int8, rewritten) if d is not None]
    feeds = [({s.get_inputs()[0].name: tensor}, s.get_outputs()[0].name) for s in sessions]
    times: list[list[float]] = [[] for _ in sessions]
    for s, (feed, out) in zip(sessions, feeds, strict=True):
        _time_runs(s, feed, out, 2)  # warm (first runs allocate)
    order = list(range(len(sessions)))
    ratios: list[float] = []
    quant: list[float] = []
    for r in range(rounds):
        # Alternate the order, so none always runs right after another.
        this = [0.0] * len(sessions)
        for i in order if r % 2 == 0 else order[::-1]:
            runs = _time_runs(sessions[i], *feeds[i], per_round)
            times[i] += runs
            this[i] = float(np.median(runs))
        ratios.append(this[0] / this[1])
        if rewritten is not None:
            quant.append(this[2] / this[1])
    med = [float(np.median(t)) for t in times]
    return Speed(
        med[0],
        med[1],
        len(times[0]),
        geo.input_hw,
        med[2] if rewritten else None,
        float(np.median(ratios)),
        float(np.median(quant)) if quant else None,
    )
