"""`pole-agent lookout scan`: the pole's detector, tracker, recorder and matcher over the
real sample video, for a person and for a vehicle lookout."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from agent import assets
from agent.centre.lookout.scan import scan
from agent.control.lookout import LookoutArgs

pytestmark = pytest.mark.slow  # each scans a whole real video with the real model


def test_a_vehicle_lookout_finds_the_parked_van_and_car(tmp_path: Path) -> None:
    video = assets.verify("video")
    van = scan(
        video,
        LookoutArgs(id="V1", cls="vehicle", vehicle_colour=["white"], vehicle_type="truck"),
        tmp_path / "van",
        fps=1,
    )
    assert van.frames >= 70
    best, thumb = van.candidates[0]
    assert best.seen["type"] in ("truck", "car")
    assert best.seen["colour"][0][0] == "white"
    assert best.m["vehicle_colour"].how == "white"
    assert best.sc >= 0.8
    assert thumb is not None
    image = cv2.imread(str(thumb))
    assert image is not None
    assert image.shape[1] <= 192
    assert image.shape[0] <= 96
    car = scan(
        video,
        LookoutArgs(id="V2", cls="vehicle", vehicle_colour=["skyblue"], vehicle_type="car"),
        tmp_path / "car",
        fps=1,
    )
    top = car.candidates[0][0]
    assert top.seen["colour"][0][0] == "blue"
    assert top.m["vehicle_type"].how == "car"
    assert (top.cam, top.tid) != (best.cam, best.tid)
    assert "vehicle_colour skyblue~blue" in car.table.read_text()


def test_a_person_lookout_ranks_red_tops_first(tmp_path: Path) -> None:
    got = scan(
        assets.verify("video"),
        LookoutArgs(id="P1", upper=["red"], min_score=0.3),
        tmp_path / "p",
        fps=1,
    )
    assert got.candidates
    assert all(e.m.keys() == {"upper"} for e, _ in got.candidates)
    assert "type" not in got.candidates[0][0].seen
    assert got.candidates[0][0].seen["upper"][0][0] == "red"


def test_black_and_white_footage_claims_no_colour(tmp_path: Path) -> None:
    """The 1906 Market Street film: people in dark coats are found, and no record of it
    claims a colour the footage cannot show (only black, grey and white)."""
    got = scan(
        assets.verify("street"),
        LookoutArgs(id="G1", upper=["black"], min_score=0.0, max_candidates=200),
        tmp_path / "g",
        fps=2,
    )
    assert got.records >= 10
    assert len(got.candidates) >= 10
    seen = {
        name
        for e, _ in got.candidates
        for garment in ("upper", "lower")
        for name, _share in e.seen[garment]
    }
    assert seen <= {"black", "grey", "white"}, seen
    assert got.candidates[0][0].seen["upper"][0][0] == "black"
