"""`pole-agent monitor`: validation, deduplication, seq gaps, online/offline, as a subprocess."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from agent.centre.gaps import SeqTracker
from agent.centre.monitor import MonitorView
from agent.dev.broker import LocalBroker
from agent.events import EventStamper, StatusMessage, encode
from tests.centre.observer import Centre

ROOT = Path(__file__).resolve().parents[2]
BASE = "pole/s1/p1"


def test_view_deduplicates_and_reports_gaps_only_after_the_window() -> None:
    now = [0.0]
    view = MonitorView(tracker=SeqTracker(30, clock=lambda: now[0]))
    st = EventStamper("p1")
    first = st.bell(ev="pressed")
    second = st.bell(ev="released")  # arrives late: reordered, not lost
    third = st.bell(ev="activated", loc={"pole": "7", "lat": 37.5, "lon": 127.0})
    st.object(ev="start", cam="c", tid=1, cls="person", sc=0.9, box=(0, 0, 1, 1))  # never comes
    fifth = st.rule(rule="r", type="intrusion", cam="c", tids=[1])
    lines = view.handle(f"{BASE}/event/bell", encode(first))
    assert any("BELL PRESSED" in line for line in lines)
    assert view.handle(f"{BASE}/event/bell", encode(first)) == []  # duplicate
    lines = view.handle(f"{BASE}/event/bell", encode(third))
    assert not any("GAP" in line for line in lines)
    assert any("BELL ACTIVATED button at pole 7" in line for line in lines)
    now[0] = 5.0
    view.handle(f"{BASE}/event/bell", encode(second))
    view.handle(f"{BASE}/event/rule", encode(fifth))
    assert view.tick() == []
    now[0] = 36.0
    assert view.tick() == ["p1 GAP: seq 4..4 lost (not arrived within 30 s)"]
    assert view.counts == {"events": 4, "duplicates": 1, "invalid": 0, "gaps": 1}


def test_view_takes_the_poles_word_for_its_drops() -> None:
    view = MonitorView()
    st = EventStamper("p1")
    st.object(ev="start", cam="c", tid=1, cls="person", sc=0.9, box=(0, 0, 1, 1))
    notice = st.system(ev="notice", what="spool", why="evicted", data={"dropped": [[1, 1]]})
    lines = view.handle(f"{BASE}/event/system", encode(notice))
    assert lines[0] == "p1 GAP: seq 1..1 lost (dropped by the pole)"


def test_view_flags_invalid_messages_and_tracks_status() -> None:
    view = MonitorView()
    lines = view.handle(f"{BASE}/event/bell", b'{"v":1,"k":"bell","ev":"exploded"}')
    assert lines[0].startswith("INVALID message on pole/s1/p1/event/bell")
    assert view.counts["invalid"] == 1
    birth = StatusMessage(dev="p1", state="online", why="birth", boot="b", ts=1, ver="0.1")
    assert "p1 ONLINE" in view.handle(f"{BASE}/status", encode(birth))[0]
    assert view.online == {"p1": True}
    will = StatusMessage(dev="p1", state="offline", why="lost", boot="b", ts=2)
    assert "OFFLINE (lost)" in view.handle(f"{BASE}/status", encode(will))[0]
    assert view.online == {"p1": False}


def test_monitor_command_against_a_broker(broker: LocalBroker, centre: Centre) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "monitor", "--port", str(broker.port), "--site", "s1",
         "--count", "3", "--timeout", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    err_lines: list[str] = []
    subscribed = threading.Event()

    def read_log() -> None:  # publishing before its SUBACK would lose the events
        assert proc.stderr is not None
        for line in proc.stderr:
            err_lines.append(line)
            if "monitor: subscribed to " in line:
                subscribed.set()

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    assert subscribed.wait(60), "".join(err_lines)
    st = EventStamper("p1")
    events = [st.bell(ev="pressed"), st.bell(ev="activated"), st.bell(ev="released", held=400)]
    for event in [events[0], events[0], *events[1:]]:  # one duplicate on the wire
        centre.publish(f"{BASE}/event/bell", encode(event))
    centre.publish(f"{BASE}/event/bell", b"not json")
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.wait(40)
    reader.join(10)
    err = "".join(err_lines)
    assert proc.returncode in (0, 1), err
    assert out.count("BELL ") == 3
    assert "3 events, 1 duplicates, 0 gaps" in out
    assert "Traceback" not in err
