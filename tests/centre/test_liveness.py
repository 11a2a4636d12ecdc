"""Liveness by heartbeat age, with an injected clock; the monitor's silent and back lines."""

from __future__ import annotations

import pytest

from agent.centre.liveness import DEFAULT_PERIOD_S, Liveness
from agent.centre.monitor import MonitorView
from agent.events import EventStamper, StatusMessage, encode


def test_the_period_is_learnt_from_the_heartbeats_and_silence_is_reported_once() -> None:
    live = Liveness()
    live.update("p1", now=100.0, sent_ms=1_000)
    assert live.limit("p1") == 3 * DEFAULT_PERIOD_S  # one heartbeat: period unknown
    live.update("p1", now=102.0, sent_ms=3_000)
    assert live.limit("p1") == 6.0  # 3 x 2 s
    assert live.silent(107.9) == []
    assert live.silent(108.1) == ["p1"]
    assert live.silent(200.0) == []  # once
    assert live.is_silent("p1")
    assert live.update("p1", now=201.0, sent_ms=99_000) is True  # back
    assert not live.is_silent("p1")
    assert live.limit("p1") == 6.0  # a long gap does not lengthen the period


def test_a_replay_burst_does_not_shorten_the_period() -> None:
    live = Liveness()
    for i in range(5):  # five heartbeats stamped 2 s apart arrive within 50 ms
        live.update("p1", now=10.0 + i * 0.01, sent_ms=i * 2_000)
    assert live.limit("p1") == 6.0
    live.update("p1", now=11.0, sent_ms=8_000)  # a duplicate or a clock step back
    live.update("p1", now=11.1, sent_ms=8_300)  # 0.3 s: below the shortest period
    assert live.limit("p1") == 6.0


def test_a_fixed_limit_and_an_offline_status_stop_the_judgement() -> None:
    live = Liveness(silent_after_s=5.0)
    live.update("a", now=0.0)
    live.update("b", now=0.0)
    live.forget("b")  # b said offline (clean stop or its will)
    assert live.silent(5.1) == ["a"]
    assert live.age("b", 5.1) is None
    with pytest.raises(ValueError, match="positive"):
        Liveness(silent_after_s=0)


def test_the_monitor_shows_offline_silent_once_then_online_again() -> None:
    clock = [1000.0]
    view = MonitorView(liveness=Liveness(silent_after_s=3.0), clock=lambda: clock[0])
    st = EventStamper("p1")
    birth = StatusMessage(dev="p1", state="online", why="birth", boot=st.boot_id, ts=1, ver="0.1")
    view.handle("pole/s1/p1/status", encode(birth), retained=True)
    assert view.tick() == []  # a retained birth is no sign of life: only heartbeats are
    view.handle("pole/s1/p1/heartbeat", encode(st.health(up=1, ver="0.1", cfg="c")))
    clock[0] += 3.5
    assert view.tick() == ["p1 OFFLINE (silent) no heartbeat for 4s"]
    assert view.online["p1"] is False
    assert view.tick() == []
    lines = view.handle("pole/s1/p1/heartbeat", encode(st.health(up=5, ver="0.1", cfg="c")))
    assert lines[0] == "p1 ONLINE  (heartbeats again)"
    assert view.online["p1"] is True
