"""Fixtures of the link's tests: certificates and a TLS broker that requires a client one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.dev.broker import BrokerTls, LocalBroker
from tests.tls import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_broker(pki: Pki, tmp_path: Path) -> Iterator[LocalBroker]:
    tls = BrokerTls(pki.ca, pki.server_cert, pki.server_key, require_certificate=True)
    broker = LocalBroker(tmp_path / "tb", tls=tls).start()
    yield broker
    broker.stop()
