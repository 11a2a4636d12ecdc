"""The gpiod adapter on a machine without GPIO: importable, and a clear error when opened."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from agent.bell import BellError, BellService
from agent.bell.inputs import BellInputError, Waker, make_backend
from agent.config import BellConfig, DeviceConfig
from agent.events import EventStamper, Topics
from agent.outbox import Outbox
from agent.spool import Spool

CFG = BellConfig(backend="gpiod", gpiod={"chip": "pinctrl-bcm2711", "button": "BELL_IN"})
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("gpiod") is not None, reason="gpiod is installed here"
)


def test_the_adapter_imports_and_says_what_is_missing() -> None:
    backend = make_backend(CFG, Waker())
    assert backend.name == "gpiod"
    with pytest.raises(BellInputError, match=r"gpiod Python package is not installed"):
        backend.open()


def test_the_service_refuses_to_start_with_that_paragraph(tmp_path: Path) -> None:
    device = DeviceConfig(id="p", site="s", pole="1", latitude=0, longitude=0)
    spool = Spool(tmp_path / "spool.db")
    outbox = Outbox(spool, Topics("pole", "s", "p"), EventStamper("p"))
    with pytest.raises(BellError, match=r"pole-agent\[gpio\]"):
        BellService(CFG, device, outbox).start()
    spool.close()
