"""`pole-agent provision`: turn a blank box into a unit with an identity and credentials.

Writes, under ``<root><config_dir>`` (``/etc/pole-agent`` on a unit):

- ``site.yaml`` (0640, owner root, group of the service user ``pole-agent``, so that the
  unit's ``User=pole-agent`` can read it and nobody else can; it holds no secret): profile,
  identity, broker, credentials by name; validated with
  ``agent.config.load`` before it atomically replaces the old one.  Sections a
  technician added by hand (cameras, zones) are kept.
- ``credentials/`` (0700): ``device.key`` (EC P-256, made here, never leaves the box),
  ``mqtt-password`` and ``command-key`` (0600) — the names the systemd unit's
  ``LoadCredential=`` lines load, so the site file refers to them by these bare names.
- ``tls/`` (0755): ``device.csr`` for the centre's CA, and ``device.crt`` and ``ca.pem``
  once the technician brings them.

Re-running is safe: existing keys and secrets are kept unless a rotation is asked for.
"""

from __future__ import annotations

import grp
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.config import ConfigError, load
from agent.control.auth import KeyFileError, generate_key, load_key
from agent.errors import AgentError
from agent.technician import openssl

__all__ = ["Layout", "ProvisionError", "Request", "Result", "provision"]

IDENTITY = ("profile", "id", "site", "pole", "latitude", "longitude", "host")
STATE_SPOOL = "/var/lib/pole-agent/spool.db"
SERVICE_GROUP = "pole-agent"  # the systemd unit's Group=


class ProvisionError(AgentError):
    """Provisioning cannot go on; nothing half-written is left as the site file."""


@dataclass(frozen=True)
class Layout:
    """Where things go: ``config_dir`` as the unit sees it, written under ``root``."""

    root: Path = Path("/")
    config_dir: Path = Path("/etc/pole-agent")
    service_group: str = SERVICE_GROUP

    def real(self, final: Path) -> Path:
        return self.root / final.relative_to(final.anchor)

    @property
    def site_file(self) -> Path:
        return self.config_dir / "site.yaml"

    @property
    def creds(self) -> Path:
        return self.config_dir / "credentials"

    @property
    def tls(self) -> Path:
        return self.config_dir / "tls"


@dataclass
class Request:
    """What the technician gave; None means keep what is there (or ask)."""

    values: dict[str, Any] = field(default_factory=dict)  # profile, id, site, pole, ...
    password: str | None = None
    command_key: str | None = None
    cert: Path | None = None
    ca: Path | None = None
    rotate_key: bool = False
    rotate_command_key: bool = False


@dataclass
class Result:
    site_file: Path
    lines: list[str] = field(default_factory=list)
    csr: Path | None = None
    generated_command_key: bool = False


def existing_site(layout: Layout) -> dict[str, Any]:
    """The current site file as plain data ({} when there is none)."""
    path = layout.real(layout.site_file)
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def current_values(site: dict[str, Any]) -> dict[str, Any]:
    """The identity fields as ``Request.values`` names them, from an existing site file."""
    dev, mqtt = site.get("device") or {}, site.get("mqtt") or {}
    out = {"profile": site.get("profile"), "host": mqtt.get("host"), "port": mqtt.get("port")}
    out["username"] = mqtt.get("username")
    for key in ("id", "site", "pole", "location", "address", "latitude", "longitude"):
        out[key] = dev.get(key)
    return {k: v for k, v in out.items() if v is not None}


