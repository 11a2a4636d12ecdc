"""The gate's verdicts, as a table over hand-made messages (no broker, time as an argument)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.config import CommandsConfig
from agent.control.auth import make_request, sign
from agent.control.gate import Accepted, Dropped, Gate, Keys, Rejected, Verdict
from agent.control.handlers import COMMANDS
from agent.control.registry import by_name
from agent.events import Topics

KEY = bytes(range(32))
SITE_KEY = bytes(range(32, 64))
NOW = 1_700_000_000_000
TOPICS = Topics("pole", "lab", "dev-1")
DEV = "pole/lab/dev-1/cmd/"
SITE = "pole/lab/_site/cmd/"


def gate(keys: Keys | None = None, **cfg: Any) -> Gate:
    return Gate(
        CommandsConfig(**{"max_age_s": 60, "max_bytes": 1024, "rate_per_min": 5, **cfg}),
        TOPICS,
        by_name(COMMANDS),
        keys or Keys(KEY, "", SITE_KEY, ""),
        mono=0.0,
    )


def signed(topic: str, args: dict[str, Any] | None = None, ts: int = NOW, **over: Any) -> bytes:
    _req, payload = make_request(KEY if SITE not in topic else SITE_KEY, topic, args, ts=ts)
    body = json.loads(payload)
    body.update(over)
    return json.dumps(body).encode()


def check(g: Gate, topic: str, payload: bytes, now: int = NOW, mono: float = 0.0) -> Verdict:
    return g.check(topic, payload, len(payload), now, mono)


def test_a_good_command_is_accepted_with_typed_args() -> None:
    v = check(gate(), DEV + "bell-test", signed(DEV + "bell-test", {"duration_s": 30}))
    assert isinstance(v, Accepted)
    assert v.spec.name == "bell-test"
    assert v.args.duration_s == 30


def _bad_mac(topic: str) -> bytes:
    return signed(topic, mac=sign(b"k" * 32, topic, "x", NOW, {}))


REJECTIONS: list[tuple[str, str, bytes, str]] = [
    ("unsigned", DEV + "ping", signed(DEV + "ping", mac=None), "unsigned"),
    ("bad signature", DEV + "ping", _bad_mac(DEV + "ping"), "bad signature"),
    ("expired", DEV + "ping", signed(DEV + "ping", ts=NOW - 61_000), "expired: sent 61.0 s ago"),
    ("future", DEV + "ping", signed(DEV + "ping", ts=NOW + 61_000), "from the future"),
    ("unknown", DEV + "reboot", signed(DEV + "reboot"), "unknown command 'reboot'; known: arm"),
    (
        "wrong types",
        DEV + "bell-test",
        signed(DEV + "bell-test", {"duration_s": "30", "colour": 1}),
        "invalid arguments: args.duration_s: Input should be a valid number; args.colour: Extra",
    ),
    ("ts not int", DEV + "ping", signed(DEV + "ping", ts="now"), "invalid command: ts: Input"),  # type: ignore[arg-type]
    (
        "oversized",
        DEV + "ping",
        signed(DEV + "ping", {"echo": "x" * 2000}),
        "payload of 2",
    ),
    ("invalid json", DEV + "ping", b'{"req": "r-1", "ts": ', "not valid JSON"),
    ("not broadcastable", SITE + "bell-ack", signed(SITE + "bell-ack"), "not for broadcast"),
    (
        "signed for another device",
        DEV + "ping",
        signed("pole/lab/dev-2/cmd/ping", mac=None).replace(
            b'"mac": null',
            b'"mac": "' + sign(KEY, "pole/lab/dev-2/cmd/ping", "r", NOW, {}).encode() + b'"',
        ),
        "bad signature",
    ),
]


@pytest.mark.parametrize(
    ("case", "topic", "payload", "why"), REJECTIONS, ids=[r[0] for r in REJECTIONS]
)
def test_rejections_name_the_reason(case: str, topic: str, payload: bytes, why: str) -> None:
    v = check(gate(), topic, payload)
    assert isinstance(v, Rejected), v
    assert v.why.startswith(why), v.why
    assert v.req  # answered to the request id


DROPS: list[tuple[str, str, bytes, str]] = [
    ("no req", DEV + "ping", b'{"ts": 1}', "no_req"),
    ("req of wrong type", DEV + "ping", b'{"req": 5, "ts": 1}', "no_req"),
    ("array", DEV + "ping", b"[1, 2]", "no_req"),
    ("garbage", DEV + "ping", b"\xff\xfe\x00garbage", "invalid_json"),
    ("deep", DEV + "ping", b"[" * 1000, "invalid_json"),
    ("big garbage", DEV + "ping", b"x" * 5000, "oversized"),
    ("probe", DEV + "_probe", b"{}", "probe"),
    ("foreign", "pole/lab/dev-2/cmd/ping", signed(DEV + "ping"), "foreign_topic"),
    ("nested name", DEV + "a/b", b"{}", "foreign_topic"),
]


@pytest.mark.parametrize(("case", "topic", "payload", "reason"), DROPS, ids=[d[0] for d in DROPS])
def test_unanswerable_messages_are_dropped(
    case: str, topic: str, payload: bytes, reason: str
) -> None:
    v = check(gate(), topic, payload)
    assert isinstance(v, Dropped), v
    assert v.reason == reason


def test_replay_is_rejected_even_later() -> None:
    g = gate()
    payload = signed(DEV + "ping")
    assert isinstance(check(g, DEV + "ping", payload), Accepted)
    v = check(g, DEV + "ping", payload, now=NOW + 30_000, mono=30.0)
    assert isinstance(v, Rejected)
    assert v.why.startswith("replayed")


def test_rate_limit_then_refill() -> None:
    g = gate(rate_per_min=3)
    verdicts = [check(g, DEV + "ping", signed(DEV + "ping")) for _ in range(4)]
    assert [type(v).__name__ for v in verdicts] == ["Accepted"] * 3 + ["Rejected"]
    assert verdicts[3].why.startswith("rate limited")  # type: ignore[union-attr]
    assert isinstance(check(g, DEV + "ping", signed(DEV + "ping"), mono=20.0), Accepted)


def test_unauthenticated_messages_do_not_use_up_the_rate() -> None:
    g = gate(rate_per_min=2)
    for _ in range(10):
        check(g, DEV + "ping", signed(DEV + "ping", mac=None))
    assert isinstance(check(g, DEV + "ping", signed(DEV + "ping")), Accepted)


def test_site_broadcast_uses_the_site_key() -> None:
    assert isinstance(check(gate(), SITE + "ping", signed(SITE + "ping")), Accepted)
    device_signed = make_request(KEY, SITE + "ping", ts=NOW)[1]
    v = check(gate(), SITE + "ping", device_signed)
    assert isinstance(v, Rejected)
    assert v.why.startswith("bad signature")


def test_without_keys_everything_is_refused_clearly() -> None:
    keys = Keys(
        None,
        "commands are disabled on this unit: no commands.key_file configured",
        None,
        "commands are disabled on this unit: no commands.site_key_file configured",
    )
    v = check(gate(keys), DEV + "ping", signed(DEV + "ping"))
    assert isinstance(v, Rejected)
    assert "no commands.key_file" in v.why
    v = check(gate(keys), SITE + "ping", signed(SITE + "ping"))
    assert isinstance(v, Rejected)
    assert "no commands.site_key_file" in v.why


def test_a_clock_step_back_does_not_stop_commands() -> None:
    """The unit started with its clock an hour ahead; NTP steps it back: commands pass again.

    (The agent used to refuse everything sent before its start time by its own clock, so a
    clock that started ahead refused every command, bell-ack included, until a restart.)
    """
    g = gate()
    ahead = NOW + 3_600_000
    v = check(g, DEV + "ping", signed(DEV + "ping"), now=ahead)
    assert isinstance(v, Rejected)
    assert v.why.startswith("expired")  # honest: the clocks disagree by an hour
    assert isinstance(check(g, DEV + "bell-ack", signed(DEV + "bell-ack"), now=NOW + 500), Accepted)


def test_a_clock_step_forward_and_back_opens_no_replay() -> None:
    g = gate()
    payload = signed(DEV + "ping")
    assert isinstance(check(g, DEV + "ping", payload), Accepted)
    # The unit's clock jumps a day ahead and back: the id is still remembered.
    check(g, DEV + "ping", signed(DEV + "ping"), now=NOW + 86_400_000)
    v = check(g, DEV + "ping", payload, now=NOW + 1_000)
    assert isinstance(v, Rejected)
    assert v.why.startswith("replayed")


def test_older_than_what_was_accepted_is_refused() -> None:
    g = gate()
    assert isinstance(check(g, DEV + "ping", signed(DEV + "ping", ts=NOW + 59_000)), Accepted)
    # 122 s older than the newest accepted command: it cannot be told from a replay.
    late = signed(DEV + "ping", ts=NOW - 59_000 - 4_000)
    v = check(g, DEV + "ping", late, now=NOW - 30_000)
    assert isinstance(v, Rejected)
    assert v.why.startswith("stale: older than commands already accepted")


def test_the_replay_cache_survives_a_restart(tmp_path: Path) -> None:
    keys = Keys(KEY, "", SITE_KEY, "")
    cfg = CommandsConfig(max_age_s=60, max_bytes=1024, rate_per_min=5)
    file = tmp_path / "commands-replay.json"
    first = Gate(cfg, TOPICS, by_name(COMMANDS), keys, mono=0.0, replay_file=file)
    payload = signed(DEV + "ping")
    assert isinstance(check(first, DEV + "ping", payload), Accepted)
    again = Gate(cfg, TOPICS, by_name(COMMANDS), keys, mono=0.0, replay_file=file)
    v = check(again, DEV + "ping", payload, now=NOW + 2_000)
    assert isinstance(v, Rejected)
    assert v.why.startswith("replayed")
    # A damaged file starts empty rather than stopping commands.
    file.write_text("{not json")
    third = Gate(cfg, TOPICS, by_name(COMMANDS), keys, mono=0.0, replay_file=file)
    assert isinstance(check(third, DEV + "ping", signed(DEV + "ping")), Accepted)


def test_the_previous_key_is_accepted_during_a_rotation() -> None:
    new = bytes(range(100, 132))
    g = gate(Keys(new, "", SITE_KEY, "", previous_device=KEY))
    assert isinstance(check(g, DEV + "ping", signed(DEV + "ping")), Accepted)  # the old key
    assert g.verified_with_previous == 1
    _req, payload = make_request(new, DEV + "ping", None, ts=NOW)
    assert isinstance(check(g, DEV + "ping", payload), Accepted)
    assert g.verified_with_previous == 1
    _req, other = make_request(b"z" * 32, DEV + "ping", None, ts=NOW)
    assert isinstance(check(g, DEV + "ping", other), Rejected)
