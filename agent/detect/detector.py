"""The ONNX detector: ``Detector(cfg)(frame_bgr) -> Detections`` in frame pixels.

Everything that can be wrong with a model (missing file, not ONNX, an unavailable
execution provider, outputs of no known layout, class names that do not fit) is found
in the constructor, which also warms the session up, so a bad model stops the agent at
start-up with a :class:`ModelError` instead of failing on the first frame.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt

from agent.config import DetectionConfig
from agent.detect.decoders import Decoded, Layout, decode, num_classes, select_layout
from agent.detect.detections import Detections
from agent.detect.errors import ModelError
from agent.detect.labels import default_names, names_from_metadata, read_labels_file
from agent.detect.letterbox import Letterbox

__all__ = ["PROVIDERS", "Detector"]

log = logging.getLogger(__name__)

# What each configured provider asks onnxruntime for, best first; CPU stays as the
# fallback for operators the accelerator lacks.
PROVIDERS: Final[dict[str, list[str]]] = {
    "cpu": ["CPUExecutionProvider"],
    "openvino": ["OpenVINOExecutionProvider", "CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
PROVIDER_PACKAGES: Final = {
    "openvino": "onnxruntime-openvino",
    "cuda": "onnxruntime-gpu",
    "tensorrt": "onnxruntime-gpu (with TensorRT)",
}
WINDOW: Final = 256  # frames in the rolling timing window


def model_path(cfg: DetectionConfig) -> Path:
    """The model file the config names; 'default' is the fetched, verified YOLO11n."""
    if cfg.model == "default":
        from agent import assets

        try:
            return assets.verify("model")
        except assets.AssetError as exc:
            raise ModelError(f"detection.model 'default': {exc}") from None
    path = Path(cfg.model).expanduser()
    if not path.is_file():
        raise ModelError(
            f"detection.model: {path} does not exist or is not a file; give the path of an "
            "ONNX model, or 'default' for the fetched YOLO11n"
        )
    return path


def _session(path: Path, cfg: DetectionConfig) -> Any:
    import onnxruntime as ort

    wanted = PROVIDERS[cfg.provider]
    available = ort.get_available_providers()
    if wanted[0] not in available:
        raise ModelError(
            f"detection.provider is {cfg.provider!r} but this onnxruntime offers only "
            f"{', '.join(available)}; install {PROVIDER_PACKAGES.get(cfg.provider, '')} "
            "in place of onnxruntime, or set detection.provider: cpu"
        )
    so = ort.SessionOptions()
    so.intra_op_num_threads = cfg.threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning threads burn CPU between frames: a paced camera loop gains nothing from it.
    spin = "1" if cfg.spinning else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", spin)
    so.add_session_config_entry("session.inter_op.allow_spinning", spin)
    so.log_severity_level = 3
    # docs/benchmarks.md, "Memory": the memory pattern pre-plans one block for every
    # activation of the graph and keeps it; without it the arena reuses its chunks for the
    # same runs at no measured speed cost.  Without the arena each run allocates afresh.
    so.enable_mem_pattern = cfg.memory == "fast"
    so.enable_cpu_mem_arena = cfg.memory != "lean"
    try:
        sess = ort.InferenceSession(str(path), sess_options=so, providers=wanted)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's error classes are not public
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"detection.model: {path} is not an ONNX model onnxruntime can load ({first[:300]})"
        ) from None
    if wanted[0] not in sess.get_providers():
        raise ModelError(
            f"detection.provider {cfg.provider!r}: onnxruntime could not start "
            f"{wanted[0]} for {path} (driver or libraries missing?) and fell back to "
            f"{', '.join(sess.get_providers())}; fix the runtime or set detection.provider: cpu"
        )
    return sess


def _shape(dims: list[Any]) -> list[int | str]:
    return [d if isinstance(d, int) else str(d) for d in dims]


def _input_hw(sess: Any, path: Path) -> tuple[str, tuple[int, int] | None]:
    """Input name and fixed (H, W), None when dynamic; ModelError for non-image inputs."""
    inputs = sess.get_inputs()
    outs = [f"{o.name} {_shape(o.shape)}" for o in sess.get_outputs()]
    desc = f"inputs {[f'{i.name} {_shape(i.shape)} {i.type}' for i in inputs]}, outputs {outs}"
    if len(inputs) != 1:
        raise ModelError(f"detection.model: {path} has {len(inputs)} inputs, expected 1; {desc}")
    inp = inputs[0]
    dims = inp.shape
    if len(dims) != 4 or dims[1] != 3 or inp.type != "tensor(float)":
        raise ModelError(
            f"detection.model: {path} input must be float32 [1, 3, H, W] (RGB image); {desc}"
        )
    h, w = dims[2], dims[3]
    if isinstance(h, int) and isinstance(w, int):
        return inp.name, (h, w)
    return inp.name, None


class Detector:
    """ONNX object detector configured once from :class:`DetectionConfig`.

    Call it with a BGR uint8 frame to get :class:`Detections` in frame pixels, filtered
    to ``cfg.classes`` and their thresholds.  Not thread-safe: one vision thread calls
    it (the input buffer is reused); :meth:`facts` may be called from any thread.
    """

    def __init__(self, cfg: DetectionConfig) -> None:
        self.cfg = cfg
        self.path = model_path(cfg)
        self._session = _session(self.path, cfg)
        self._input_name, fixed_hw = _input_hw(self._session, self.path)
        self._output_name = self._session.get_outputs()[0].name
        self.metadata: dict[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)
        self.dynamic = fixed_hw is None
        self.letterbox = Letterbox(fixed_hw, cfg.input_size, _stride(self.metadata))
        if fixed_hw is not None and cfg.input_size != max(fixed_hw):
            log.info(
                "detector: %s has a fixed %dx%d input; detection.input_size %d does not apply",
                self.path.name,
                *fixed_hw,
                cfg.input_size,
            )
        warm_hw = fixed_hw or (cfg.input_size, cfg.input_size)
        self.input_shape: tuple[int, int, int, int] = (1, 3, *warm_hw)
        out = self._warm_up(np.zeros(self.input_shape, dtype=np.float32))
        self.output_shape = tuple(int(d) for d in out.shape)
        hint = _names_hint(cfg, self.metadata)
        try:
            self.layout: Layout = select_layout(
                self.output_shape,
                forced=cfg.layout,
                metadata=self.metadata,
                num_names=len(hint) if hint is not None else None,
            )
        except ModelError as exc:
            raise ModelError(f"detection.model: {self.path}: {exc}") from None
        self.names: list[str] = _resolve_names(self.layout, self.output_shape, hint, self.path)
        self.thresholds = _thresholds(cfg, self.names)
        self._lock = threading.Lock()
        self._infer_ms: deque[float] = deque(maxlen=WINDOW)
        self._frame_ms: deque[float] = deque(maxlen=WINDOW)
        self._frames = 0
        log.info(
            "detector: %s, layout %s, %s input %s, %d classes (%d wanted), provider %s",
            self.path.name,
            self.layout,
            "dynamic" if self.dynamic else "fixed",
            "x".join(map(str, warm_hw)),
            len(self.names),
            int(np.isfinite(self.thresholds).sum()),
            self._session.get_providers()[0],
        )

    def _warm_up(self, tensor: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        try:
            out = self._run(tensor)
        except Exception as exc:  # noqa: BLE001 - onnxruntime's error classes are not public
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                f"detection.model: {self.path} failed its warm-up run on a "
                f"{list(tensor.shape)} input ({first[:300]})"
            ) from None
        if not isinstance(out, np.ndarray) or not np.issubdtype(out.dtype, np.floating):
            raise ModelError(f"detection.model: {self.path} output 0 is not a float tensor")
        return out

    def _run(self, tensor: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        out = self._session.run([self._output_name], {self._input_name: tensor})[0]
        return np.asarray(out, dtype=np.float32)

    def __call__(self, frame_bgr: npt.NDArray[np.uint8]) -> Detections:
        """Detections of one BGR frame, in its pixels."""
        t0 = time.perf_counter()
        frame = _as_bgr(frame_bgr)
        tensor, geo = self.letterbox(frame)
        self.input_shape = (1, 3, *geo.input_hw)
        t1 = time.perf_counter()
        out = self._run(tensor)
        t2 = time.perf_counter()
        dec: Decoded = decode(
            self.layout, out[0], self.thresholds, self.cfg.nms_iou, self.cfg.max_detections
        )
        dets = Detections(geo.to_frame(dec.xyxy), dec.scores, dec.class_ids)
        t3 = time.perf_counter()
        with self._lock:
            self._frames += 1
            self._infer_ms.append((t2 - t1) * 1000)
            self._frame_ms.append((t3 - t0) * 1000)
        return dets

    @property
    def session(self) -> Any:
        """The onnxruntime session (benchmarks run it directly on prepared tensors)."""
        return self._session

    def class_name(self, class_id: int) -> str:
        return self.names[class_id] if 0 <= class_id < len(self.names) else f"class{class_id}"

    def facts(self) -> dict[str, Any]:
        """JSON-able numbers for the heartbeat: model, layout, timings over a window."""
        with self._lock:
            infer, frame, frames = list(self._infer_ms), list(self._frame_ms), self._frames
        return {
            "model": self.path.name,
            "layout": self.layout,
            "provider": self.cfg.provider,
            "threads": self.cfg.threads,
            "input": [self.input_shape[2], self.input_shape[3]],
            "frames": frames,
            "infer_ms_p50": _pct(infer, 50),
            "infer_ms_p95": _pct(infer, 95),
            "frame_ms_p50": _pct(frame, 50),
            "frame_ms_p95": _pct(frame, 95),
        }


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def _stride(meta: Mapping[str, str]) -> int:
    try:
        stride = int(meta.get("stride", "32"))
    except ValueError:
        return 32
    return stride if 8 <= stride <= 128 else 32


def _names_hint(cfg: DetectionConfig, meta: Mapping[str, str]) -> list[str] | None:
    """A configured labels file wins over the model's own metadata."""
    if cfg.labels is not None:
        return read_labels_file(cfg.labels)
    return names_from_metadata(meta)


