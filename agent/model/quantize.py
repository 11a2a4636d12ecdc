"""Static INT8 quantization of a detection model, calibrated on real frames, then judged.

The route (ASSETS.md, "INT8 quantization", and docs/detection.md):

1. ``quant_pre_process`` (shape inference, basic graph optimisation);
2. read the graph for what must stay float (:mod:`agent.model.graph`): the decode and
   NMS after the head Concat always, the head convs when asked;
3. ``quantize_static`` in QDQ format with per-channel INT8 weights and UINT8
   activations, on the op types that pay on a CPU, calibrated on frames letterboxed by
   the agent's own :class:`Detector` (never a copy of its preprocessing);
4. run FP32 and INT8 through two Detectors on held-out frames: agreement and speed;
5. write OUT only when the agreement F1 reaches the floor.

The ``onnx`` package is needed here and nowhere else in the agent (extra ``quantize``).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import numpy.typing as npt

from agent.config import DetectionConfig
from agent.model.agreement import Agreement
from agent.model.errors import BelowFloorError, QuantizeError
from agent.model.frames import FrameSplit, split_frames
from agent.model.measure import Speed, agreement, speed

if TYPE_CHECKING:
    from agent.detect.detector import Detector

__all__ = ["DEFAULT_FLOOR", "Method", "Options", "Report", "quantize", "require_onnx"]

log = logging.getLogger(__name__)

Method = Literal["minmax", "entropy", "percentile"]
DEFAULT_FLOOR: Final = 0.9
CHUNK: Final = 8  # calibration frames per pass: bounds the calibrator's memory
INSTALL_HINT: Final = "pip install '.[quantize]'"


@dataclass(frozen=True)
class Options:
    """What ``pole-agent model quantize`` was asked for (defaults chosen by measurement)."""

    frames: int = 32
    holdout: int = 40
    method: Method = "minmax"
    float_head: bool = False
    float_stem: bool = True
    rewrite_softmax: bool = True
    imgsz: int = 640
    floor: float = DEFAULT_FLOOR
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    speed_rounds: int = 8


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


class _Reader:
    """Calibration tensors for onnxruntime's calibrator, in ranges of ``CHUNK`` frames."""

    def __init__(self, name: str, tensors: Sequence[npt.NDArray[np.float32]]) -> None:
        self.name, self.tensors = name, list(tensors)
        self.start, self.end, self.pos = 0, len(self.tensors), 0

    def __len__(self) -> int:
        return len(self.tensors)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.start, self.end, self.pos = start_index, end_index, start_index

    def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
        if self.pos >= min(self.end, len(self.tensors)):
            return None
        self.pos += 1
        return {self.name: self.tensors[self.pos - 1]}

    def rewind(self) -> None:
        self.pos = self.start


def _chunk(n: int) -> int:
    """The largest divisor of ``n`` up to CHUNK (onnxruntime wants equal passes)."""
    return next(d for d in range(min(CHUNK, n), 0, -1) if n % d == 0)


@dataclass(frozen=True)
class _Prepared:
    """The pre-processed model and what of it stays float."""

    model: Any
    path: Path
    body: Path  # the part calibration runs: up to the detection head (or all of it)
    tail: tuple[str, ...]
    head: tuple[str, ...]
    stem: tuple[str, ...]
    quantizable: int
    rewritten: tuple[str, ...]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def _prepare(src: Path, folder: Path, *, rewrite: bool = True) -> _Prepared:
    """``quant_pre_process`` into ``folder``, nodes named, float regions found.

    With ``rewrite``, Softmax nodes of the float tail are rewritten (agent.model.rewrite):
    the pre-processed model is then the FP32 reference "with the rewrite" for attribution.
    """
    import onnx
    import onnx.utils
    from onnxruntime.quantization import quant_pre_process

    from agent.model.graph import QUANTIZED_OPS, float_regions, name_nodes
    from agent.model.rewrite import softmax_inner_axes

    pre, body = folder / "pre.onnx", folder / "body.onnx"
    try:
        # Symbolic shape inference (needs sympy) is for transformer graphs; ONNX shape
        # inference covers CNN detectors, static and dynamic.
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        model = onnx.load(str(pre))
    except Exception as exc:  # noqa: BLE001 - onnx and onnxruntime raise many kinds
        raise QuantizeError(
            f"IN: {src} could not be prepared for quantization ({_first_line(exc)})"
        ) from None
    name_nodes(model.graph)
    regions = float_regions(model.graph)
    rewritten = softmax_inner_axes(model, set(regions.tail)) if rewrite else []
    if not model.metadata_props:
        model.metadata_props.extend(onnx.load(str(src), load_external_data=False).metadata_props)
    onnx.save(model, str(pre))
    if regions.head_concats:
        # Calibrate only up to the head: tail tensors change shape with the number of
        # boxes (even to empty), which histogram calibrators cannot take.
        byname = {n.name: n for n in model.graph.node}
        outputs = sorted({t for c in regions.head_concats for t in byname[c].input})
        inputs = [i.name for i in model.graph.input]
        onnx.utils.extract_model(str(pre), str(body), inputs, outputs, check_model=False)
        part = onnx.load(str(body))
        part.metadata_props.extend(model.metadata_props)  # says "pre-processed" to ORT
        onnx.save(part, str(body))
    else:
        log.warning("quantize: no detection head found in %s; only an NMS tail stays float", src)
        body = pre
    count = sum(n.op_type in QUANTIZED_OPS for n in model.graph.node)
    return _Prepared(
        model, pre, body, regions.tail, regions.head, regions.stem, count, tuple(rewritten)
    )


