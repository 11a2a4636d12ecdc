"""Commands end to end: a real broker, the agent as a process, results through the spool."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from agent.control.auth import make_request
from tests.control.unit import DEVICE_KEY, ROOT, SECRET, TOPICS, Unit


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Unit]:
    u = Unit(tmp_path_factory.mktemp("cmd"))
    yield u
    u.close()
    assert "Traceback" not in u.output()


# --------------------------------------------------------------------------- happy paths
def test_ping_echoes_with_version_and_boot(unit: Unit) -> None:
    res = unit.send("ping", {"echo": "안녕"})
    assert res.res == "ok"
    assert res.cmd == "ping"
    assert res.dev == "dev-1"
    assert res.data is not None
    assert res.data["echo"] == "안녕"
    assert res.data["ver"]
    assert res.data["boot"] == res.boot


def test_config_get_redacts_secrets(unit: Unit) -> None:
    req, payload = unit.request("config-get")
    unit.publish("config-get", payload)
    res = unit.result(req)
    assert res.res == "ok"
    assert res.data is not None
    assert res.data["config"]["device"]["id"] == "dev-1"
    assert res.data["config"]["mqtt"]["password"] == "***"
    raw = [m.payload for m in unit.centre.messages if b'"req":"' + req.encode() in m.payload]
    assert raw
    assert all(SECRET.encode() not in p for p in raw)


def test_bell_test_window_marks_a_simulated_press(unit: Unit) -> None:
    since = time.monotonic()
    res = unit.send("bell-test", {"duration_s": 30, "press_s": 0.2})
    assert res.res == "ok"
    assert unit.wait_bell("test_started", since).get("test") is True
    activated = unit.wait_bell("activated", since)
    assert activated["test"] is True
    assert unit.wait_bell("released", since)["test"] is True
    assert unit.send("bell-test", {"action": "end"}).res == "ok"
    unit.wait_bell("test_ended", since)
    # Outside the window a press is real again.
    since = time.monotonic()
    unit.press()
    assert "test" not in unit.wait_bell("activated", since)
    unit.wait_bell("released", since)  # the next test presses again: a new edge
    unit.send("bell-ack")


def test_bell_ack_silences_the_outputs(unit: Unit) -> None:
    since = time.monotonic()
    unit.press()
    unit.wait_bell("activated", since)
    unit.wait_bell("released", since)
    res = unit.send("bell-ack")
    assert res.res == "ok"
    off = unit.wait_bell("outputs_off", since)
    assert off["why"] == "ack"

    def silent(m: object) -> bool:
        topic, payload = getattr(m, "topic", ""), getattr(m, "payload", b"")
        return topic == TOPICS.state("bell") and json.loads(payload)["detail"]["driven"] is False

    unit.centre.wait_for(silent)


def test_reload_good_then_bad_file(unit: Unit) -> None:
    good = {**unit.config, "health": {"heartbeat_s": 300}}
    unit.write_site(good)
    res = unit.send("reload")
    assert res.res == "ok"
    assert res.data is not None
    assert res.data["changed"] is True
    # The agent rebuilt its stages; a command sent afterwards is answered by the new ones.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        again = unit.send("ping")
        if again.data is not None and again.data["cfg"] == res.data["cfg"]:
            break
        time.sleep(0.2)
    assert again.data is not None
    assert again.data["cfg"] == res.data["cfg"]
    bad = {**good, "health": {"heartbeat_s": "often"}}
    unit.write_site(bad)
    try:
        res = unit.send("reload")
    finally:
        unit.write_site(good)
    assert res.res == "rejected"
    assert res.why is not None
    assert "health.heartbeat_s" in res.why
    assert "running config stays" in res.why
    assert unit.proc.poll() is None
    assert unit.send("ping").res == "ok"


def test_snapshot_and_arming_without_cameras(unit: Unit) -> None:
    res = unit.send("snapshot")
    assert res.res == "failed"
    assert res.why == "no camera is running on this unit"
    res = unit.send("arm", {"name": "walkway", "for_s": 60})
    assert res.res == "rejected"
    assert res.why is not None
    assert "no rule or zone named 'walkway'" in res.why


def test_site_broadcast_with_the_site_key(unit: Unit) -> None:
    assert unit.send("ping", site=True).res == "ok"
    res = unit.send("bell-ack", site=True)
    assert res.res == "rejected"
    assert res.why is not None
    assert res.why.startswith("not for broadcast")


# --------------------------------------------------------------------------- rejections
def _rejected(unit: Unit, name: str, payload: bytes, req: str) -> str:
    unit.publish(name, payload)
    res = unit.result(req)
    assert res.res == "rejected", res
    assert res.why is not None
    return res.why


def test_unsigned(unit: Unit) -> None:
    req, payload = unit.request("ping", mac=None)
    assert _rejected(unit, "ping", payload, req).startswith("unsigned")


def test_bad_signature(unit: Unit) -> None:
    req, payload = unit.request("ping", mac="00" * 32)
    assert _rejected(unit, "ping", payload, req).startswith("bad signature")


def test_signed_for_another_device(unit: Unit) -> None:
    req, payload = make_request(DEVICE_KEY, "pole/lab/dev-2/cmd/ping")
    assert _rejected(unit, "ping", payload, req).startswith("bad signature")


def test_expired_and_future(unit: Unit) -> None:
    now = time.time_ns() // 1_000_000
    for ts, word in ((now - 120_000, "expired"), (now + 120_000, "from the future")):
        topic = TOPICS.cmd("ping")
        req, payload = make_request(DEVICE_KEY, topic, ts=ts)
        assert _rejected(unit, "ping", payload, req).startswith(word)


def test_replayed(unit: Unit) -> None:
    req, payload = unit.request("ping")
    unit.publish("ping", payload)
    assert unit.result(req).res == "ok"
    unit.publish("ping", payload)
    unit.centre.wait_for(lambda m: m.topic == TOPICS.cmd_result and b"replayed" in m.payload)


def test_unknown_command(unit: Unit) -> None:
    req, payload = unit.request("reboot")
    assert _rejected(unit, "reboot", payload, req).startswith("unknown command 'reboot'")


def test_oversized(unit: Unit) -> None:
    req, payload = unit.request("ping", {"echo": "x" * 150}, pad="y" * 2000)
    assert _rejected(unit, "ping", payload, req).startswith("payload of ")


def test_invalid_json_with_and_without_req(unit: Unit) -> None:
    unit.publish("ping", b"\x00\xff not json")  # nobody to answer: dropped and counted
    req = "broken-json-1"
    why = _rejected(unit, "ping", b'{"req": "broken-json-1", "ts": 12,', req)
    assert why.startswith("not valid JSON")


def test_wrong_types_name_the_field(unit: Unit) -> None:
    req, payload = unit.request("bell-test", {"duration_s": "long"})
    why = _rejected(unit, "bell-test", payload, req)
    assert why.startswith("invalid arguments: args.duration_s")
    req, payload = unit.request("ping", ts="yesterday")
    assert _rejected(unit, "ping", payload, req).startswith("invalid command: ts")


def test_the_agent_survived(unit: Unit) -> None:
    assert unit.proc.poll() is None
    assert "message dropped (invalid_json)" in unit.output()


# --------------------------------------------------------------------------- other units
def test_rate_limit(tmp_path: Path) -> None:
    u = Unit(tmp_path, rate_per_min=3)
    try:
        results = [u.send("ping").res for _ in range(5)]
        assert results == ["ok", "ok", "ok", "rejected", "rejected"]
    finally:
        u.close()


def test_snapshot_and_arming_with_a_camera(tmp_path: Path) -> None:
    """The sample video as the camera (detection off: only capture, rules and snapshots)."""
    camera = {"id": "cam1", "source": "sample", "loop": True, "fps": 5}
    dev_sim = yaml.safe_load((ROOT / "firmware_configs/dev-sim.yaml").read_text())
    camera |= {k: dev_sim["cameras"][0][k] for k in ("zones", "rules", "privacy_masks")}
    u = Unit(tmp_path, site={"cameras": [camera], "detection": {"enabled": False}})
    try:
        deadline = time.monotonic() + 15
        while True:  # the first frames take a moment after start
            res = u.send("snapshot", {"camera": "cam1"})
            if res.res == "ok" or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert res.res == "ok", res.why
        assert res.data is not None
        jpeg = u.centre.on_topic(f"/snapshot/{res.data['snap']}")[0]
        assert res.data["topic"] == jpeg.topic
        assert jpeg.payload[:3] == b"\xff\xd8\xff"  # a JPEG
        assert u.send("snapshot", {"camera": "cam9"}).res == "rejected"
        res = u.send("disarm", {"name": "walkway", "for_s": 600})
        assert res.res == "ok"
        assert res.data == {"name": "walkway", "armed": False, "for_s": 600.0}
        assert u.send("arm", {"name": "walkway-intrusion"}).res == "ok"
        res = u.send("arm", {"name": "nowhere"})
        assert res.res == "rejected"
        assert res.why is not None
        assert "walkway-crowd" in res.why  # the known names are listed
    finally:
        u.close()


def test_without_a_key_everything_is_refused(tmp_path: Path) -> None:
    u = Unit(tmp_path, key_file=None)
    try:
        res = u.send("ping")
        assert res.res == "rejected"
        assert res.why == "commands are disabled on this unit: no commands.key_file configured"
    finally:
        u.close()


# --------------------------------------------------------------------------- the operator's tool
def _send_cli(unit: Unit, *args: str, key: bool = True) -> subprocess.CompletedProcess[str]:
    (unit.folder / "cmd.key").write_text(DEVICE_KEY.hex())
    cmd = [sys.executable, "-m", "agent", "send", *args, "--site", "lab"]
    cmd += ["--port", str(unit.broker.port), "--timeout", "5"]
    cmd += ["--key-file", str(unit.folder / ("cmd.key" if key else "site.key"))]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)


def test_pole_agent_send(unit: Unit) -> None:
    done = _send_cli(unit, "dev-1", "ping", "--arg", "echo=hello", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["res"] == "ok"
    assert result["data"]["echo"] == "hello"
    done = _send_cli(unit, "dev-1", "bell-test", "--arg", "duration_s=soon")
    assert done.returncode == 1
    assert "dev-1 bell-test rejected: invalid arguments: args.duration_s" in done.stdout
    done = _send_cli(unit, "_site", "ping", key=False)  # the site key, every unit answers
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("dev-1 ping ok")
    done = _send_cli(unit, "dev-9", "ping")  # nobody there
    assert done.returncode == 1
    assert "no result for ping" in done.stdout
