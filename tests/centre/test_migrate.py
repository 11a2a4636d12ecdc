"""`pole-agent centre migrate`: versioned files, applied once, in order, guarded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

psycopg = pytest.importorskip("psycopg")

from agent.centre.ingest.migrate import MigrationError, available, migrate  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def test_the_command_migrates_and_a_rerun_is_a_no_op(db: str, pg_server: object) -> None:
    fresh = pg_server.create_database("mig_cli")  # type: ignore[attr-defined]
    cmd = [sys.executable, "-m", "agent", "centre", "migrate", "--db", fresh]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
    assert "applied 001_initial" in first.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
    assert "(0 applied now)" in again.stdout
    with psycopg.connect(fresh) as conn:
        versions = conn.execute("SELECT version FROM schema_migrations").fetchall()
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        }
    assert versions == [(m.version,) for m in available()]
    assert {"events", "poles", "open_alarms", "snapshots", "gaps", "lookout_candidates"} <= tables


def test_a_new_file_is_applied_and_a_changed_one_refused(db: str, tmp_path: Path) -> None:
    for m in available():
        (tmp_path / f"{m.version:03d}_{m.name}.sql").write_text(m.text)
    (tmp_path / "900_extra.sql").write_text("CREATE TABLE extra (x int);")
    assert [m.name for m in migrate(db, tmp_path)] == ["extra"]
    (tmp_path / "900_extra.sql").write_text("CREATE TABLE extra (x bigint);")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(db, tmp_path)


def test_a_failing_file_leaves_nothing_behind(db: str, tmp_path: Path) -> None:
    for m in available():
        (tmp_path / f"{m.version:03d}_{m.name}.sql").write_text(m.text)
    (tmp_path / "901_bad.sql").write_text("CREATE TABLE half (x int); SELECT nonsense();")
    with pytest.raises(psycopg.Error):
        migrate(db, tmp_path)
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT to_regclass('half')").fetchone() == (None,)
        last = max(m.version for m in available())
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == (last,)


def test_badly_named_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "1_x.sql").write_text("")
    with pytest.raises(MigrationError, match=r"NNN_name\.sql"):
        available(tmp_path)
