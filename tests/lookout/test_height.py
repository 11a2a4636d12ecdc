"""The person-height model answers only after enough tracks, then tells children apart."""

from __future__ import annotations

from agent.lookout.height import MIN_TRACKS, HeightModel


def test_unknown_until_enough_tracks_then_child_and_adult() -> None:
    model = HeightModel()
    for k in range(MIN_TRACKS - 1):
        model.learn([(0.8, 0.40 + 0.002 * k), (0.81, 0.41)])
    assert model.size(0.8, 0.4) == "unknown"
    assert model.expected(0.8) is None
    model.learn([(0.8, 0.41)])
    assert model.expected(0.8) is not None
    assert model.size(0.8, 0.41) == "adult"
    assert model.size(0.8, 0.27) == "child"
    assert model.size(0.8, 0.34) == "unknown"  # between the thresholds
    assert model.size(0.1, 0.1) == "unknown"  # nobody walked there
