"""Reload per stage: only what changed is rebuilt, and an alarm outlives every reload."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.config import AgentConfig, load_mapping
from agent.dev.broker import LocalBroker
from agent.reload import open_bell_input, plan, secret_digests
from tests.agentproc import AgentProcess, write_site
from tests.bell.modbus_module import SimModule
from tests.centre.observer import Centre, Received
from tests.control.unit import TOPICS, Unit

DEVICE = {"id": "r-1", "site": "s", "pole": "1", "latitude": 37.5, "longitude": 127.0}


def cfg(**over: Any) -> AgentConfig:
    base: dict[str, Any] = {
        "profile": "dev-sim",
        "device": DEVICE,
        "bell": {"backend": "simulator", "outputs": {"backend": "simulator"}},
        "cameras": [{"id": "c1", "source": "sample"}],
    }
    for key, value in over.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return load_mapping(base)


@pytest.mark.parametrize(
    ("change", "rebuilt"),
    [
        ({"health": {"heartbeat_s": 5}}, set()),
        ({"log": {"level": "debug"}}, set()),
        ({"cameras": [{"id": "c1", "source": "sample", "fps": 2}]}, {"vision"}),
        ({"detection": {"confidence": 0.5}}, {"vision"}),
        ({"bell": {"policy": {"lockout_s": 30}}}, {"bell"}),
        ({"mqtt": {"keepalive_s": 45}}, {"link"}),
        ({"commands": {"max_age_s": 30}}, {"commands"}),
        ({"device": {**DEVICE, "pole": "2"}}, {"link", "commands", "vision", "bell"}),
        ({"mqtt": {"topic_prefix": "city"}}, {"link", "commands", "vision", "bell"}),
    ],
)
def test_only_the_stages_that_read_a_changed_section_are_rebuilt(
    change: dict[str, Any], rebuilt: set[str]
) -> None:
    base = cfg()
    todo = plan(base, cfg(**change), secret_digests(base))
    assert todo.restart_needed is None
    assert set(todo.rebuild) == rebuilt


def test_a_rotated_key_file_rebuilds_the_commands_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    (tmp_path / "command-key").write_text("ab" * 32)
    old = cfg(commands={"key_file": "command-key"})
    applied = secret_digests(old)
    assert plan(old, cfg(commands={"key_file": "command-key"}), applied).nothing
    (tmp_path / "command-key").write_text("cd" * 32)  # same name, new contents
    todo = plan(old, cfg(commands={"key_file": "command-key"}), applied)
    assert set(todo.rebuild) == {"commands"}


def test_the_spool_and_the_device_id_need_a_restart() -> None:
    base = cfg()
    applied = secret_digests(base)
    assert plan(base, cfg(spool={"max_rows": 500}), applied).restart_needed
    assert plan(base, cfg(device={**DEVICE, "id": "r-2"}), applied).restart_needed
    assert plan(base, cfg(), applied).nothing


def _bell(centre: Centre, ev: str, count: int = 1, why: str | None = None) -> list[Received]:
    def match(m: Received) -> bool:
        if not m.topic.endswith("/event/bell"):
            return False
        body = json.loads(m.payload)
        return bool(body["ev"] == ev and (why is None or body.get("why") == why))

    return centre.wait_for(match, count=count, timeout=20)


def _rewrite(site: Path, **over: Any) -> None:
    data = yaml.safe_load(site.read_text())
    for key, value in over.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    site.write_text(yaml.safe_dump(data, allow_unicode=True))


def test_an_alarm_outlives_reloads_of_other_stages_and_of_the_bell_itself(
    tmp_path: Path, broker: LocalBroker, centre: Centre
) -> None:
    """As in the field: a site-wide reload arrives while a bell is ringing."""
    site = write_site(
        tmp_path / "unit",
        broker.port,
        extra={"bell": {"outputs": {"backend": "simulator", "duration_s": 120}}},
    )
    agent = AgentProcess(site)
    try:
        agent.wait_for_output("watching the simulator input")
        agent.press()
        _bell(centre, "activated")
        agent.wait_for_output("strobe and siren ON")
        # 1. A change that does not concern the bell: nothing of the bell is touched.
        _rewrite(site, health={"heartbeat_s": 3})
        agent.signal(signal.SIGHUP)
        agent.wait_for_output("rebuilding: nothing")
        # 2. The bell's own section: rebuilt, and the running alarm handed over.
        _rewrite(site, bell={"policy": {"mode": "immediate", "lockout_s": 1}})
        agent.signal(signal.SIGHUP)
        agent.wait_for_output("rebuilding: bell")
        agent.wait_for_output("watching the simulator input")  # the new bell's input
        system = centre.wait_for(lambda m: m.topic.endswith("/event/system"), count=2)
        assert [json.loads(m.payload)["what"] for m in system] == ["reload", "reload"]
        # The new bell kept the lockout of the alarm it took over (dev-sim: 5 s) ...
        agent.press()
        _bell(centre, "pressed", why="lockout")
        # ... and after it, a press is a new activation.
        time.sleep(5)
        agent.press()
        _bell(centre, "activated", count=2)
        out = agent.output()
        assert "strobe and siren off" not in out  # the outputs never went off
        events = [json.loads(m.payload) for m in list(centre.messages) if "/event/bell" in m.topic]
        assert not [e for e in events if e["ev"] == "outputs_off"], events
    finally:
        assert agent.stop() == 0


def test_a_reload_that_cannot_be_built_keeps_everything(
    tmp_path: Path, broker: LocalBroker, centre: Centre
) -> None:
    """A password file typo validates but cannot be read: refused, the running link stays."""
    site = write_site(tmp_path / "unit", broker.port)
    agent = AgentProcess(site)
    try:
        centre.wait_for(lambda m: m.topic.endswith("/status") and b"online" in m.payload)
        _rewrite(site, mqtt={"username": "u", "password_file": str(tmp_path / "no-such-file")})
        agent.signal(signal.SIGHUP)
        agent.wait_for_output("reload refused")
        fault = centre.wait_for(lambda m: m.topic.endswith("/event/system"))[0].json()
        assert (fault["ev"], fault["what"]) == ("fault", "reload")
        assert "no-such-file" in fault["why"]
        agent.press()
        _bell(centre, "activated")
        assert agent.proc.poll() is None
    finally:
        assert agent.stop() == 0


def test_a_reloaded_vision_carries_on_numbering_tracks(
    tmp_path: Path, broker: LocalBroker, centre: Centre
) -> None:
    """A track id names one track per camera and boot: a reload that rebuilds vision
    gives its new process ids above every one the old process gave (and may have recorded
    in the appearance index without reporting)."""
    camera = {"id": "cam1", "source": "sample", "loop": True, "fps": 5}
    site = write_site(tmp_path / "unit", broker.port, cameras=[camera])
    agent = AgentProcess(site)

    def objects() -> list[dict[str, Any]]:
        return [json.loads(m.payload) for m in list(centre.messages)
                if m.topic.endswith("/event/object")]  # fmt: skip

    try:
        centre.wait_for(lambda m: m.topic.endswith("/event/object"), count=3, timeout=60)
        _rewrite(site, detection={"confidence": 0.4})
        agent.signal(signal.SIGHUP)
        agent.wait_for_output("rebuilding: vision")
        before = max(e["tid"] for e in objects())  # the old process may still be reporting
        n = len(objects())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
            e["ev"] == "start" and e["tid"] > before for e in objects()[n:]
        ):
            time.sleep(0.2)
        started = [e["tid"] for e in objects()[n:] if e["ev"] == "start"]
        assert started, "no track started after the reload"
        new = [t for t in started if t > before]
        assert new, (before, started)
        assert min(new) > before + 1  # the handed-over ids leave a gap, never a reuse
    finally:
        assert agent.stop() == 0


def _modbus(port: str, **more: Any) -> dict[str, Any]:
    modbus = {"port": port, "poll_ms": 20, **more}
    return {"backend": "modbus", "modbus": modbus, "outputs": {"backend": "simulator"}}


@pytest.fixture
def modules() -> Iterator[tuple[SimModule, SimModule]]:
    """Two simulated Modbus modules, each on its own real pty."""
    a, b = SimModule(unit=1), SimModule(unit=1)
    yield a, b
    a.close()
    b.close()


def _press(unit: Unit, module: SimModule) -> None:
    """A press on the module's contact, seen by the centre as a ``pressed`` bell event."""
    since = time.monotonic()
    module.inputs[0] = True
    try:
        unit.wait_bell("pressed", since)
    finally:
        module.inputs[0] = False
    unit.wait_bell("released", since)


