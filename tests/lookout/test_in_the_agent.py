"""The running agent keeps appearance records of the people its camera sees, on the pole."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

from agent.dev.broker import LocalBroker
from tests.agentproc import AgentProcess, write_site


def _rows(index: Path) -> list[tuple[str, int, bytes | None]]:
    if not index.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{index}?mode=ro", uri=True)) as db:
            return list(db.execute("SELECT camera, track, thumb FROM appearance"))
    except sqlite3.Error:  # being created
        return []


def test_the_agent_records_tracks_into_its_local_index(tmp_path: Path, broker: LocalBroker) -> None:
    camera = {"id": "cam1", "source": "sample", "loop": True, "fps": 5}
    site = write_site(
        tmp_path / "unit",
        broker.port,
        cameras=[camera],
        extra={"lookout": {"refresh_s": 5}},
    )
    index = site.parent / "lookout.db"
    agent = AgentProcess(site)
    try:
        deadline = time.monotonic() + 90
        rows = _rows(index)
        while time.monotonic() < deadline and len(rows) < 2:
            time.sleep(1)
            rows = _rows(index)
        assert len(rows) >= 2, agent.output()[-3000:]
        assert {r[0] for r in rows} == {"cam1"}
        assert any(r[2] and r[2][:2] == b"\xff\xd8" for r in rows)  # JPEG thumbnails
    finally:
        assert agent.stop() == 0
