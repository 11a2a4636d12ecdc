"""`pole-agent appearance IMAGE --box x1,y1,x2,y2 [...]`: judge person boxes in one image.

For operators who ask why a person did or did not match a lookout, and for tests: per box,
in the order given, the upper and lower colours best first with their shares.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agent.errors import UserError

__all__ = ["parse_box", "register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "appearance",
        help="judge the upper and lower colours of person boxes in an image",
        description="Judge the person boxes given in one image: upper and lower garment "
        "colours (the 11 basic names) best first with their shares, per box in the order "
        "given. A box shorter than 48 px or narrower than 16 px is not judged.",
    )
    p.add_argument("image", metavar="IMAGE", help="an image file (jpg, png, ...)")
    p.add_argument(
        "--box",
        action="append",
        required=True,
        metavar="x1,y1,x2,y2",
        help="a person box in image pixels; repeat for more boxes",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line and box")
    p.set_defaults(func=_cmd_appearance)


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``x1,y1,x2,y2`` with x1 < x2 and y1 < y2; UserError naming ``--box`` otherwise."""
    parts = text.split(",")
    try:
        x1, y1, x2, y2 = (float(v) for v in parts)
    except ValueError:
        raise UserError(
            f"--box {text!r}: expected four numbers x1,y1,x2,y2 (image pixels), "
            f"got {len(parts)} part(s)"
        ) from None
    if not (x1 < x2 and y1 < y2) or min(x1, y1) < 0:
        raise UserError(f"--box {text!r}: expected 0 <= x1 < x2 and 0 <= y1 < y2")
    return x1, y1, x2, y2


def _cmd_appearance(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from agent.lookout.colour import MIN_HEIGHT, MIN_WIDTH, judge

    boxes = [parse_box(b) for b in args.box]
    path = Path(args.image).expanduser()
    if not path.is_file():
        raise UserError(f"IMAGE: {path} does not exist or is not a file")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"IMAGE: {path} is not an image OpenCV can read")
    frame = np.asarray(image, np.uint8)
    h, w = frame.shape[:2]
    for box in boxes:
        if box[2] > w or box[3] > h:
            raise UserError(f"--box {','.join(f'{v:g}' for v in box)}: outside the {w}x{h} image")
    for box in boxes:
        j = judge(frame, box)
        upper, lower = j.top() if j is not None else ([], [])
        why = None if j is not None else f"smaller than {MIN_WIDTH}x{MIN_HEIGHT} px"
        print(_json(box, upper, lower, why) if args.json else _line(box, upper, lower, why))
    return 0


Colours = list[tuple[str, float]]


def _json(box: tuple[float, ...], upper: Colours, lower: Colours, why: str | None) -> str:
    out: dict[str, object] = {
        "box": [int(v) if v.is_integer() else v for v in box],
        "upper": [list(c) for c in upper],
        "lower": [list(c) for c in lower],
        "judged": why is None,
    }
    if why is not None:
        out["why"] = why
    return json.dumps(out)


def _line(box: tuple[float, ...], upper: Colours, lower: Colours, why: str | None) -> str:
    where = ",".join(f"{v:g}" for v in box)
    if why is not None:
        return f"{where}: not judged ({why})"
    up = ", ".join(f"{n} {p:.2f}" for n, p in upper)
    lo = ", ".join(f"{n} {p:.2f}" for n, p in lower)
    return f"{where}: upper {up}; lower {lo}"
