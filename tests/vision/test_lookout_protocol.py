"""Lookout messages to the vision process: typed, validated, the bad field named."""

from __future__ import annotations

import pytest

from agent.control.lookout import LookoutArgs
from agent.vision.protocol import (
    LookoutCancel,
    LookoutRequest,
    ProtocolError,
    decode_to_child,
    encode,
)


def test_round_trip() -> None:
    msg = LookoutRequest(
        spec=LookoutArgs(id="lk-1", upper=["navy"], size="child"), remaining_s=60.0,
        signer="site", req="r-1", site=True,
    )  # fmt: skip
    assert decode_to_child(encode(msg)) == msg
    assert decode_to_child(encode(LookoutCancel(id="lk-1"))) == LookoutCancel(id="lk-1")


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (b'"navy"', b'"rot"', "lookout.spec.upper.0"),
        (b'"site"', b'"root"', "lookout.signer"),
        (b'"remaining_s":60.0', b'"remaining_s":"60"', "lookout.remaining_s"),
    ],
)
def test_a_bad_field_is_named(old: bytes, new: bytes, field: str) -> None:
    msg = LookoutRequest(
        spec=LookoutArgs(id="lk-1", upper=["navy"]), remaining_s=60.0, signer="site", req="r",
        site=True,
    )  # fmt: skip
    frame = encode(msg)
    header = frame[8:].replace(old, new)
    bad = len(header).to_bytes(4, "big") + (0).to_bytes(4, "big") + header
    with pytest.raises(ProtocolError, match=field):
        decode_to_child(bad)