def _resolve_names(
    layout: Layout, shape: tuple[int, ...], hint: list[str] | None, path: Path
) -> list[str]:
    count = num_classes(layout, shape)
    if hint is None:
        if count is None:
            raise ModelError(
                f"detection.model: {path} is end-to-end {list(shape)} and names no classes in "
                "its metadata; give detection.labels (one class name per line)"
            )
        return default_names(count)
    return hint  # select_layout already checked that the count fits the output


def _thresholds(cfg: DetectionConfig, names: list[str]) -> npt.NDArray[np.float32]:
    """Per-class score threshold, ``inf`` for classes that are not wanted.

    Class names the technician wrote must exist in the model (a typo is an error); the
    default class list is a COCO list and is quietly narrowed to what the model knows.
    """
    known = set(names)
    explicit = "classes" in cfg.model_fields_set
    for field, wanted in (("classes", cfg.classes), ("class_thresholds", cfg.class_thresholds)):
        if field == "classes" and not explicit:
            continue
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise ModelError(
                f"detection.{field}: {', '.join(map(repr, unknown))} not classes of this model; "
                f"it knows {', '.join(names[:12])}{', ...' if len(names) > 12 else ''}"
            )
    wanted_names = [n for n in cfg.classes if n in known]
    if not wanted_names:
        raise ModelError(
            f"detection.classes: none of {cfg.classes} is a class of this model; it knows "
            f"{', '.join(names[:12])}{', ...' if len(names) > 12 else ''}"
        )
    thr = np.full(len(names), np.inf, dtype=np.float32)
    for i, name in enumerate(names):
        if name in wanted_names:
            thr[i] = cfg.class_thresholds.get(name, cfg.confidence)
    return thr


def _as_bgr(frame: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.size == 0:
        got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame)
        raise ValueError(f"detector: expected a BGR uint8 image (H, W, 3), got {got}")
    if frame.ndim == 2:
        return np.asarray(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR), dtype=np.uint8)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    raise ValueError(f"detector: expected a BGR uint8 image (H, W, 3), got {frame.shape}")
