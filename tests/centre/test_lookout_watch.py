"""The watch's board: dedup by event id and by track, ranking, thumbnails in either order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.centre.lookout.watch import CandidateBoard
from agent.events import EventStamper, StatusMessage, encode

JPEG = b"\xff\xd8jpeg"


def cand(st: EventStamper, tid: int, sc: float, look: str = "lk-1") -> Any:
    return st.lookout(
        look=look, cam="c1", tid=tid, t0=1_000, t1=2_000, sc=sc, live=False,
        m={"upper": {"m": sc, "how": "red"}}, seen={}, hist="AA==", snap=True,
    )  # fmt: skip


def test_ranked_deduplicated_with_thumbnails(tmp_path: Path) -> None:
    st = EventStamper("p1")
    board = CandidateBoard("lk-1", tmp_path)
    birth = StatusMessage(
        dev="p1", state="online", why="birth", boot="b", ts=1, pole="7", place="정문"
    )
    board.handle("pole/s/p1/status", encode(birth))
    a, b = cand(st, 1, 0.6), cand(st, 2, 0.9)
    board.handle(f"pole/s/p1/snapshot/{a.id}", JPEG)  # before its event
    assert board.handle("pole/s/p1/event/lookout", encode(a))
    assert not board.handle("pole/s/p1/event/lookout", encode(a))  # delivered twice
    assert board.handle("pole/s/p1/event/lookout", encode(b))
    assert not board.handle("pole/s/p1/event/lookout", encode(cand(st, 3, 0.9, "other")))
    assert board.handle(f"pole/s/p1/snapshot/{b.id}", JPEG)
    rows = board.rows()
    assert [(r["track"], r["score"], r["place"]) for r in rows] == [
        (2, 0.9, "7 정문"),
        (1, 0.6, "7 정문"),
    ]
    assert (tmp_path / "p1_c1_1_1000.jpg").read_bytes() == JPEG  # pole, camera, track, t0
    assert rows[0]["thumb"].endswith("p1_c1_2_1000.jpg")
    assert board.handle("pole/s/p1/event/lookout", encode(cand(st, 1, 0.8)))  # rose: replaces
    assert [r["score"] for r in board.rows()] == [0.9, 0.8]
    assert "lookout lk-1: 2 candidate(s)" in board.table()
