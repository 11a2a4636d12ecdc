"""The lookout commands at the gate: site broadcast allowed, which key signed, bad args."""

from __future__ import annotations

from agent.control.gate import Accepted, Keys, Rejected
from agent.control.lookout import LookoutArgs
from tests.control.test_gate import DEV, KEY, SITE, SITE_KEY, check, gate, signed


def test_a_site_lookout_is_accepted_and_says_the_site_key_signed_it() -> None:
    args = {"id": "lk-1", "upper": ["red"], "size": "child", "since_s": 3600}
    v = check(gate(), SITE + "lookout", signed(SITE + "lookout", args))
    assert isinstance(v, Accepted)
    assert (v.broadcast, v.signer) == (True, "site")
    assert isinstance(v.args, LookoutArgs)
    assert v.args.slots().upper == ("red",)
    v = check(gate(), DEV + "lookout-cancel", signed(DEV + "lookout-cancel", {"id": "lk-1"}))
    assert isinstance(v, Accepted)
    assert v.signer == "device"


def test_a_lookout_signed_with_the_previous_site_key() -> None:
    g = gate(Keys(KEY, "", bytes(32), "", previous_site=SITE_KEY))
    v = check(g, SITE + "lookout", signed(SITE + "lookout", {"id": "lk-2", "lower": ["navy"]}))
    assert isinstance(v, Accepted)
    assert v.signer == "previous-site"


def test_a_malformed_lookout_is_answered_naming_the_field() -> None:
    bad = {"id": "lk-3", "upper": ["rot"], "min_score": "high"}
    v = check(gate(), SITE + "lookout", signed(SITE + "lookout", bad))
    assert isinstance(v, Rejected)
    assert v.why.startswith("invalid arguments: args.upper.0: Input should be 'black'")
    assert "args.min_score: Input should be a valid number" in v.why
    v = check(gate(), SITE + "lookout", signed(SITE + "lookout", {"id": "lk-4"}))
    assert isinstance(v, Rejected)
    assert "ask for at least one slot" in v.why
