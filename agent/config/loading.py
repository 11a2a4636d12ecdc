"""Reading a site file and its hardware profile, merging them once, validating once."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agent import credentials
from agent.config.checks import cross_checks
from agent.config.model import AgentConfig
from agent.config.report import problems
from agent.config.yamlload import DuplicateKeyError, UniqueKeyLoader
from agent.errors import ConfigError

__all__ = [
    "PLACEHOLDER_DEVICE",
    "config_hash",
    "find_profile",
    "is_profile",
    "load",
    "load_mapping",
    "load_profile_file",
    "profile_dirs",
    "read_yaml",
    "redacted",
    "secret_files",
]


def profile_dirs() -> list[Path]:
    """Where hardware profiles are looked for, first match wins."""
    dirs: list[Path] = []
    env = os.environ.get("POLE_AGENT_PROFILES")
    if env:
        dirs.append(Path(env))
    dirs.append(Path("/etc/pole-agent/firmware_configs"))
    dirs.append(Path(__file__).resolve().parents[2] / "firmware_configs")
    return dirs


def find_profile(name: str) -> Path:
    """The file of hardware profile ``name``; ConfigError when no directory has it."""
    if "/" in name or name.startswith("."):
        raise ConfigError("profile", [f"profile: {name!r} is not a profile name"])
    for d in profile_dirs():
        path = d / f"{name}.yaml"
        if path.is_file():
            return path
    dirs = profile_dirs()
    known = sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.yaml")})
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(
        "profile",
        [
            f"profile: no hardware profile {name!r}{hint}; looked for {name}.yaml in "
            f"{', '.join(str(d) for d in dirs)}; known: {', '.join(known) or 'none'}"
        ],
    )


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), [f"byte {exc.start} is not UTF-8 text"]) from None
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except DuplicateKeyError as exc:
        raise ConfigError(str(path), [str(exc)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(path), [f"{where}not valid YAML ({problem})"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            str(path), [f"the top level must be a mapping, got {type(data).__name__}"]
        )
    return data


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_mapping(data: Mapping[str, Any], source: str = "config") -> AgentConfig:
    """Validate an already merged mapping; ConfigError lists every problem with its path."""
    try:
        cfg = AgentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, problems(exc)) from None
    found = cross_checks(cfg)
    if found:
        raise ConfigError(source, found)
    return cfg


def load(site_file: str | Path) -> AgentConfig:
    """Read a site file, merge it over its hardware profile, validate once."""
    path = Path(site_file)
    site = read_yaml(path)
    profile = site.get("profile")
    merged: dict[str, Any] = site
    if profile is not None:
        if not isinstance(profile, str):
            raise ConfigError(str(path), [f"profile: must be a profile name, got {profile!r}"])
        try:
            profile_file = find_profile(profile)
        except ConfigError as exc:
            raise ConfigError(str(path), exc.problems) from None
        merged = _merge(read_yaml(profile_file), site)
    return load_mapping(merged, str(path))


def redacted(cfg: AgentConfig) -> dict[str, Any]:
    """The config as plain data with every secret replaced by '***'."""
    data = cfg.model_dump(mode="json")
    if cfg.mqtt.password is not None:
        data["mqtt"]["password"] = "***"  # noqa: S105 - the redaction marker, not a password
    return data


def secret_files(cfg: AgentConfig) -> dict[str, str]:
    """Config key -> credential file name, for every secret the unit reads from a file."""
    found: dict[str, str | None] = {
        "mqtt.password_file": cfg.mqtt.password_file,
        "commands.key_file": cfg.commands.key_file,
        "commands.site_key_file": cfg.commands.site_key_file,
        "commands.previous_key_file": cfg.commands.previous_key_file,
        "commands.previous_site_key_file": cfg.commands.previous_site_key_file,
        "bell.preset.password_file": cfg.bell.preset.password_file if cfg.bell.preset else None,
    }
    tls = cfg.mqtt.tls
    if tls is not None:
        found.update({"mqtt.tls.ca": tls.ca, "mqtt.tls.cert": tls.cert, "mqtt.tls.key": tls.key})
    return {k: v for k, v in found.items() if v}


def config_hash(cfg: AgentConfig) -> str:
    """Short stable hash of the effective config and of every secret file's contents.

    A rotated key or password keeps its file name; its digest is what shows the change, so
    a reload after a rotation is not answered "unchanged".
    """
    data = cfg.model_dump(mode="json")
    if cfg.mqtt.password is not None:
        data["mqtt"]["password"] = cfg.mqtt.password.get_secret_value()
    data["_secrets"] = {k: credentials.digest(v) for k, v in secret_files(cfg).items()}
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


PLACEHOLDER_DEVICE = {
    "id": "profile-check",
    "site": "profile-check",
    "pole": "0",
    "latitude": 0.0,
    "longitude": 0.0,
}


def is_profile(path: str | Path) -> bool:
    """A hardware profile, by its content: it names neither a device nor a profile."""
    data = read_yaml(Path(path))
    return "device" not in data and "profile" not in data


def load_profile_file(path: str | Path) -> AgentConfig:
    """Validate a hardware profile on its own, with a placeholder identity."""
    data = read_yaml(Path(path))
    if "device" in data:
        raise ConfigError(str(path), ["device: a hardware profile must not name a device"])
    return load_mapping({**data, "device": PLACEHOLDER_DEVICE}, str(path))
