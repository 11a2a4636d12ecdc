"""Colour accuracy on the labelled crops of the sample video, against a naive HSV baseline.

Labels in ``labels.json`` (given by looking at each crop); the figures are recorded in
docs/benchmarks.md ("Appearance"), with ``python bench/appearance.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.lookout.labelled import Crop, evaluate, load_crops, naive, ours


@pytest.fixture(scope="module")
def crops() -> list[Crop]:
    return load_crops()


def shadowed(crops: list[Crop]) -> list[Crop]:
    """The same crops at half the light (a cloud, an overhang, dusk)."""
    return [
        Crop(c.frame, c.box, c.upper, c.lower, (c.image.astype(np.float32) * 0.5).astype(np.uint8))
        for c in crops
    ]


def test_labelled_set_is_big_and_varied(crops: list[Crop]) -> None:
    assert len(crops) >= 40
    assert {c.upper[0] for c in crops} >= {"black", "red", "blue"}


def test_judge_beats_the_naive_baseline(crops: list[Crop]) -> None:
    mine, base = evaluate(crops, ours), evaluate(crops, naive)
    assert mine["upper_top1"] >= 0.85
    assert mine["lower_top1"] >= 0.85
    assert mine["upper_top2"] >= 0.95
    assert mine["upper_top1"] + mine["lower_top1"] > base["upper_top1"] + base["lower_top1"]
    assert mine["mAP"] > base["mAP"]


def test_judge_beats_the_baseline_in_shadow(crops: list[Crop]) -> None:
    dark = shadowed(crops)
    mine, base = evaluate(dark, ours), evaluate(dark, naive)
    assert mine["lower_top2"] > base["lower_top2"] + 0.1
    assert mine["mAP"] > base["mAP"] + 0.05
