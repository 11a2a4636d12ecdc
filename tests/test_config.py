"""Config loading: every profile, the layering, and a table of bad files with their messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agent.config import (
    AgentConfig,
    ConfigError,
    config_hash,
    load,
    load_profile_file,
    redacted,
)

ROOT = Path(__file__).resolve().parent.parent
PROFILES = sorted((ROOT / "firmware_configs").glob("*.yaml"))
DEVICE = {
    "id": "gn-0412",
    "site": "seoul-gangnam",
    "pole": "GN-0412",
    "latitude": 37.5,
    "longitude": 127.03,
}


def write(tmp_path: Path, data: dict[str, object] | str, name: str = "site.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True))
    return path


def test_there_are_at_least_three_profiles() -> None:
    assert {p.stem for p in PROFILES} >= {"rpi4-gpio", "ipc-rs485", "dev-sim"}


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_every_profile_validates_alone_and_under_a_site(profile: Path, tmp_path: Path) -> None:
    assert isinstance(load_profile_file(profile), AgentConfig)
    cfg = load(write(tmp_path, {"profile": profile.stem, "device": DEVICE}))
    assert cfg.device.id == "gn-0412"
    assert cfg.profile == profile.stem


def test_site_overrides_profile_key_by_key(tmp_path: Path) -> None:
    site = {
        "profile": "rpi4-gpio",
        "device": DEVICE,
        "mqtt": {"host": "mqtt.example", "port": 18883},
        "bell": {"policy": {"mode": "hold", "hold_s": 5}},
    }
    cfg = load(write(tmp_path, site))
    assert cfg.mqtt.host == "mqtt.example"
    assert cfg.mqtt.port == 18883
    assert cfg.mqtt.tls is not None  # kept from the profile
    assert cfg.bell.policy.mode == "hold"
    assert cfg.bell.policy.hold_s == 5
    assert cfg.bell.policy.lockout_s == 10  # from the profile
    assert cfg.bell.backend == "gpiod"


def test_config_is_frozen(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, {"profile": "dev-sim", "device": DEVICE}))
    with pytest.raises(ValueError, match="frozen"):
        cfg.mqtt.port = 1  # type: ignore[misc]


def test_secrets_are_redacted_but_change_the_hash(tmp_path: Path) -> None:
    site = {"profile": "dev-sim", "device": DEVICE, "mqtt": {"password": "hunter2"}}
    cfg = load(write(tmp_path, site))
    assert "hunter2" not in str(redacted(cfg))
    assert "hunter2" not in repr(cfg)
    other = load(write(tmp_path, {**site, "mqtt": {"password": "other"}}, "b.yaml"))
    assert config_hash(cfg) != config_hash(other)


BAD = [
    ({"mqtt": {"port": 70000}}, "mqtt.port: must be <= 65535, got 70000"),
    ({"mqtt": {"bogus": 1}}, "mqtt.bogus: unknown key"),
    ({"device": {**DEVICE, "id": "Pole 1"}}, "device.id: must match"),
    ({"device": {**DEVICE, "latitude": 95}}, "device.latitude: must be <= 90.0, got 95"),
    ({"device": {k: v for k, v in DEVICE.items() if k != "site"}}, "device.site: required"),
    ({"detection": {"input_size": 500}}, "detection.input_size: must be a multiple of 32"),
    ({"detection": {"provider": "gpu"}}, "detection.provider: must be one of"),
    ({"bell": {"backend": "modbus"}}, "bell: backend 'modbus' needs a 'modbus' section"),
    ({"bell": {"policy": {"hold_s": -1}}}, "bell.policy.hold_s: must be > 0"),
    (
        {"mqtt": {"password": "a", "password_file": "b"}},
        "mqtt: give one of password_file, password_env, password",
    ),
    (
        {
            "cameras": [
                {
                    "id": "c1",
                    "source": "x",
                    "rules": [{"name": "r", "type": "loitering", "zone": "nope"}],
                }
            ]
        },
        "cameras[0].rules[0].zone: rule 'r' names zone 'nope', which camera 'c1' does not define",
    ),
    ({"cameras": [{"id": "c1"}]}, "cameras[0].source: required"),
    (
        {"cameras": [{"id": "c1", "source": "x"}, {"id": "c2", "source": "rtps://10.0.0.2/s"}]},
        "cameras[1].source: unknown scheme 'rtps://' (known: rtsp://, rtsps://, http://",
    ),
    ({"detection": {"model": "/nonexistent/yolo.onnx"}}, "detection.model: no such file"),
    (
        {"mqtt": {"tls": {"ca": "ca.pem", "cert": "c.pem"}}},
        "mqtt.tls: 'cert' and 'key' go together",
    ),
]


@pytest.mark.parametrize(("override", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_files_name_the_field(
    override: dict[str, object], message: str, tmp_path: Path
) -> None:
    site = {"profile": "dev-sim", "device": DEVICE, **override}
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, site))
    assert any(p.startswith(message) for p in info.value.problems), info.value.problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    site = {"profile": "dev-sim", "device": {**DEVICE, "latitude": 95}, "mqtt": {"port": 0, "x": 1}}
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, site))
    assert len(info.value.problems) == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("profile: dev-sim\ndevice: [1, 2\n", "line 3, column 1: not valid YAML"),
        ("- a\n- b\n", "the top level must be a mapping, got list"),
        ("profile: no-such-box\n", "profile: no hardware profile 'no-such-box'; looked for "),
        ("profile: ../etc/passwd\n", "profile: '../etc/passwd' is not a profile name"),
    ],
)
def test_unreadable_files(text: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text))
    assert info.value.problems[0].startswith(message), info.value.problems


def test_non_utf8_file_names_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_bytes(b"profile: dev-sim\n\xff\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.problems == ["byte 17 is not UTF-8 text"]


def test_password_from_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mqtt-password").write_text("s3cret\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    cfg = load(write(tmp_path, {"profile": "rpi4-gpio", "device": DEVICE}))
    assert cfg.mqtt.resolve_password() == "s3cret"


def test_a_key_given_twice_names_the_key_and_both_lines(tmp_path: Path) -> None:
    text = "profile: dev-sim\nmqtt:\n  host: a.example\ndevice:\n  id: x\nmqtt:\n  port: 1884\n"
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text))
    assert info.value.problems == [
        "line 6: key 'mqtt' is given twice in the same mapping (first on line 2); YAML would "
        "keep only the last one, so merge the two"
    ]


def test_a_misspelt_profile_names_the_site_file_the_folders_and_a_guess(tmp_path: Path) -> None:
    path = write(tmp_path, {"profile": "rpi4-gpoi", "device": DEVICE})
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.source == str(path)
    (problem,) = info.value.problems
    assert problem.startswith(
        "profile: no hardware profile 'rpi4-gpoi' (did you mean 'rpi4-gpio'?)"
    )
    assert "/etc/pole-agent/firmware_configs" in problem
    assert "firmware_configs" in problem.split("known:")[0]
    assert "known: dev-sim, ipc-rs485, rpi4-gpio" in problem


@pytest.mark.parametrize(
    "override",
    [
        "mqtt:\n  host: a\nmqtt:\n  host: b\n",
        "cameras:\n  - id: c1\n    source: rtps://x/y\n",
        "detection:\n  model: missing.onnx\n",
        "cameras:\n  - id: c1\n    source: x\n    rules:\n"
        "      - {name: r, type: intrusion, zone: z}\n",
    ],
    ids=["twice", "scheme", "model", "zone"],
)
def test_technician_typos_exit_2_with_a_paragraph(override: str, tmp_path: Path) -> None:
    """As a technician meets them: the CLI prints the problem and exits 2, no traceback."""
    site = tmp_path / "site.yaml"
    device = "device: {id: a1, site: s, pole: '1', latitude: 37.5, longitude: 127.0}\n"
    site.write_text("profile: dev-sim\n" + device + override)
    done = subprocess.run(
        [sys.executable, "-m", "agent", "config", "validate", str(site)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"pole-agent: {site}: 1 problem(s) in the configuration")


def test_a_rotated_secret_changes_the_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same file names, new contents (a rotated key or password): the hash shows it."""
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    (tmp_path / "mqtt-password").write_text("one\n")
    (tmp_path / "command-key").write_text("ab" * 32 + "\n")
    site = {
        "profile": "dev-sim",
        "device": DEVICE,
        "mqtt": {"password_file": "mqtt-password"},
        "commands": {"key_file": "command-key"},
    }
    path = write(tmp_path, site)
    first = config_hash(load(path))
    assert config_hash(load(path)) == first
    (tmp_path / "command-key").write_text("cd" * 32 + "\n")
    second = config_hash(load(path))
    assert second != first
    (tmp_path / "mqtt-password").write_text("two\n")
    assert config_hash(load(path)) not in {first, second}
