"""The lookout score: exact values of the weighted, confusion-tolerant slot match."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError

from agent.control.lookout import LookoutArgs
from agent.lookout.index import Slots
from agent.lookout.match import (
    CONFUSION,
    TYPE_CONFUSION,
    VEHICLE_WEIGHTS,
    WEIGHTS,
    lookout_score,
    match,
)
from agent.lookout.record import AppearanceRecord


def rec(
    upper: tuple[tuple[str, float], ...] = (("red", 0.6), ("black", 0.2)),
    lower: tuple[tuple[str, float], ...] = (("blue", 0.7),),
    size: str = "child",
    items: tuple[str, ...] = ("backpack",),
    riding: str | None = None,
) -> AppearanceRecord:
    return AppearanceRecord(
        camera="cam1", track=7, cls="person", first_ms=1, last_ms=2, upper=upper, lower=lower,
        items=items, riding=riding, size=size,  # type: ignore[arg-type]
        height_ratio=0.7, heading="left", speed=0.1, frames=5, histogram=bytes(128),
        thumbnail=None,
    )  # fmt: skip


def test_all_slots_exact_is_one() -> None:
    slots = Slots(upper=("red",), lower=("blue",), size="child", items=("backpack",))
    found = match(slots, rec())
    assert found.score == 1.0
    assert {k: (s.m, s.how) for k, s in found.slots.items()} == {
        "upper": (1.0, "red"),
        "lower": (1.0, "blue"),
        "size": (1.0, "child"),
        "items": (1.0, "1/1"),
    }


def test_navy_asked_black_seen_is_tolerated() -> None:
    found = match(Slots(upper=("navy",)), rec(upper=(("black", 0.8), ("blue", 0.2))))
    assert found.score == 0.9  # navy~black 0.9 beats blue 2nd (1.0 x 0.2/0.8 = 0.25)
    assert found.slots["upper"].how == "navy~black"


def test_second_colour_counts_by_its_share() -> None:
    found = match(Slots(upper=("black",)), rec(upper=(("red", 0.6), ("black", 0.3))))
    assert found.slots["upper"].m == 0.5
    assert found.slots["upper"].how == "black 2nd"


def test_weighted_mean_over_asked_slots_only() -> None:
    # upper red 1.0 (0.35), lower asked white seen blue: 0 (0.30), size unknown 0.5 (0.10)
    found = match(Slots(upper=("red",), lower=("white",), size="child"), rec(size="unknown"))
    assert found.score == round((0.35 * 1.0 + 0.30 * 0.0 + 0.10 * 0.5) / 0.75, 3) == 0.533


def test_items_and_riding() -> None:
    found = match(Slots(items=("backpack", "umbrella"), riding="bicycle"), rec())
    assert found.slots["items"].m == 0.5
    assert found.slots["items"].how == "1/2"
    assert found.slots["riding"].m == 0.0
    assert found.score == round(0.15 * 0.5 / 0.25, 3) == 0.3


def test_white_with_grey_and_unjudged() -> None:
    assert match(Slots(lower=("white",)), rec(lower=(("grey", 0.9),))).score == 0.7
    assert match(Slots(lower=("white",)), rec(lower=())).slots["lower"].how == "not judged"


def test_adapter_for_the_index() -> None:
    assert lookout_score(Slots(upper=("red",)), rec()) == (1.0, {"upper": 1.0})


def test_the_table_is_complete() -> None:
    for asked, row in CONFUSION.items():
        assert max(row.values()) <= 1.0, asked
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"id": "x"}, "at least one slot"),
        ({"id": "x", "upper": ["rot"]}, "upper.0"),
        ({"id": "x", "upper": ["red"], "vehicle_type": "car"}, "need cls 'vehicle'"),
        ({"id": "x", "hist": "AAAA"}, "hist: 3 bytes"),
        ({"id": "x", "hist": "!!", "upper": []}, "hist: not base64"),
        ({"id": "x y", "upper": ["red"]}, "id"),
        ({"id": "x", "upper": ["red"], "since_s": -1}, "since_s"),
    ],
)
def test_bad_args_name_the_field(args: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        LookoutArgs.model_validate(args)


def vehicle(colour: str = "white", vtype: str | None = "truck") -> AppearanceRecord:
    return replace(
        rec(upper=((colour, 0.7), ("grey", 0.2)), lower=(), size="unknown", items=()),
        cls="vehicle",
        vtype=vtype,
    )


def test_vehicle_colour_and_type_weighted() -> None:
    args = LookoutArgs(id="V", cls="vehicle", vehicle_colour=["white"], vehicle_type="truck")
    found = match(args.slots(), vehicle())
    assert found.score == 1.0
    assert {k: (s.m, s.how) for k, s in found.slots.items()} == {
        "vehicle_colour": (1.0, "white"),
        "vehicle_type": (1.0, "truck"),
    }
    # a van seen as a car: the type half counts; silver asked, white seen: 0.8
    args = LookoutArgs(id="V", cls="vehicle", vehicle_colour=["silver"], vehicle_type="truck")
    found = match(args.slots(), vehicle(vtype="car"))
    assert found.slots["vehicle_type"].how == "truck~car"
    assert found.score == pytest.approx(
        VEHICLE_WEIGHTS["vehicle_colour"] * 0.8 + VEHICLE_WEIGHTS["vehicle_type"] * 0.5
    )
    # only the colour asked: the type does not count
    only = LookoutArgs(id="V", cls="vehicle", vehicle_colour=["red"])
    assert match(only.slots(), vehicle()).slots.keys() == {"vehicle_colour"}
    assert match(only.slots(), vehicle()).score == 0.0


def test_vehicle_weights_and_types_are_complete() -> None:
    assert sum(VEHICLE_WEIGHTS.values()) == pytest.approx(1.0)
    vtypes = LookoutArgs.model_fields["vehicle_type"].annotation
    assert set(TYPE_CONFUSION) == set(vtypes.__args__[0].__args__)  # type: ignore[union-attr]
