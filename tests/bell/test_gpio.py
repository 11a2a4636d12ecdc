"""The gpiod adapter on a machine without GPIO: importable, and a clear fault when opened."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from agent.bell import BellService
from agent.bell.inputs import BellInputError, Waker, make_backend
from agent.config import BellConfig, DeviceConfig
from agent.events import BellEvent, EventStamper, Topics, decode_event
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


def test_the_service_starts_and_reports_that_paragraph(tmp_path: Path) -> None:
    device = DeviceConfig(id="p", site="s", pole="1", latitude=0, longitude=0)
    spool = Spool(tmp_path / "spool.db")
    outbox = Outbox(spool, Topics("pole", "s", "p"), EventStamper("p"))
    svc = BellService(CFG.model_copy(update={"outputs": CFG.outputs}), device, outbox)
    svc.start()  # a missing package is reported to the centre and retried, not an exit
    try:
        svc.stop(5)
        rows = [r for r in spool.next_batch(100) if r.topic.endswith("event/bell")]
        events = [decode_event(r.payload) for r in rows]
        assert isinstance(events[0], BellEvent)
        assert (events[0].ev, events[0].inp) == ("comm_fault", "gpiod")
        assert events[0].why is not None
        assert events[0].why.startswith("open_failed: bell.backend gpiod")
        assert "pole-agent[gpio]" in events[0].why
    finally:
        spool.close()