def _reload_faults(unit: Unit, count: int) -> list[dict[str, Any]]:
    def match(m: Received) -> bool:
        return m.topic == TOPICS.event("system") and m.json()["what"] == "reload"

    events: list[dict[str, Any]] = [m.json() for m in unit.centre.wait_for(match, count=count)]
    return events


def test_a_reload_to_a_bell_input_that_cannot_be_opened_keeps_the_running_bell(
    tmp_path: Path, modules: tuple[SimModule, SimModule]
) -> None:
    """The new serial port is missing, then held exclusively: the reload is refused with the
    port and the reason, and the running bell keeps polling its own module (no blind gap)."""
    module, other = modules
    unit = Unit(tmp_path, site={"bell": _modbus(module.path)})
    held = -1
    try:
        unit.agent.wait_for_output("watching the modbus input")
        _press(unit, module)
        # 1. A port that does not exist: the command answers why, the agent does not reload.
        missing = str(tmp_path / "ttyUSB-gone")
        unit.write_site({**unit.config, "bell": _modbus(missing)})
        res = unit.send("reload")
        assert res.res == "rejected", res
        assert res.why is not None
        assert missing in res.why
        assert "the running config and bell stay" in res.why
        # 2. The same file by SIGHUP (no one to answer): the log and a reload fault say why.
        unit.agent.signal(signal.SIGHUP)
        unit.agent.wait_for_output("reload refused")
        (fault,) = _reload_faults(unit, 1)
        assert (fault["ev"], fault["what"]) == ("fault", "reload")
        assert missing in fault["why"]
        assert module.path in fault["why"]  # the input the running bell keeps watching
        _press(unit, module)  # the old bell still watches its module
        # 3. A port another process holds exclusively (pyserial's exclusive open: flock).
        held = os.open(other.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        unit.write_site({**unit.config, "bell": _modbus(other.path)})
        res = unit.send("reload")
        assert res.res == "rejected", res
        assert res.why is not None
        assert other.path in res.why
        assert "lock" in res.why
        unit.agent.signal(signal.SIGHUP)
        fault = _reload_faults(unit, 2)[-1]
        assert fault["ev"] == "fault"
        assert other.path in fault["why"]
        _press(unit, module)
        assert not unit.bell_events("comm_fault")
        assert unit.proc.poll() is None
        # 4. Once the port is free, the same file applies and the new bell watches it.
        os.close(held)
        held = -1
        unit.agent.signal(signal.SIGHUP)
        applied = _reload_faults(unit, 3)[-1]
        assert applied["ev"] == "notice", applied
        _press(unit, other)
        # 5. Other settings of the same port: not opened twice (it is opened exclusively).
        unit.write_site({**unit.config, "bell": _modbus(other.path, timeout_ms=150)})
        unit.agent.signal(signal.SIGHUP)
        applied = _reload_faults(unit, 4)[-1]
        assert applied["ev"] == "notice", applied
        _press(unit, other)
        assert not unit.bell_events("comm_fault")
    finally:
        if held >= 0:
            os.close(held)
        unit.close()


def test_a_new_bell_input_that_cannot_be_opened_is_closed_again(tmp_path: Path) -> None:
    """The refused bell leaves nothing open: its waker pipe and its port are closed."""
    from agent.bell.service import BellService
    from agent.events import EventStamper, Topics
    from agent.outbox import Outbox
    from agent.spool import Spool

    old = cfg(bell=_modbus(str(tmp_path / "ttyA")))
    new = cfg(bell=_modbus(str(tmp_path / "ttyB")))
    spool = Spool(tmp_path / "spool.db")
    try:
        outbox = Outbox(spool, Topics("pole", "s", "r-1"), EventStamper("r-1"))
        bell = BellService(new.bell, new.device, outbox)
        fds = set(os.listdir("/proc/self/fd"))
        with pytest.raises(Exception, match="ttyB"):
            open_bell_input(old.bell, bell)
        assert bell.waker.fileno() == -1
        assert set(os.listdir("/proc/self/fd")) <= fds
    finally:
        spool.close()


@pytest.mark.parametrize(
    ("old", "new", "opened_first"),
    [
        ({"gpiod": {"chip": "pinctrl-bcm2711", "button": "BELL"}}, {"button": "BELL2"}, True),
        # A chip's label and its /dev path may be one chip: the same line is the same device.
        (
            {"gpiod": {"chip": "pinctrl-bcm2711", "button": "BELL"}},
            {"chip": "/dev/gpiochip0"},
            False,
        ),
        # A line the old bell holds (here its door contact) cannot be requested twice.
        ({"gpiod": {"chip": "c", "button": "BELL", "tamper": "DOOR"}}, {"button": "DOOR"}, False),
    ],
)
def test_which_new_gpio_inputs_are_opened_before_the_handover(
    old: dict[str, Any], new: dict[str, Any], opened_first: bool
) -> None:
    from agent.reload import moves_input

    bell = {"backend": "gpiod", "outputs": {"backend": "none"}, **old}
    before = cfg(bell=bell).bell
    after = cfg(bell={**bell, "gpiod": {**old["gpiod"], **new}}).bell
    assert moves_input(before, after) is opened_first


def test_a_serial_port_by_another_name_is_the_same_port(tmp_path: Path) -> None:
    from agent.reload import moves_input

    (tmp_path / "by-id").symlink_to("/dev/ttyUSB0")
    before = cfg(bell=_modbus("/dev/ttyUSB0")).bell
    assert not moves_input(before, cfg(bell=_modbus(str(tmp_path / "by-id"))).bell)
    assert moves_input(before, cfg(bell=_modbus("/dev/ttyUSB1")).bell)
    # Enabling a bell: the disabled one held nothing, so its input is tried before the swap.
    off = cfg(bell={**_modbus("/dev/ttyUSB0"), "enabled": False}).bell
    assert moves_input(off, cfg(bell=_modbus("/dev/ttyUSB0")).bell)
    assert not moves_input(before, off)
