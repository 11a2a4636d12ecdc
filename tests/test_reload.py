"""Reload per stage: only what changed is rebuilt, and an alarm outlives every reload."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.config import AgentConfig, load_mapping
from agent.dev.broker import LocalBroker
from agent.reload import plan, secret_digests
from tests.agentproc import AgentProcess, write_site
from tests.centre.observer import Centre, Received

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