def _static(
    model: Path,
    out: Path,
    reader: _Reader | None,
    exclude: Sequence[str],
    *,
    method: Method,
    cache: Path,
) -> None:
    extra: dict[str, Any] = {"CalibPercentile": 99.999}
    if reader is not None:
        reader.set_range(0, len(reader))
        extra["CalibStridedMinMax"] = _chunk(len(reader))  # bounds the calibrator's memory
    # onnxruntime's quantizer logs its routine adjustments on the root logger.
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        _run_static(model, out, reader, exclude, method=method, cache=cache, extra=extra)
    finally:
        root.setLevel(level)


def _run_static(
    model: Path,
    out: Path,
    reader: _Reader | None,
    exclude: Sequence[str],
    *,
    method: Method,
    cache: Path,
    extra: dict[str, Any],
) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from agent.model.graph import QUANTIZED_OPS

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    quantize_static(
        str(model),
        str(out),
        reader,
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(QUANTIZED_OPS),
        per_channel=True,
        # U8 activations with S8 weights: the pair onnxruntime's x86 kernels (VNNI) want;
        # S8 activations measured 2x slower than FP32 here.
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=list(exclude),
        calibrate_method=methods[method],
        calibration_cache_path=str(cache),
        extra_options=extra,
    )


def _excluded(prepared: _Prepared, *, float_head: bool, float_stem: bool) -> tuple[str, ...]:
    head = prepared.head if float_head else ()
    stem = prepared.stem if float_stem else ()
    return (*prepared.tail, *head, *stem)


def build_int8(
    prepared: _Prepared,
    out: Path,
    reader: _Reader,
    method: Method,
    *,
    float_head: bool,
    float_stem: bool = True,
    cache: Path | None = None,
) -> None:
    """Calibrate (unless ``cache`` already holds ranges) and write the QDQ model to ``out``."""
    cache = cache or out.with_suffix(f".{method}.json")
    try:
        if not cache.is_file():
            # The calibrating pass also writes a quantized body: thrown away.
            _static(
                prepared.body, out.with_name("calib.onnx"), reader, (), method=method, cache=cache
            )
        exclude = _excluded(prepared, float_head=float_head, float_stem=float_stem)
        _static(prepared.path, out, None, exclude, method=method, cache=cache)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's quantizer raises many kinds
        raise QuantizeError(
            f"IN: {prepared.path.name}: onnxruntime could not quantize it with --method "
            f"{method} ({_first_line(exc)})"
        ) from None


def calibration_tensors(detector: Detector, frames: Sequence[Any]) -> list[npt.NDArray[np.float32]]:
    """The frames as the detector feeds them to its model (letterboxed, copied)."""
    return [detector.letterbox(frame)[0].copy() for frame in frames]


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
        prepared = _prepare(src, folder, rewrite=options.rewrite_softmax)
        name = fp32.session.get_inputs()[0].name
        reader = _Reader(name, calibration_tensors(fp32, frames.calibration))
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
    prepared: _Prepared, options: Options, frames: FrameSplit, agree: Agreement, timing: Speed
) -> Report:
    from agent.model.graph import QUANTIZED_OPS

    kinds = {n.name: n.op_type for n in prepared.model.graph.node}
    excluded = _excluded(prepared, float_head=options.float_head, float_stem=options.float_stem)
    kept = [n for n in excluded if kinds.get(n) in QUANTIZED_OPS]
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
