"""The signature, the key file, the replay cache and the token bucket."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from agent.control.auth import (
    KeyFileError,
    ReplayCache,
    TokenBucket,
    canonical_args,
    generate_key,
    load_key,
    make_request,
    sign,
    signed_text,
    verify,
)

KEY = bytes(range(32))
TOPIC = "pole/lab/dev-1/cmd/ping"


def test_signed_text_is_documented_layout() -> None:
    text = signed_text(TOPIC, "r1", 1700000000000, {"b": 1, "a": "é"})
    assert text == (
        b'pole-agent-cmd/1\npole/lab/dev-1/cmd/ping\nr1\n1700000000000\n{"a":"\\u00e9","b":1}'
    )
    # Any HMAC implementation over those bytes gives the same mac.
    assert sign(KEY, TOPIC, "r1", 1700000000000, {"b": 1, "a": "é"}) == (
        hmac.new(KEY, text, hashlib.sha256).hexdigest()
    )


def test_canonical_args_ignores_key_order_and_spacing() -> None:
    assert canonical_args({"z": [1, 2], "a": {"y": 1, "x": 2}}) == '{"a":{"x":2,"y":1},"z":[1,2]}'


@pytest.mark.parametrize(
    ("topic", "req", "ts", "args"),
    [
        ("pole/lab/dev-2/cmd/ping", "r1", 5, {}),  # another device
        ("pole/lab/dev-1/cmd/reload", "r1", 5, {}),  # another command
        (TOPIC, "r2", 5, {}),
        (TOPIC, "r1", 6, {}),
        (TOPIC, "r1", 5, {"echo": "x"}),
    ],
)
def test_any_change_breaks_the_mac(topic: str, req: str, ts: int, args: dict[str, str]) -> None:
    mac = sign(KEY, TOPIC, "r1", 5, {})
    assert verify(KEY, TOPIC, "r1", 5, {}, mac=mac)
    assert verify(KEY, TOPIC, "r1", 5, {}, mac=mac.upper())
    assert not verify(KEY, topic, req, ts, args, mac=mac)
    assert not verify(b"x" * 32, TOPIC, "r1", 5, {}, mac=mac)


def test_make_request_round_trips() -> None:
    req, payload = make_request(KEY, TOPIC, {"echo": "hi"}, ts=42)
    body = json.loads(payload)
    assert body["req"] == req
    assert body["ts"] == 42
    assert verify(KEY, TOPIC, req, 42, body["args"], mac=body["mac"])
    _, unsigned = make_request(None, TOPIC)
    assert "mac" not in json.loads(unsigned)


def test_load_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = tmp_path / "k"
    good.write_text(generate_key() + "\n")
    assert len(load_key(str(good))) == 32
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert load_key("k") == load_key(str(good))
    for text, words in [("zz" * 32, "hex digits"), ("abc", "hex digits"), ("ab" * 8, "16 bytes")]:
        bad = tmp_path / "bad"
        bad.write_text(text)
        with pytest.raises(KeyFileError, match=words if words != "16 bytes" else "at least"):
            load_key(str(bad))
    with pytest.raises(KeyFileError, match="does not exist"):
        load_key(str(tmp_path / "missing"))


def test_replay_cache_forgets_only_after_the_window() -> None:
    cache = ReplayCache(horizon_ms=1000, max_entries=3)
    assert cache.check("a", 0) is None
    assert cache.check("a", 999) is not None  # the same id again
    assert cache.check("b", 2000) is None  # newest is now 2000: "a" (ts 0) is forgotten
    assert (cache.check("a", 999) or "").startswith("stale")  # too old to tell: refused
    assert cache.check("a", 1500) is None
    for i in range(5):
        cache.check(f"x{i}", 2000)
    assert len(cache) == 3
    assert cache.evicted >= 3


def test_token_bucket() -> None:
    bucket = TokenBucket(rate_per_min=60, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(0.5)
    assert bucket.take(1.5)  # one token a second
    assert not bucket.take(1.6)
