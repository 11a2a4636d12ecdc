"""`pole-agent doctor`: passes on a working unit, fails on the right line for each fault."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.dev.broker import BrokerTls, LocalBroker
from tests.bell.modbus_module import SimModule
from tests.tls import make_pki

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pole-pw"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker with a password for dev-1 (overrides the anonymous one)."""
    b = LocalBroker(tmp_path / "broker", passwords={"dev-1": PASSWORD}, persistence=False)
    b.start()
    yield b
    b.stop()


def site(tmp_path: Path, port: int, **over: Any) -> Path:
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    data: dict[str, Any] = {
        "profile": "dev-sim",
        "device": {"id": "dev-1", "site": "lab", "pole": "L-1", "latitude": 37.5, "longitude": 127},
        "cameras": [{"id": "cam1", "source": "sample", "fps": 5}],
        "detection": {"model": "default"},
        "bell": {"simulator": {"socket": str(tmp_path / "bell.sock")}},
        "mqtt": {
            "host": "127.0.0.1",
            "port": port,
            "username": "dev-1",
            "password_file": str(tmp_path / "pw"),
        },
        "spool": {"path": str(tmp_path / "var/spool.db")},
        **over,
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def doctor(config: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "agent", "doctor", str(config), "--json", *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    report = json.loads(done.stdout)
    return done.returncode, {c["name"]: c for c in report["checks"]} | {"_ok": report["ok"]}


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {k: v["status"] for k, v in report.items() if k != "_ok"}


def test_a_working_unit_passes(tmp_path: Path, broker: LocalBroker) -> None:
    code, report = doctor(site(tmp_path, broker.port), "--outputs")
    assert code == 0, report
    assert report["_ok"] is True
    got = statuses(report)
    assert got.pop("clock") in ("pass", "warn")  # a container may not know its NTP state
    assert got == dict.fromkeys(
        ["config", "model", "camera cam1", "bell input", "outputs", "broker", "disk"], "pass"
    )
    assert report["model"]["data"]["latency_ms"] > 0
    assert report["camera cam1"]["data"]["width"] == 768
    assert "round trip" in report["broker"]["detail"]


def test_text_output_has_a_line_per_check(tmp_path: Path, broker: LocalBroker) -> None:
    config = site(tmp_path, broker.port, cameras=[])
    done = subprocess.run(
        [sys.executable, "-m", "agent", "doctor", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    assert lines[0].startswith("PASS  config")
    assert any(line.startswith("SKIP  model") for line in lines)
    assert any(line.startswith("PASS  broker") for line in lines)
    assert lines[-1] == "all checks passed"


@pytest.mark.parametrize(
    ("fault", "line", "words"),
    [
        ("password", "broker", "refused the login"),
        ("model", "model", "bad.onnx"),
        ("camera", "camera cam1", "cannot open"),
        ("broker down", "broker", "cannot reach"),
    ],
)
def test_each_fault_fails_its_own_line(
    tmp_path: Path, broker: LocalBroker, fault: str, line: str, words: str
) -> None:
    over: dict[str, Any] = {}
    if fault == "model":
        # A model file that is there but broken (a missing one is a config problem, below).
        (tmp_path / "bad.onnx").write_bytes(b"\x08\x07 not a model")
        over["detection"] = {"model": str(tmp_path / "bad.onnx")}
    if fault == "camera":
        over["cameras"] = [{"id": "cam1", "source": "rtsp://127.0.0.1:9/dead"}]
        over["detection"] = {"enabled": False}  # the camera alone is under test
    config = site(tmp_path, broker.port, **over)
    if fault == "password":
        (tmp_path / "pw").write_text("wrong\n")
    if fault == "broker down":
        broker.stop()
    code, report = doctor(config)
    assert code == 1
    failed = [k for k, s in statuses(report).items() if s == "fail"]
    assert failed == [line]
    assert words in report[line]["detail"]
    assert report[line]["fix"]


def test_a_missing_model_file_is_a_config_problem(tmp_path: Path) -> None:
    config = site(tmp_path, 1883, detection={"model": str(tmp_path / "missing.onnx")})
    code, report = doctor(config)
    assert code == 1
    assert statuses(report) == {"config": "fail"}
    assert "detection.model: no such file" in report["config"]["detail"]


def test_an_invalid_config_stops_at_the_first_line(tmp_path: Path) -> None:
    config = site(tmp_path, 1883, health={"heartbeat_s": "often"})
    code, report = doctor(config)
    assert code == 1
    assert statuses(report) == {"config": "fail"}
    assert "health.heartbeat_s" in report["config"]["detail"]


def test_provision_then_doctor_over_mutual_tls_and_the_shipped_acl(tmp_path: Path) -> None:
    """The technician's path: provision, the CA signs the CSR, provision again, doctor."""
    pki = tmp_path / "pki"
    make_pki(pki)
    acl = (ROOT / "docs/mosquitto/acl.example").read_text()
    b = LocalBroker(
        tmp_path / "broker",
        passwords={"gn-0042": PASSWORD, "centre": "c"},
        acl=acl,
        tls=BrokerTls(pki / "centre-ca.crt", pki / "broker.crt", pki / "broker.key"),
        persistence=False,
    ).start()
    try:
        etc = tmp_path / "etc"
        (tmp_path / "pw").write_text(PASSWORD)
        base = [sys.executable, "-m", "agent", "provision", "--no-input", "--config-dir", str(etc)]
        first = [
            *base, "--profile", "dev-sim", "--device-id", "gn-0042", "--site", "gangnam",
            "--pole", "GN-042", "--lat", "37.5", "--lon", "127.03", "--broker-host",
            "127.0.0.1", "--broker-port", str(b.port), "--password-file", str(tmp_path / "pw"),
        ]  # fmt: skip
        subprocess.run(first, check=True, capture_output=True, timeout=60)
        data = yaml.safe_load((etc / "site.yaml").read_text())
        data["cameras"] = []  # a unit without cameras; kept by the next provision run
        data["bell"] = {"simulator": {"socket": str(tmp_path / "bell.sock")}}
        data["spool"] = {"path": str(tmp_path / "spool.db")}
        (etc / "site.yaml").write_text(yaml.safe_dump(data))
        cert = tmp_path / "device.crt"
        subprocess.run(
            ["openssl", "x509", "-req", "-in", str(etc / "tls/device.csr"), "-CA",
             str(pki / "centre-ca.crt"), "-CAkey", str(pki / "centre-ca.key"),
             "-CAcreateserial", "-days", "2", "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        again = [*base, "--cert", str(cert), "--ca", str(pki / "centre-ca.crt")]
        subprocess.run(again, check=True, capture_output=True, timeout=60)
        code, report = doctor(etc / "site.yaml")
        assert report["broker"]["status"] == "pass", report["broker"]
        assert "(TLS)" in report["broker"]["detail"]
        assert code == 0, report
    finally:
        b.stop()


@pytest.mark.parametrize("mode", ["ok", "dead"])
def test_a_modbus_bell_input_and_its_outputs(
    tmp_path: Path, broker: LocalBroker, mode: str
) -> None:
    """A simulated RS-485 module on a real pty: the level is shown, a dead module fails."""
    module = SimModule(unit=1)
    try:
        module.inputs[0] = True  # someone holds the button
        module.mode = mode  # type: ignore[assignment]
        bell = {
            "backend": "modbus",
            "modbus": {"port": module.path, "poll_ms": 20, "timeout_ms": 60, "button": 0},
            "outputs": {"backend": "modbus", "strobe": "4", "siren": "5"},
        }
        config = site(tmp_path, broker.port, cameras=[], bell=bell)
        code, report = doctor(config, "--outputs")
    finally:
        module.close()
    if mode == "ok":
        assert code == 0, report
        assert report["bell input"]["data"]["levels"] == {"button": 1.0}
        assert "button=1" in report["bell input"]["detail"]
        assert report["outputs"]["status"] == "pass"
        assert module.coils == {4: False, 5: False}  # pulsed, and left off
    else:
        assert code == 1
        failed = [k for k, s in statuses(report).items() if s == "fail"]
        assert failed == ["bell input", "outputs"]
        assert "failed polls" in report["bell input"]["detail"]


def test_every_broker_of_the_unit_is_checked(tmp_path: Path, broker: LocalBroker) -> None:
    """A unit fails over between its brokers, so the doctor tries each; one dead one fails."""
    dead = LocalBroker(tmp_path / "dead", passwords={"dev-1": PASSWORD}, persistence=False)
    dead_port = dead.port  # chosen, never started
    mqtt = {
        "hosts": [f"127.0.0.1:{broker.port}", f"127.0.0.1:{dead_port}"],
        "username": "dev-1",
        "password_file": str(tmp_path / "pw"),
    }
    code, report = doctor(site(tmp_path, broker.port, mqtt=mqtt, cameras=[]))
    assert code == 1
    detail = report["broker"]["detail"]
    assert f"127.0.0.1:{dead_port} (1 of 2 brokers answered)" in detail
    assert "cannot reach" in detail


def test_a_missing_password_file_is_a_clear_failure(tmp_path: Path, broker: LocalBroker) -> None:
    config = site(tmp_path, broker.port, cameras=[])
    (tmp_path / "pw").unlink()
    code, report = doctor(config)
    assert code == 1
    assert report["broker"]["status"] == "fail"
    assert "cannot read the MQTT password" in report["broker"]["detail"]