def _write_secret(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    os.replace(tmp, path)


def _dirs(layout: Layout) -> None:
    for final, mode in ((layout.config_dir, 0o755), (layout.creds, 0o700), (layout.tls, 0o755)):
        path = layout.real(final)
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(mode)


def _device_key(layout: Layout, req: Request, values: dict[str, Any], res: Result) -> Path:
    key = layout.real(layout.creds / "device.key")
    if req.rotate_key or not key.exists():
        openssl.make_key(key)
        res.lines.append(f"device key: generated {key} (EC P-256; it never leaves this box)")
        old_cert = layout.real(layout.tls / "device.crt")
        if old_cert.exists() and req.cert is None:
            old_cert.replace(old_cert.with_suffix(".crt.old"))
            res.lines.append(f"certificate: {old_cert} was for the old key; moved aside")
    else:
        res.lines.append(f"device key: kept {key}")
    csr = layout.real(layout.tls / "device.csr")
    openssl.make_csr(key, csr, device=values["id"], site=values["site"])
    res.csr = csr
    res.lines.append(f"CSR: {csr} -> send it to the centre's CA (CN={values['id']})")
    return key


def _install_tls(layout: Layout, req: Request, key: Path, res: Result) -> None:
    ca_path = layout.real(layout.tls / "ca.pem")
    cert_path = layout.real(layout.tls / "device.crt")
    if req.ca is not None:
        shutil.copyfile(req.ca, ca_path)
        ca_path.chmod(0o644)
        res.lines.append(f"CA: installed {ca_path}")
    if req.cert is not None:
        if not openssl.cert_matches_key(req.cert, key):
            raise ProvisionError(
                f"{req.cert} was not issued for this unit's key {key}; send the CSR "
                f"{res.csr} to the centre's CA and bring the certificate it returns"
            )
        if ca_path.exists():
            openssl.verify_chain(req.cert, ca_path)
        shutil.copyfile(req.cert, cert_path)
        cert_path.chmod(0o644)
        res.lines.append(f"certificate: installed {cert_path} (matches the device key)")


def _secrets(layout: Layout, req: Request, res: Result) -> None:
    pw = layout.real(layout.creds / "mqtt-password")
    if req.password is not None:
        _write_secret(pw, req.password)
        res.lines.append(f"MQTT password: stored in {pw}")
    elif pw.exists():
        res.lines.append(f"MQTT password: kept {pw}")
    ck = layout.real(layout.creds / "command-key")
    if req.command_key is not None:
        _write_secret(ck, req.command_key)
        res.lines.append(f"command key: stored in {ck}")
    elif req.rotate_command_key or not ck.exists():
        _write_secret(ck, generate_key())
        res.generated_command_key = True
        res.lines.append(f"command key: generated {ck}; give it to the centre (secure channel)")
    else:
        res.lines.append(f"command key: kept {ck}")
    try:
        load_key(str(ck))
    except KeyFileError as exc:
        raise ProvisionError(str(exc)) from None


def _compose(layout: Layout, site: dict[str, Any], v: dict[str, Any]) -> dict[str, Any]:
    out = dict(site)
    out["profile"] = v["profile"]
    device = {k: v[k] for k in ("id", "site", "pole", "latitude", "longitude")}
    device.update({k: v[k] for k in ("location", "address") if v.get(k)})
    out["device"] = device
    mqtt = {
        k: val
        for k, val in (site.get("mqtt") or {}).items()
        if k not in {"host", "port", "username", "password", "password_env", "password_file", "tls"}
    }
    mqtt["host"] = v["host"]
    if v.get("port"):
        mqtt["port"] = int(v["port"])
    if layout.real(layout.creds / "mqtt-password").exists():
        mqtt["username"] = v.get("username") or v["id"]
        mqtt["password_file"] = "mqtt-password"  # noqa: S105 - a credential name, not a secret
    ca, cert = layout.tls / "ca.pem", layout.tls / "device.crt"
    if layout.real(ca).exists():
        tls: dict[str, str] = {"ca": str(ca)}
        if layout.real(cert).exists():
            tls.update(cert=str(cert), key="device.key")
        mqtt["tls"] = tls
    out["mqtt"] = mqtt
    out["commands"] = {**(site.get("commands") or {}), "key_file": "command-key"}
    out.setdefault("spool", {"path": STATE_SPOOL})
    return out


def _validated_file(layout: Layout, data: dict[str, Any]) -> Path:
    """The site text in a temporary file next to the real one, checked by ``load``."""
    path = layout.real(layout.site_file)
    tmp = path.with_name(f".{path.name}.new")
    head = "# Written by `pole-agent provision`; re-run it to change identity or credentials.\n"
    text = head + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    try:
        load(tmp)
    except ConfigError as exc:
        tmp.unlink()
        raise ProvisionError(
            f"the site file would not be valid, so nothing was written:\n{exc.report()}"
        ) from None
    return tmp


def _share_with_service(path: Path, group: str, final: Path) -> str:
    """Give the site file to the service's group, readable (0640); say what was done."""
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        path.chmod(0o600)
        return (
            f"site file: {final} (mode 0600, valid); WARNING: group {group!r} does not exist, "
            f"so the service user cannot read it yet: create the user "
            f"(useradd --system --user-group {group}) and re-run provision"
        )
    os.chown(path, 0 if os.geteuid() == 0 else -1, gid)
    path.chmod(0o640)
    return f"site file: {final} (mode 0640, group {group}, valid)"


def provision(req: Request, layout: Layout) -> Result:
    """Do it; ProvisionError (or openssl.OpenSSLError) says what stopped it."""
    site = existing_site(layout)
    values = {**current_values(site), **{k: v for k, v in req.values.items() if v is not None}}
    missing = [k for k in IDENTITY if values.get(k) in (None, "")]
    if missing:
        raise ProvisionError(f"missing: {', '.join(missing)} (give them as flags)")
    res = Result(site_file=layout.real(layout.site_file))
    _dirs(layout)
    # Check the identity before making keys for it; the final check comes at the end.
    _validated_file(layout, _compose(layout, site, values)).unlink()
    key = _device_key(layout, req, values, res)
    _install_tls(layout, req, key, res)
    _secrets(layout, req, res)
    tmp = _validated_file(layout, _compose(layout, site, values))
    res.lines.append(_share_with_service(tmp, layout.service_group, res.site_file))
    os.replace(tmp, res.site_file)
    return res
