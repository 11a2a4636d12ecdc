"""The CLI as a technician runs it: subprocesses, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    "profile", sorted((ROOT / "firmware_configs").glob("*.yaml")), ids=lambda p: p.stem
)
def test_validate_each_profile(profile: Path) -> None:
    proc = cli("config", "validate", str(profile))
    assert proc.returncode == 0, proc.stderr
    assert "valid hardware profile" in proc.stdout


def test_a_profile_copied_elsewhere_is_still_a_profile(tmp_path: Path) -> None:
    """A technician's own copy of a profile, outside firmware_configs/, is judged by content."""
    copy = tmp_path / "my-box.yaml"
    copy.write_text((ROOT / "firmware_configs/rpi4-gpio.yaml").read_text())
    proc = cli("config", "validate", str(copy))
    assert proc.returncode == 0, proc.stderr
    assert "valid hardware profile" in proc.stdout


def test_validate_example_site() -> None:
    proc = cli("config", "validate", "examples/dev-site.yaml")
    assert proc.returncode == 0, proc.stderr
    assert "device dev-0001" in proc.stdout


def test_bad_file_exits_2_with_one_report(tmp_path: Path) -> None:
    bad = tmp_path / "site.yaml"
    bad.write_text(
        "profile: dev-sim\ndevice: {id: a, site: b, pole: '1', latitude: 0, longitude: 0}\n"
        "mqtt: {port: 70000}\n"
    )
    proc = cli("config", "validate", str(bad))
    assert proc.returncode == 2
    assert "mqtt.port: must be <= 65535, got 70000" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_file_exits_2(tmp_path: Path) -> None:
    proc = cli("config", "validate", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2
    assert "cannot read the file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_show_redacts_secrets(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        "profile: dev-sim\ndevice: {id: a, site: b, pole: '1', latitude: 0, longitude: 0}\n"
        "mqtt: {username: pole, password: hunter2}\n"
    )
    proc = cli("config", "show", "--json", str(site))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["mqtt"]["password"] == "***"
    assert data["bell"]["backend"] == "simulator"  # merged from the profile
    assert "hunter2" not in proc.stdout + proc.stderr


def test_schema_is_json_schema() -> None:
    proc = cli("config", "schema")
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    assert schema["additionalProperties"] is False
    assert "mqtt" in schema["properties"]


def test_help_lists_commands() -> None:
    proc = cli("--help")
    for word in ("run", "config", "assets", "monitor", "contract", "demo"):
        assert word in proc.stdout


def test_spool_dead_lists_the_set_aside_rows_read_only(tmp_path: Path) -> None:
    from agent.events import Priority
    from agent.spool import Spool

    path = tmp_path / "spool.db"
    spool = Spool(path)
    spool.put("pole/s/d/snapshot/e1", b"\xff" * 300, Priority.MEDIA)
    spool.set_aside(spool.next_batch(1)[0], "too_large: 300 bytes, the broker takes at most 200")
    spool.close()
    before = path.read_bytes()
    proc = cli("spool", "dead", "--file", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "1 message(s) set aside, 0 older ones dropped" in proc.stdout
    assert "media  pole/s/d/snapshot/e1  300 bytes" in proc.stdout
    assert "too_large: 300 bytes, the broker takes at most 200" in proc.stdout
    assert path.read_bytes() == before  # opened read-only


def test_spool_dead_on_a_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    proc = cli("spool", "dead", "--file", str(tmp_path / "nope.db"))
    assert proc.returncode == 2
    assert "nope.db does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
