"""Hostile input against a running agent: thousands of generated payloads, then a flood.

Afterwards the agent is alive, answers a command, a bell press still arrives, and its
output holds no traceback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.control.auth import sign
from agent.control.handlers import COMMANDS
from tests.control.unit import DEVICE_KEY, TOPICS, Unit

NAMES = [c.name for c in COMMANDS] + ["_probe", "reboot", ""]
# Mosquitto disconnects a client that publishes control characters in a topic name, so
# names are drawn from letters, digits and punctuation (any script).
TOPIC_CHARS = st.characters(categories=("L", "N", "Pd", "Pc", "Po", "Sm"), exclude_characters="+#/")
ARG_KEYS = ["echo", "camera", "name", "for_s", "action", "duration_s", "press_s", "x"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "req": st.text(max_size=70) | st.integers() | st.none(),
        "ts": st.integers() | st.just(0) | st.text(max_size=5) | st.floats(),
        "args": st.dictionaries(st.sampled_from(ARG_KEYS), json_values, max_size=3) | json_values,
        "mac": st.none()
        | st.text(max_size=70)
        | st.text("0123456789abcdef", min_size=64, max_size=64),
        "extra": json_values,
    },
)


@st.composite
def signed(draw: st.DrawFn) -> tuple[str, bytes]:
    """A correctly signed command with arbitrary arguments: reaches the argument checks."""
    name = draw(st.sampled_from(["ping", "bell-test", "arm", "disarm", "snapshot", "x-y"]))
    args = draw(st.dictionaries(st.sampled_from(ARG_KEYS), json_values, max_size=3))
    req = draw(st.text("abcdef0123456789", min_size=1, max_size=64))
    ts = time.time_ns() // 1_000_000 + draw(st.integers(-90_000, 90_000))
    topic = TOPICS.cmd(name)
    body = {"req": req, "ts": ts, "args": args, "mac": sign(DEVICE_KEY, topic, req, ts, args)}
    return name, json.dumps(body).encode()


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


payloads = st.one_of(
    st.binary(max_size=3000),
    json_values.map(_dumps),
    envelopes.map(_dumps),
    envelopes.map(lambda e: _dumps(e)[: len(_dumps(e)) // 2]),  # cut short
)
messages = st.one_of(
    st.tuples(st.sampled_from(NAMES) | st.text(TOPIC_CHARS, min_size=1, max_size=20), payloads),
    signed(),
)


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Unit]:
    u = Unit(tmp_path_factory.mktemp("fuzz"))
    yield u
    u.close()


@pytest.mark.slow
@settings(
    max_examples=2500,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(message=messages, site=st.booleans())
def test_generated_payloads(unit: Unit, message: tuple[str, bytes], site: bool) -> None:
    name, payload = message
    topic = f"pole/lab/_site/cmd/{name}" if site else TOPICS.cmd(name)
    if not name:
        topic = topic.rstrip("/") + "/"  # an empty level: a legal topic the agent must refuse
    unit.centre.publish(topic, payload)


def test_a_flood_is_dropped_and_counted(unit: Unit) -> None:
    for i in range(3000):
        unit.centre.client.publish(TOPICS.cmd("ping"), b'{"req":"f%d","ts":1}' % i, qos=0)
    time.sleep(1.0)
    assert unit.proc.poll() is None


def test_afterwards_the_agent_works(unit: Unit) -> None:
    assert unit.proc.poll() is None
    since = time.monotonic()
    unit.press()
    assert unit.wait_bell("activated", since)["ev"] == "activated"
    # Tokens may still be spent by the fuzzing; any answer proves the thread is alive.
    deadline = time.monotonic() + 30
    while True:
        res = unit.send("ping")
        if res.res == "ok" or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    assert res.res == "ok", res.why
    out = unit.output()
    assert "Traceback" not in out
    assert "message dropped" in out
    assert "crashed" not in out
