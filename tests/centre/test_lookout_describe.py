"""Descriptions into slots: Korean and English, and nothing dropped silently."""

from __future__ import annotations

import argparse
import base64

import pytest

from agent.centre.lookout.cli import build_args, parse_duration
from agent.centre.lookout.describe import describe
from agent.errors import UserError


def test_the_issue_s_korean_example() -> None:
    got = describe("빨간 상의에 청바지, 초등학생, 노란 가방")
    assert got.slots == {
        "upper": ["red"],
        "lower": ["blue"],
        "size": "child",
        "items": ["backpack"],
    }
    assert got.unknown == []
    assert got.notes == ["yellow (가방): items have no colour slot"]  # said, not dropped


def test_korean_colour_words_and_particles() -> None:
    got = describe("남색 점퍼를 입은 어린이, 곤색 바지, 우산")
    assert got.slots == {
        "upper": ["navy"],
        "size": "child",
        "lower": ["navy"],
        "items": ["umbrella"],
    }
    got = describe("상의는 하늘색, 베이지 치마 여자아이")
    assert got.slots == {"upper": ["skyblue"], "lower": ["beige"], "size": "child"}


def test_english() -> None:
    got = describe("A boy in a red jacket and light blue jeans with a backpack")
    assert got.slots == {
        "size": "child",
        "upper": ["red"],
        "lower": ["skyblue"],
        "items": ["backpack"],
    }
    assert got.unknown == []
    got = describe("adult, grey coat, black trousers, riding a bicycle")
    assert got.slots == {
        "size": "adult",
        "upper": ["grey"],
        "lower": ["black"],
        "riding": "bicycle",
    }


def test_unknown_words_are_listed() -> None:
    got = describe("green hoodie, 안경, sunglasses, 분홍 모자")
    assert got.slots == {"upper": ["green"]}
    assert got.unknown == ["안경", "sunglasses"]
    assert "pink (모자): no slot for headwear or shoes" in got.notes


def test_vehicle_words() -> None:
    got = describe("흰색 트럭")
    assert got.slots == {"cls": "vehicle", "vehicle_type": "truck", "vehicle_colour": ["white"]}
    got = describe("은색 승용차")
    assert got.slots == {"cls": "vehicle", "vehicle_type": "car", "vehicle_colour": ["silver"]}


def _ns(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = {
        "describe": None, "upper": None, "lower": None, "vehicle_colour": None, "item": None,
        "size": None, "riding": None, "vehicle_type": None, "similar": None, "since": "2h",
        "for_": "6h", "min_score": 0.5, "max_candidates": 20,
    }  # fmt: skip
    return argparse.Namespace(**(base | kw))


def test_flags_override_the_description() -> None:
    spec, unknown, _ = build_args(_ns(describe="빨간 상의, 아이, 뭔가", upper=["navy,black"]), "L1")
    assert spec.upper == ["navy", "black"]
    assert spec.size == "child"
    assert spec.since_s == 7200.0
    assert spec.for_s == 21600.0
    assert unknown == ["뭔가"]


def test_find_similar_names_the_class_it_compares() -> None:
    hist = base64.b64encode(bytes(range(128))).decode()
    person, _, _ = build_args(_ns(similar=hist), "S1")
    assert (person.cls, person.histogram()) == ("person", bytes(range(128)))
    vehicle, _, _ = build_args(_ns(similar=hist, similar_class="vehicle"), "S2")
    assert vehicle.cls == "vehicle"
    with pytest.raises(UserError, match="--similar"):
        build_args(_ns(similar=hist, upper=["red"]), "S3")  # slots or a histogram, not both


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"upper": ["rot"]}, "upper.0"),
        ({"since": "soon"}, "--since"),
        ({"upper": ["red"], "min_score": 2.0}, "--min-score"),
        ({}, "at least one slot"),
    ],
)
def test_bad_flags_name_the_flag(kw: dict[str, object], field: str) -> None:
    with pytest.raises(UserError, match=field):
        build_args(_ns(**kw), "L1")


def test_durations() -> None:
    assert parse_duration("1h30m", "--for") == 5400.0
    assert parse_duration("45", "--for") == 45.0
    assert parse_duration("1d", "--for") == 86400.0
