"""The colour judge: what colour a person's upper and lower garments are, from one crop.

Each pixel of two body bands (upper: 18-48 % of the box height, lower: 55-85 %, both over
the central half of the width, where the garment is and the background is least) gets a
soft vote over the 11 basic colour names; a band's votes are summed into a distribution,
of which the top two names are kept with their shares.

The table (CIE Lab from OpenCV's 8-bit conversion: L* 0..100, chroma C* = |a*, b*|; hue
from HSV in degrees):

=============  ===================================================================
chromatic       ``w = clip((C* - 7) / 9, 0, 1)``: below C* 7 a pixel is achromatic, above
                16 fully chromatic (shadow lowers L* much more than it moves hue, and
                chroma, unlike HSV saturation, does not explode in dark pixels)
achromatic      ``1 - w`` split by L*: black below 22, grey 38-70, white above 82, linear
                ramps between (black/grey 22-38, grey/white 70-82)
hue names       red < 15 or >= 340 deg; orange 15-40; yellow 40-70; green 70-165;
                blue 165-255; purple 255-290; pink 290-340
brown           red/orange/yellow hue with L* below 45 (orange and red turn brown)
pink            red hue with L* above 70 and C* below 40 (a pale red)
dark colour     chromatic pixels darker than L* 35 give part of their vote to black,
                up to 60 % at L* 12 and below: navy and dark jeans score both blue and
                black, and the judge reports both rather than guessing
=============  ===================================================================

Grey-scale footage has C* about 0 everywhere, so it can only ever score black, grey and
white.  A box shorter than :data:`MIN_HEIGHT` px or narrower than :data:`MIN_WIDTH` is not
judged (None): its bands are a handful of pixels.

A vehicle (:func:`judge_vehicle`) has one colour, its paint: the same per-pixel votes over
one band, 45-85 % of the box height (below the windows, above the wheels' shadow) across
the central 80 % of the width.  A vehicle box smaller than :data:`VEHICLE_MIN` (24 x 24 px)
is not judged.  Glass and shadow vote black and grey; a painted body outvotes them, and a
black or grey car still reads black or grey.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

__all__ = [
    "COLOURS",
    "HIST_BINS",
    "MIN_HEIGHT",
    "MIN_WIDTH",
    "Judgement",
    "band_pixels",
    "histogram",
    "judge",
    "judge_vehicle",
    "pixel_votes",
    "similarity",
    "top_two",
]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

COLOURS: Final = (
    "black",
    "white",
    "grey",
    "red",
    "orange",
    "yellow",
    "green",
    "blue",
    "purple",
    "pink",
    "brown",
)
_I = {name: i for i, name in enumerate(COLOURS)}
MIN_HEIGHT: Final = 48  # px: smaller boxes are not judged
MIN_WIDTH: Final = 16
UPPER: Final = (0.18, 0.48)
LOWER: Final = (0.55, 0.85)
BAND_SAMPLE: Final = (24, 32)  # at most this many columns x rows per band (nearest pixel)
MIN_SHARE: Final = 0.08  # a second colour below this share is not reported
PERSON_COLS: Final = (0.25, 0.75)
VEHICLE_BODY: Final = (0.45, 0.85)
VEHICLE_COLS: Final = (0.10, 0.90)
VEHICLE_MIN: Final = (24, 24)  # px, width x height: smaller vehicle boxes are not judged

C_ACHROMATIC, C_CHROMATIC = 4.0, 11.0
L_BLACK, L_GREY, L_GREY_TOP, L_WHITE = 22.0, 38.0, 70.0, 82.0
L_DARK, L_DARKEST, DARK_TO_BLACK = 30.0, 8.0, 0.6
L_BROWN, C_BROWN_RED, L_PINK, C_PINK = 45.0, 25.0, 60.0, 40.0
# Hue boundaries (degrees) and the name of the range that ends there.
HUES: Final = ((15, "red"), (40, "orange"), (70, "yellow"), (165, "green"), (255, "blue"),
               (300, "purple"), (340, "pink"), (361, "red"))  # fmt: skip

# The histogram for "find similar": per band 8 hue x 2 saturation x 4 value bins.
H_BINS, S_BINS, V_BINS = 8, 2, 4
HIST_BINS: Final = 2 * H_BINS * S_BINS * V_BINS


@dataclass(frozen=True)
class Judgement:
    """One crop: colour distributions (over :data:`COLOURS`) and the histogram."""

    upper: F32
    lower: F32
    histogram: U8

    def top(self) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        return top_two(self.upper), top_two(self.lower)


def _ramp(x: F32, lo: float, hi: float) -> F32:
    """0 at or below ``lo``, 1 at or above ``hi``, linear between."""
    return np.asarray(np.clip((x - lo) / (hi - lo), 0.0, 1.0), np.float32)


def _hue_index(hue: F32, light: F32, chroma: F32) -> npt.NDArray[np.intp]:
    bounds = np.array([b for b, _ in HUES], np.float32)
    names = np.array([_I[n] for _, n in HUES], np.intp)
    idx = names[np.searchsorted(bounds, hue, side="right")]
    red, pink = idx == _I["red"], idx == _I["pink"]
    dull_red = red & (chroma < C_BROWN_RED)
    warm = dull_red | (idx == _I["orange"]) | (idx == _I["yellow"])
    idx = np.where(warm & (light < L_BROWN), _I["brown"], idx)
    idx = np.where(pink & (light < L_PINK), _I["red"], idx)  # a dark pink is a red
    pale_red = red & (light > L_PINK + 10) & (chroma < C_PINK)
    return np.where(pale_red, _I["pink"], idx)


def pixel_votes(bgr: U8) -> F32:
    """(N, 11) soft votes of N BGR pixels (an (N, 3) or (N, 1, 3) uint8 array)."""
    px = bgr.reshape(-1, 1, 3)
    lab = cv2.cvtColor(px, cv2.COLOR_BGR2LAB).reshape(-1, 3).astype(np.float32)
    hsv = cv2.cvtColor(px, cv2.COLOR_BGR2HSV_FULL).reshape(-1, 3).astype(np.float32)
    light = lab[:, 0] * (100.0 / 255.0)
    a, b = lab[:, 1] - 128.0, lab[:, 2] - 128.0
    chroma = np.hypot(a, b)
    hue = hsv[:, 0] * (360.0 / 256.0)
    n = len(light)
    votes = np.zeros((n, len(COLOURS)), np.float32)
    rows = np.arange(n)
    chromatic = _ramp(chroma, C_ACHROMATIC, C_CHROMATIC)
    grey_or_white = _ramp(light, L_BLACK, L_GREY)
    white = _ramp(light, L_GREY_TOP, L_WHITE)
    achromatic = 1.0 - chromatic
    votes[:, _I["black"]] = achromatic * (1.0 - grey_or_white)
    votes[:, _I["grey"]] = achromatic * grey_or_white * (1.0 - white)
    votes[:, _I["white"]] = achromatic * grey_or_white * white
    idx = _hue_index(hue, light, chroma)
    dark = DARK_TO_BLACK * _ramp(L_DARK - light, 0.0, L_DARK - L_DARKEST)
    votes[rows, idx] += chromatic * (1.0 - dark)
    votes[:, _I["black"]] += chromatic * dark
    return votes


def _clip_box(box: tuple[float, float, float, float], w: int, h: int) -> tuple[int, ...]:
    x1, y1, x2, y2 = (round(v) for v in box)
    return max(0, x1), max(0, y1), min(w, x2), min(h, y2)


def band_pixels(
    frame: U8,
    box: tuple[float, float, float, float],
    band: tuple[float, float],
    cols: tuple[float, float] = PERSON_COLS,
    least: tuple[int, int] = (MIN_WIDTH, MIN_HEIGHT),
) -> U8 | None:
    """The sampled BGR pixels of one band (rows ``band``, columns ``cols``, as fractions of
    the box) of a box, (rows, cols, 3); None when the box is smaller than ``least``
    (width, height) px."""
    x1, y1, x2, y2 = _clip_box(box, frame.shape[1], frame.shape[0])
    bh, bw = box[3] - box[1], box[2] - box[0]
    if bh < least[1] or bw < least[0]:
        return None
    top, bottom = round(box[1] + band[0] * bh), round(box[1] + band[1] * bh)
    left, right = round(box[0] + cols[0] * bw), round(box[0] + cols[1] * bw)
    top, bottom = max(top, y1), min(bottom, y2)
    left, right = max(left, x1), min(right, x2)
    if bottom - top < 4 or right - left < 4:  # truncated at the frame border
        return None
    rows = np.linspace(top, bottom - 1, min(BAND_SAMPLE[1], bottom - top)).astype(np.intp)
    xs = np.linspace(left, right - 1, min(BAND_SAMPLE[0], right - left)).astype(np.intp)
    return np.asarray(frame[np.ix_(rows, xs)], np.uint8)


def _distribution(pixels: U8) -> F32:
    votes = pixel_votes(pixels).sum(axis=0)
    return np.asarray(votes / max(float(votes.sum()), 1e-6), np.float32)


def _band_hist(pixels: U8) -> F32:
    hsv = cv2.cvtColor(pixels, cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, [H_BINS, S_BINS, V_BINS], [0, 180, 0, 256, 0, 256])
    return np.asarray(hist.ravel() / max(float(hist.sum()), 1.0), np.float32)


def histogram(upper: U8, lower: U8) -> U8:
    """:data:`HIST_BINS` uint8: per band an L1-normalised HSV histogram, stored as
    ``round(255 * sqrt(p / 2))`` so that :func:`similarity` is the Bhattacharyya coefficient."""
    p = np.concatenate([_band_hist(upper), _band_hist(lower)]) / 2.0
    return np.asarray(np.round(255.0 * np.sqrt(p)), np.uint8)


def similarity(a: U8, b: U8) -> float:
    """Bhattacharyya coefficient of two :func:`histogram` values: 1 same, 0 disjoint."""
    fa, fb = a.astype(np.float32), b.astype(np.float32)
    norm = float(np.linalg.norm(fa) * np.linalg.norm(fb))
    return float(fa @ fb) / norm if norm > 0 else 0.0


def top_two(dist: F32) -> list[tuple[str, float]]:
    """The best two colour names of a distribution with their shares (2 decimals), best
    first; the second only when it has at least :data:`MIN_SHARE`."""
    order = np.argsort(-dist, kind="stable")[:2]
    out = [(COLOURS[int(order[0])], round(float(dist[order[0]]), 2))]
    if float(dist[order[1]]) >= MIN_SHARE:
        out.append((COLOURS[int(order[1])], round(float(dist[order[1]]), 2)))
    return out


def judge(frame: U8, box: tuple[float, float, float, float]) -> Judgement | None:
    """Judge the person in ``box`` (x1, y1, x2, y2, frame pixels) of a BGR frame.

    None when the box is smaller than :data:`MIN_HEIGHT` x :data:`MIN_WIDTH` px or a band
    lies outside the frame.
    """
    upper = band_pixels(frame, box, UPPER)
    lower = band_pixels(frame, box, LOWER)
    if upper is None or lower is None:
        return None
    return Judgement(_distribution(upper), _distribution(lower), histogram(upper, lower))


def judge_vehicle(frame: U8, box: tuple[float, float, float, float]) -> Judgement | None:
    """Judge the vehicle in ``box``: its body colour in ``upper`` (``lower`` all zero), and
    a histogram of the body band's top and bottom halves (same length as a person's, so
    "find similar" compares like with like).  None when smaller than :data:`VEHICLE_MIN`."""
    body = band_pixels(frame, box, VEHICLE_BODY, VEHICLE_COLS, VEHICLE_MIN)
    if body is None:
        return None
    half = max(1, body.shape[0] // 2)
    return Judgement(
        _distribution(body),
        np.zeros(len(COLOURS), np.float32),
        histogram(body[:half], body[half:] if body.shape[0] > half else body[:half]),
    )
