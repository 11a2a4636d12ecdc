"""`pole-agent model quantize IN OUT`: an INT8 copy of a detection model, judged before use.

Prints what stayed float, the agreement with the FP32 model on held-out frames and the
speed-up of ``session.run``; refuses (exit 2, nothing written) below the F1 floor.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, get_args

if TYPE_CHECKING:
    from agent.model.options import Options

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from agent.config import DetectionConfig
    from agent.model.options import DEFAULT_FLOOR, Method, Options

    defaults = Options()
    model = sub.add_parser("model", help="prepare detection models (INT8 quantization)")
    msub = model.add_subparsers(dest="model_cmd", required=True, metavar="ACTION")
    p = msub.add_parser(
        "quantize",
        help="static INT8 quantization calibrated on real frames, checked against FP32",
        description="Quantize an ONNX detection model to INT8 (QDQ, per-channel weights), "
        "calibrated on frames of a video or an image folder letterboxed as the detector does. "
        "The decode and NMS after the detection head stay float. The result is compared with "
        "the FP32 model on held-out frames (the second half of the footage; calibration uses "
        "the first): precision, recall, F1 of boxes matched by class at IoU >= 0.5, and the "
        "session.run speed-up. OUT is written only when F1 reaches --floor. Needs the optional "
        "'onnx' package: pip install '.[quantize]'.",
    )
    p.add_argument("model_in", metavar="IN.onnx", help="FP32 ONNX detection model")
    p.add_argument("model_out", metavar="OUT.onnx", help="where to write the INT8 model")
    p.add_argument(
        "--calibrate",
        metavar="VIDEO_OR_DIR",
        help="footage to calibrate on and judge with: a video or a folder of images "
        "(default: the sample video; best: recordings of the pole's own camera)",
    )
    p.add_argument(
        "--frames",
        type=int,
        default=defaults.frames,
        metavar="N",
        help=f"calibration frames, from the first half ({defaults.frames})",
    )
    p.add_argument(
        "--holdout",
        type=int,
        default=defaults.holdout,
        metavar="N",
        help=f"held-out frames to judge on, from the second half ({defaults.holdout})",
    )
    p.add_argument(
        "--floor",
        type=float,
        default=DEFAULT_FLOOR,
        metavar="F1",
        help=f"refuse to write OUT below this agreement F1 ({DEFAULT_FLOOR})",
    )
    p.add_argument(
        "--conf",
        type=float,
        metavar="C",
        help="score threshold for the agreement (default: the config's detection.confidence, "
        f"{DetectionConfig().confidence})",
    )
    p.add_argument(
        "--imgsz",
        type=int,
        default=defaults.imgsz,
        metavar="PX",
        help="input size to calibrate a dynamic-input model at; set detection.input_size to "
        f"the same ({defaults.imgsz}; fixed-input models use their own)",
    )
    p.add_argument(
        "--method",
        choices=get_args(Method),
        default=defaults.method,
        help=f"calibration method ({defaults.method}: measured best, docs/detection.md)",
    )
    p.add_argument(
        "--float-head",
        action=argparse.BooleanOptionalAction,
        default=defaults.float_head,
        help="also keep the detection head's last convs float (slower, for models that "
        "lose agreement there)",
    )
    p.add_argument("--config", metavar="FILE", help="site file; its detection section is used")
    p.set_defaults(func=_cmd_quantize)


def _user_error(message: str) -> Exception:
    from agent.errors import UserError

    return UserError(message)


def _options(args: argparse.Namespace) -> tuple[Path, Path, Path, Options]:
    from agent.detect.cli import detection_config
    from agent.model.quantize import Options

    src, dst = Path(args.model_in).expanduser(), Path(args.model_out).expanduser()
    if not src.is_file():
        raise _user_error(f"IN: {src} does not exist or is not a file")
    if dst.resolve() == src.resolve():
        raise _user_error(f"OUT: {dst} is IN itself; give another file for the INT8 model")
    if not 0 < args.floor <= 1:
        raise _user_error(f"--floor must be in (0, 1], got {args.floor}")
    if args.conf is not None and not 0 < args.conf < 1:
        raise _user_error(f"--conf must be in (0, 1), got {args.conf}")
    if args.imgsz < 64 or args.imgsz % 32:
        raise _user_error(f"--imgsz must be a multiple of 32 of at least 64, got {args.imgsz}")
    cfg = detection_config(args.config, None)
    if args.conf is not None:
        cfg = type(cfg).model_validate(
            {**cfg.model_dump(exclude_unset=True), "confidence": args.conf}
        )
    if args.calibrate is None:
        from agent import assets

        source = assets.verify("video")
    else:
        source = Path(args.calibrate).expanduser()
    options = Options(
        frames=args.frames,
        holdout=args.holdout,
        method=args.method,
        float_head=args.float_head,
        imgsz=args.imgsz,
        floor=args.floor,
        detection=cfg,
    )
    return src, dst, source, options


def _cmd_quantize(args: argparse.Namespace) -> int:
    from agent.model.errors import BelowFloorError, QuantizeError
    from agent.model.quantize import quantize, require_onnx

    try:
        require_onnx()  # before anything slow: say it at once
        src, dst, source, options = _options(args)
        report = quantize(src, dst, source, options)
    except BelowFloorError as exc:
        for line in exc.details:
            print(line)
        raise _user_error(str(exc)) from None
    except QuantizeError as exc:
        raise _user_error(str(exc)) from None
    for line in report.lines():
        print(line)
    print(f"wrote {dst} (F1 {report.agreement.f1:.3f} >= floor {options.floor:g})", file=sys.stderr)
    return 0
