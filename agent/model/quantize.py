"""Static INT8 quantization of a detection model, calibrated on real frames, then judged.

The route (ASSETS.md, "INT8 quantization", and docs/detection.md):

1. ``quant_pre_process`` (shape inference, basic graph optimisation);
2. read the graph for what must stay float (:mod:`agent.model.graph`): the decode and
   NMS after the head Concat always, the stem by default, the head convs when asked;
   rewrite the tail's non-last-axis Softmax (:mod:`agent.model.rewrite`);
3. ``quantize_static`` in QDQ format with per-channel INT8 weights and UINT8
   activations, on the op types that pay on a CPU, calibrated on frames letterboxed by
   the agent's own :class:`Detector` (never a copy of its preprocessing); steps 1-3 are
   in :mod:`agent.model.build`;
4. run FP32 and INT8 through two Detectors on held-out frames: agreement and speed;
5. write OUT only when the agreement F1 reaches the floor.

The ``onnx`` package is needed here and nowhere else in the agent (extra ``quantize``).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from agent.config import DetectionConfig
from agent.model.agreement import Agreement
from agent.model.build import (
    Method,
    Prepared,
    Reader,
    build_int8,
    calibration_tensors,
    excluded,
    prepare,
)
from agent.model.errors import BelowFloorError, QuantizeError
from agent.model.frames import FrameSplit, split_frames
from agent.model.measure import Speed, agreement, speed
from agent.model.options import DEFAULT_FLOOR, Options

__all__ = ["DEFAULT_FLOOR", "Method", "Options", "Report", "quantize", "require_onnx"]

log = logging.getLogger(__name__)

INSTALL_HINT: Final = "pip install '.[quantize]'"


@dataclass(frozen=True)
class Report:
    """What was quantized, what stayed float, and how the result compares with FP32."""

    frames: FrameSplit
    method: Method
    quantized_nodes: int
    float_nodes: int
    kept: str  # which optional regions stayed float
    rewritten: tuple[str, ...]
    agreement: Agreement
    speed: Speed

    def lines(self) -> list[str]:
        rewrite = (
            f"; decode Softmax rewritten: {', '.join(self.rewritten)}" if self.rewritten else ""
        )
        return [
            f"calibration: {self.frames.describe()}",
            f"method {self.method}; {self.quantized_nodes} nodes of quantizable types in INT8, "
            f"{self.float_nodes} kept float (decode/NMS tail{self.kept}){rewrite}",
            f"agreement with FP32 on the held-out frames: {self.agreement.summary()}",
            f"speed: {self.speed.summary()}",
        ]


def require_onnx() -> None:
    """QuantizeError (one paragraph, no traceback) when the ``onnx`` package is missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime.quantization  # noqa: F401
    except ImportError as exc:
        raise QuantizeError(
            f"quantizing needs the 'onnx' package, which is not installed ({exc}). It is an "
            f"optional extra, not needed to run the agent: install it with {INSTALL_HINT} "
            "(or pip install 'pole-agent[quantize]') and run the command again."
        ) from None


def _config(base: DetectionConfig, model: Path, imgsz: int) -> DetectionConfig:
    data: dict[str, Any] = {**base.model_dump(exclude_unset=True), "model": str(model)}
    data["input_size"] = imgsz
    return DetectionConfig.model_validate(data)


def quantize(
    src: Path, dst: Path, source: Path, options: Options, work: Path | None = None
) -> Report:
    """Quantize ``src`` into ``dst`` if it agrees well enough; BelowFloorError otherwise.

    ``work`` keeps the intermediate files (pre-processed model, calibration cache) for
    benches that try several settings; by default a temporary folder is used.
    """
    from agent.detect.detector import Detector
    from agent.detect.errors import ModelError

    require_onnx()
    try:
        fp32 = Detector(_config(options.detection, src, options.imgsz))
    except ModelError as exc:
        raise QuantizeError(f"IN cannot be used as a detection model: {exc}") from None
    frames = split_frames(source, options.frames, options.holdout)
    log.info("quantize: %s", frames.describe())
    with tempfile.TemporaryDirectory(prefix="pole-quant-") as tmp:
        folder = work or Path(tmp)
        prepared = prepare(src, folder, rewrite=options.rewrite_softmax)
        name = fp32.session.get_inputs()[0].name
        reader = Reader(name, calibration_tensors(fp32, frames.calibration))
        log.info("quantize: calibrating (%s) on %d frames", options.method, len(reader))
        out = folder / "int8.onnx"
        build_int8(
            prepared,
            out,
            reader,
            options.method,
            float_head=options.float_head,
            float_stem=options.float_stem,
        )
        int8 = Detector(_config(options.detection, out, options.imgsz))
        log.info("quantize: comparing with FP32 on %d held-out frames", len(frames.holdout))
        agree = agreement(fp32, int8, frames.holdout)
        ref = None
        if prepared.rewritten:  # how much of the speed-up is the rewrite, not INT8
            ref = Detector(_config(options.detection, prepared.path, options.imgsz))
        timing = speed(fp32, int8, frames.holdout[0], rounds=options.speed_rounds, rewritten=ref)
        report = _report(prepared, options, frames, agree, timing)
        _check_floor(report, options.floor, dst)
        _install(out, dst)
    return report


def _report(
    prepared: Prepared, options: Options, frames: FrameSplit, agree: Agreement, timing: Speed
) -> Report:
    from agent.model.graph import QUANTIZED_OPS

    kinds = {n.name: n.op_type for n in prepared.model.graph.node}
    kept_float = excluded(prepared, float_head=options.float_head, float_stem=options.float_stem)
    kept = [n for n in kept_float if kinds.get(n) in QUANTIZED_OPS]
    extra = [
        w for w, on in (("head convs", options.float_head), ("stem", options.float_stem)) if on
    ]
    return Report(
        frames,
        options.method,
        prepared.quantizable - len(kept),
        len(kept),
        "".join(f", {w}" for w in extra),
        prepared.rewritten,
        agree,
        timing,
    )


def _check_floor(report: Report, floor: float, dst: Path) -> None:
    agree, frames = report.agreement, report.frames
    if agree.f1 >= floor:
        return
    raise BelowFloorError(
        f"the INT8 model agrees with the FP32 model at F1 {agree.f1:.3f} on "
        f"{len(frames.holdout)} held-out frames of {frames.source.name}, below the floor "
        f"{floor:g}; {dst} was not written. Its detections would differ too much from "
        f"the model it replaces (precision {agree.precision:.3f}, recall {agree.recall:.3f}). "
        "Try more calibration frames (--frames), another --method, --float-head, footage "
        "from the pole's own camera (--calibrate), or keep the FP32 model; a lower --floor "
        "accepts the difference knowingly.",
        agree.f1,
        floor,
        report.lines(),
    )


def _install(built: Path, dst: Path) -> None:
    """Copy next to ``dst`` and rename, so a half-written model never sits at ``dst``."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    part = dst.with_name(f".{dst.name}.part")
    try:
        shutil.copyfile(built, part)
        os.replace(part, dst)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise QuantizeError(f"OUT: cannot write {dst} ({exc.strerror or exc})") from None
