"""A real PostgreSQL for the centre's tests: one server per session, one database per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

_names = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[object]:
    pytest.importorskip("psycopg", reason="the centre extra (psycopg) is not installed")
    from agent.centre.ingest.localdb import LocalPostgres, PostgresMissingError

    try:
        server = LocalPostgres().start()
    except PostgresMissingError as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def db(pg_server: object) -> str:
    """The URL of a fresh, migrated database."""
    from agent.centre.ingest.localdb import LocalPostgres
    from agent.centre.ingest.migrate import migrate

    assert isinstance(pg_server, LocalPostgres)
    url = pg_server.create_database(f"t{next(_names)}")
    migrate(url)
    return url
