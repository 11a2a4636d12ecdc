"""Shared fixtures: a real mosquitto per test, and a subscriber that plays the centre."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.dev.broker import LocalBroker
from tests.centre.observer import Centre
from tests.fsfaults import card  # noqa: F401 - a fixture: a worn SD card (loop-mounted ext4)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A plain anonymous broker on a free port, stopped after the test."""
    b = LocalBroker(tmp_path / "broker").start()
    yield b
    b.stop()


@pytest.fixture
def centre(broker: LocalBroker) -> Iterator[Centre]:
    """A subscriber to everything on the test broker."""
    c = Centre(broker.port)
    yield c
    c.close()


@pytest.fixture(autouse=True)
def _isolated_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests share the real asset cache (fetched by scripts/setup.sh) but nothing else.
    if "POLE_AGENT_CACHE" in os.environ:
        monkeypatch.setenv("POLE_AGENT_CACHE", os.environ["POLE_AGENT_CACHE"])
