"""Versioned SQL migrations: ``agent/centre/migrations/NNN_name.sql``, applied in order.

Each file runs in its own transaction together with its row in ``schema_migrations``, so a
failed file leaves nothing half-applied; a re-run applies only what is missing.  An advisory
lock keeps two ``migrate`` runs (two ingest hosts starting at once) from racing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from agent.errors import AgentError

__all__ = ["MIGRATIONS", "Migration", "MigrationError", "applied", "available", "migrate"]

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_LOCK = 0x706F6C65  # "pole": the advisory lock id of migrate


class MigrationError(AgentError):
    """A migration file is malformed, or an applied one was changed since."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    text: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def available(folder: Path = MIGRATIONS) -> list[Migration]:
    """The migration files in version order; MigrationError on a bad name or a duplicate."""
    found: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise MigrationError(f"{path.name}: expected NNN_name.sql")
        version = int(m.group(1))
        if version in found:
            raise MigrationError(f"{path.name}: version {version} is used twice")
        found[version] = Migration(version, m.group(2), path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    digest text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


def applied(conn: psycopg.Connection[tuple[object, ...]]) -> dict[int, str]:
    """{version: digest} of what this database has."""
    rows = conn.execute("SELECT version, digest FROM schema_migrations").fetchall()
    return {int(str(v)): str(d) for v, d in rows}


def migrate(url: str, folder: Path = MIGRATIONS) -> list[Migration]:
    """Apply what is missing, in order; the migrations applied now."""
    todo = available(folder)
    done: list[Migration] = []
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MigrationError(f"cannot reach the database (--db): {first}") from None
    with conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK,))
        try:
            conn.execute(_TABLE)
            have = applied(conn)
            for mig in todo:
                if mig.version in have:
                    if have[mig.version] != mig.digest:
                        raise MigrationError(
                            f"{mig.version:03d}_{mig.name}.sql was changed after it was "
                            "applied; add a new migration instead"
                        )
                    continue
                with conn.transaction():
                    conn.execute(sql.SQL(mig.text))  # type: ignore[arg-type,unused-ignore]
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, digest) VALUES (%s, %s, %s)",
                        (mig.version, mig.name, mig.digest),
                    )
                done.append(mig)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK,))
    return done
