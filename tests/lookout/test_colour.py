"""The colour judge on painted crops: names, dark colours, grey-scale footage, small boxes."""

from __future__ import annotations

import numpy as np

from agent.lookout.colour import COLOURS, judge, similarity

BOX = (40.0, 20.0, 100.0, 220.0)  # 60 x 200 px


def person(upper_bgr: tuple[int, int, int], lower_bgr: tuple[int, int, int]) -> np.ndarray:
    frame = np.full((240, 160, 3), 128, np.uint8)
    frame[20:130, 40:100] = upper_bgr
    frame[130:220, 40:100] = lower_bgr
    return frame


def names(top: list[tuple[str, float]]) -> list[str]:
    return [n for n, _ in top]


def test_bright_colours_are_named() -> None:
    upper, lower = judge(person((30, 30, 200), (160, 90, 40)), BOX).top()  # type: ignore[union-attr]
    assert names(upper)[0] == "red"
    assert names(lower)[0] == "blue"


def test_navy_reports_blue_and_black() -> None:
    j = judge(person((70, 25, 20), (20, 20, 20)), BOX)
    assert j is not None
    upper, lower = j.top()
    assert set(names(upper)) == {"blue", "black"}
    assert names(lower) == ["black"]


def test_grey_scale_claims_no_colour() -> None:
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (240, 160, 1), dtype=np.uint8).repeat(3, axis=2)
    j = judge(grey, BOX)
    assert j is not None
    chromatic = [COLOURS.index(c) for c in COLOURS if c not in ("black", "grey", "white")]
    assert float(j.upper[chromatic].sum() + j.lower[chromatic].sum()) == 0.0


def test_small_box_is_not_judged() -> None:
    assert judge(person((0, 0, 200), (0, 0, 0)), (40.0, 20.0, 100.0, 60.0)) is None


def test_histogram_similarity() -> None:
    a = judge(person((30, 30, 200), (160, 90, 40)), BOX)
    b = judge(person((30, 30, 200), (160, 90, 40)), BOX)
    c = judge(person((40, 200, 40), (20, 20, 20)), BOX)
    assert a is not None
    assert b is not None
    assert c is not None
    assert similarity(a.histogram, b.histogram) > 0.99
    assert similarity(a.histogram, c.histogram) < 0.5


def test_vehicle_body_colour_on_the_sample_video() -> None:
    """The parked white van and the pale-blue car of vtest.avi (frame 100, the detector's
    boxes; the car is cut by the right border and still judged)."""
    import cv2

    from agent import assets
    from agent.lookout.colour import judge_vehicle

    cap = cv2.VideoCapture(str(assets.verify("video")))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 100)
    ok, frame = cap.read()
    cap.release()
    assert ok
    van = judge_vehicle(frame, (652.0, 43.0, 723.0, 101.0))
    car = judge_vehicle(frame, (734.0, 51.0, 768.0, 94.0))
    assert van is not None
    assert car is not None
    assert names(van.top()[0])[0] == "white"
    assert names(car.top()[0])[0] == "blue"
    assert not van.lower.any()  # a vehicle has one colour
    assert similarity(van.histogram, car.histogram) < similarity(van.histogram, van.histogram)


def test_vehicle_too_small_is_not_judged() -> None:
    from agent.lookout.colour import VEHICLE_MIN, judge_vehicle

    frame = np.full((100, 100, 3), 255, np.uint8)
    assert judge_vehicle(frame, (10.0, 10.0, 10.0 + VEHICLE_MIN[0] - 1, 60.0)) is None
    assert judge_vehicle(frame, (10.0, 10.0, 60.0, 10.0 + VEHICLE_MIN[1] - 1)) is None
    assert judge_vehicle(frame, (10.0, 10.0, 10.0 + VEHICLE_MIN[0], 10.0 + VEHICLE_MIN[1]))
