"""Building the INT8 model: pre-processing, calibration, ``quantize_static``.

The steps 2, 3 and 5 of :mod:`agent.model.quantize`'s route, one function each; the
``onnx`` package and onnxruntime's quantization tools are imported only in here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from agent.model.errors import QuantizeError
from agent.model.options import Method

if TYPE_CHECKING:
    from agent.detect.detector import Detector

__all__ = [
    "CHUNK",
    "Method",
    "Prepared",
    "Reader",
    "build_int8",
    "calibration_tensors",
    "excluded",
    "prepare",
]

log = logging.getLogger(__name__)

CHUNK: Final = 8  # calibration frames per pass: bounds the calibrator's memory


class Reader:
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


def _chunk(n: int) -> int:
    """The largest divisor of ``n`` up to CHUNK (onnxruntime wants equal passes)."""
    return next(d for d in range(min(CHUNK, n), 0, -1) if n % d == 0)


@dataclass(frozen=True)
class Prepared:
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


def _extract(model: Any, pre: Path, body: Path, outputs: list[str]) -> None:
    import onnx
    import onnx.utils

    inputs = [i.name for i in model.graph.input]
    onnx.utils.extract_model(str(pre), str(body), inputs, outputs, check_model=False)
    part = onnx.load(str(body))
    part.metadata_props.extend(model.metadata_props)  # says "pre-processed" to onnxruntime
    onnx.save(part, str(body))


def prepare(src: Path, folder: Path, *, rewrite: bool = True) -> Prepared:
    """``quant_pre_process`` into ``folder``, nodes named, float regions found.

    With ``rewrite``, Softmax nodes of the float tail are rewritten (agent.model.rewrite):
    the pre-processed model is then the FP32 reference "with the rewrite" for attribution.
    """
    import onnx
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
    # Class names and stride live in the metadata: keep every entry of the original.
    have = {p.key for p in model.metadata_props}
    original = onnx.load(str(src), load_external_data=False).metadata_props
    model.metadata_props.extend(p for p in original if p.key not in have)
    onnx.save(model, str(pre))
    if regions.head_concats:
        # Calibrate only up to the head: tail tensors change shape with the number of
        # boxes (even to empty), which histogram calibrators cannot take.
        byname = {n.name: n for n in model.graph.node}
        outputs = sorted({t for c in regions.head_concats for t in byname[c].input})
        try:
            _extract(model, pre, body, outputs)
        except Exception as exc:  # noqa: BLE001 - onnx raises many kinds
            raise QuantizeError(
                f"IN: {src}: the part up to the detection head could not be cut out for "
                f"calibration ({_first_line(exc)})"
            ) from None
    else:
        log.warning("quantize: no detection head found in %s; only an NMS tail stays float", src)
        body = pre
    count = sum(n.op_type in QUANTIZED_OPS for n in model.graph.node)
    return Prepared(
        model, pre, body, regions.tail, regions.head, regions.stem, count, tuple(rewritten)
    )


def _static(
    model: Path,
    out: Path,
    reader: Reader | None,
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
    reader: Reader | None,
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


def excluded(prepared: Prepared, *, float_head: bool, float_stem: bool) -> tuple[str, ...]:
    head = prepared.head if float_head else ()
    stem = prepared.stem if float_stem else ()
    return (*prepared.tail, *head, *stem)


def build_int8(
    prepared: Prepared,
    out: Path,
    reader: Reader,
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
        exclude = excluded(prepared, float_head=float_head, float_stem=float_stem)
        _static(prepared.path, out, None, exclude, method=method, cache=cache)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's quantizer raises many kinds
        raise QuantizeError(
            f"IN: {prepared.path.name}: onnxruntime could not quantize it with --method "
            f"{method} ({_first_line(exc)})"
        ) from None


def calibration_tensors(detector: Detector, frames: Sequence[Any]) -> list[npt.NDArray[np.float32]]:
    """The frames as the detector feeds them to its model (letterboxed, copied)."""
    return [detector.letterbox(frame)[0].copy() for frame in frames]
