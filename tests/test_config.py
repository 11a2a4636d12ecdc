"""Config loading: every profile, the layering, and a table of bad files with their messages."""

from __future__ import annotations

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
        "cameras[0]: rule 'r' names zone 'nope', not defined",
    ),
    ({"cameras": [{"id": "c1"}]}, "cameras[0].source: required"),
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
        ("profile: no-such-box\n", "profile: no hardware profile 'no-such-box'; known: "),
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
