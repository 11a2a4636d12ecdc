"""A real three-node NATS cluster for the module, healed (every node up) before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent.dev.nats import NatsCluster, nats_binary
from tests.centre.conftest import db, pg_server  # noqa: F401 - fixtures: a real PostgreSQL


def nats_missing() -> str | None:
    try:
        nats_binary()
    except FileNotFoundError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    missing = nats_missing()
    if missing:
        pytest.skip(missing)
    c = NatsCluster(tmp_path_factory.mktemp("nats"), nodes=3).start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def nats(cluster: NatsCluster) -> Iterator[NatsCluster]:
    """The cluster with every node running before and after the test."""
    for node in cluster.nodes:
        if not node.running:
            cluster.restart(node)
    yield cluster
    for node in cluster.nodes:
        if not node.running:
            cluster.restart(node)
