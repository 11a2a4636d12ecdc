"""The wire contract: every event kind stamped, encoded, decoded and checked by JSON Schema."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ValidationError

from agent.events import (
    BellEvent,
    CameraEvent,
    CommandResultEvent,
    EventStamper,
    HealthEvent,
    ObjectEvent,
    Priority,
    RuleEvent,
    StateMessage,
    StatusMessage,
    Topics,
    decode_event,
    encode,
)
from agent.mqtt.link import _inject_sent_time

LOC = {"pole": "강남-0412", "lat": 37.498095, "lon": 127.02761}


def every_kind(st: EventStamper) -> list[BaseModel]:
    """One realistic event of each kind, in the order the tests expect."""
    return [
        st.bell(ev="pressed", inp="button", loc=LOC, snap=True, preset="p1"),
        st.object(
            ev="update",
            cam="cam0",
            tid=17,
            cls="person",
            sc=0.87,
            box=(0.4123, 0.2301, 0.5012, 0.6688),
            zones=["gate"],
            why="zone_enter",
        ),
        st.rule(rule="night-gate", type="intrusion", cam="cam0", zone="gate", tids=[17], snap=True),
        st.camera(ev="lost", cam="cam0", why="stall"),
        st.health(
            up=3600,
            ver="0.1.0",
            cfg="9f3a1c2b",
            cams={"cam0": {"fps": 7.9, "skipped": 3}},
            bell={"state": "idle"},
            spool={"depth": {"object": 2}, "dropped": {}},
            link={"state": "connected"},
            sys={"load1": 0.4, "mem": 0.31},
        ),
        st.cmd_result(req="r-1", cmd="ping", res="ok", data={"pong": 1}),
    ]


def validator(model: type[BaseModel]) -> Draft202012Validator:
    schema = model.model_json_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_errors(model: type[BaseModel], payload: bytes) -> list[str]:
    return [e.message for e in validator(model).iter_errors(json.loads(payload))]


@pytest.mark.parametrize(
    ("index", "model", "kind", "pri"),
    [
        (0, BellEvent, "bell", Priority.ALARM),
        (1, ObjectEvent, "object", Priority.OBJECT),
        (2, RuleEvent, "rule", Priority.RULE),
        (3, CameraEvent, "camera", Priority.RULE),
        (4, HealthEvent, "health", Priority.TELEMETRY),
        (5, CommandResultEvent, "cmd_result", Priority.ALARM),
    ],
)
def test_every_kind_round_trips_and_validates(
    index: int, model: type[BaseModel], kind: str, pri: Priority
) -> None:
    st = EventStamper("pole-0412", boot_id="b00t")
    event = every_kind(st)[index]
    payload = encode(event)
    back = decode_event(payload)
    assert type(back) is model
    assert back == event
    assert back.k == kind
    assert back.pri == pri
    assert schema_errors(model, payload) == []
    # The link adds the send time at publish; the result is still a valid event.
    sent = _inject_sent_time(payload)
    assert json.loads(sent)["st"] > 0
    assert schema_errors(model, sent) == []
    assert decode_event(sent).st == json.loads(sent)["st"]  # type: ignore[union-attr]
    # Absent optional fields are left out of the wire form, not sent as null.
    assert b"null" not in payload


def test_the_schema_rejects_what_the_model_rejects() -> None:
    st = EventStamper("pole-0412", boot_id="b00t")
    good = json.loads(
        encode(st.object(ev="start", cam="c", tid=1, cls="car", sc=0.5, box=(0, 0, 1, 1)))
    )
    bad_cases: list[dict[str, Any]] = [
        {**good, "extra": 1},  # unknown field
        {**good, "sc": 1.5},  # score out of range
        {**good, "ev": "moved"},  # not a lifecycle step
        {**good, "seq": 0},  # seq starts at 1
        {key: v for key, v in good.items() if key != "id"},  # id missing
        {**good, "box": [0, 0, 1]},  # three numbers are not a box
    ]
    for case in bad_cases:
        payload = json.dumps(case).encode()
        assert schema_errors(ObjectEvent, payload), case
        with pytest.raises(ValidationError):
            decode_event(payload)
    with pytest.raises(ValidationError):
        decode_event(json.dumps({**good, "k": "nope"}))
    with pytest.raises(ValidationError):
        decode_event(b"\xff not json")


def test_status_and_state_messages_validate() -> None:
    status = StatusMessage(
        dev="pole-1", state="online", why="birth", boot="b", ts=1, ver="0.1.0", cfg="abc"
    )
    assert schema_errors(StatusMessage, encode(status)) == []
    state = StateMessage(dev="pole-1", ts=2, state="pressed", since=2, detail={"held": 40})
    assert schema_errors(StateMessage, encode(state)) == []
    # Only events get a send time: a status or state payload is left as it is.
    assert _inject_sent_time(encode(status)) == encode(status)
    assert _inject_sent_time(encode(state)) == encode(state)


def test_seq_counts_per_boot_and_ids_are_unique() -> None:
    first = EventStamper("pole-1")
    second = EventStamper("pole-1")  # the next start of the agent
    assert first.boot_id != second.boot_id
    a = [first.camera(ev="lost", cam="c") for _ in range(500)]
    b = [second.camera(ev="lost", cam="c") for _ in range(500)]
    assert [e.seq for e in a] == list(range(1, 501))
    assert [e.seq for e in b] == list(range(1, 501))
    assert {e.boot for e in a} == {first.boot_id}
    assert len({e.id for e in a + b}) == 1000


def test_stamping_from_threads_gives_each_seq_once() -> None:
    st = EventStamper("pole-1")
    got: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        seqs = [st.bell(ev="test_started").seq for _ in range(300)]
        with lock:
            got.extend(seqs)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 1201))


def test_time_given_by_the_stage_is_kept() -> None:
    st = EventStamper("pole-1")
    assert st.bell(ev="pressed", ts=1_700_000_000_123).ts == 1_700_000_000_123
    assert st.bell(ev="pressed").ts > 1_700_000_000_000


def test_topic_tree() -> None:
    t = Topics("pole", "gangnam", "pole-0412")
    assert t.base == "pole/gangnam/pole-0412"
    assert t.status == "pole/gangnam/pole-0412/status"
    assert t.heartbeat == "pole/gangnam/pole-0412/heartbeat"
    assert t.event("bell") == "pole/gangnam/pole-0412/event/bell"
    assert t.event("object") == "pole/gangnam/pole-0412/event/object"
    assert t.event("health") == t.heartbeat
    assert t.event("cmd_result") == "pole/gangnam/pole-0412/cmd-result"
    assert t.cmd_result == t.event("cmd_result")
    assert t.state("bell") == "pole/gangnam/pole-0412/state/bell"
    assert t.snapshot("abc") == "pole/gangnam/pole-0412/snapshot/abc"
    assert t.cmd("ping") == "pole/gangnam/pole-0412/cmd/ping"
    assert t.cmd_filters == ("pole/gangnam/pole-0412/cmd/+", "pole/gangnam/_site/cmd/+")
    nested = Topics("city/safety", "s1", "d1")
    assert nested.status == "city/safety/s1/d1/status"
