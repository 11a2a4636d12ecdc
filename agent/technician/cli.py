"""Sub-commands for technicians: `provision` and `doctor`."""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]

PROMPTS = (
    ("profile", "hardware profile (e.g. rpi4-gpio)", str),
    ("id", "device id", str),
    ("site", "site id", str),
    ("pole", "pole number", str),
    ("location", "location (optional)", str),
    ("address", "road address (optional)", str),
    ("latitude", "latitude", float),
    ("longitude", "longitude", float),
    ("host", "broker host", str),
)


def _ask(values: dict[str, Any], known: dict[str, Any]) -> None:
    """Prompt for what is still missing (only when a person is at the terminal)."""
    for key, label, kind in PROMPTS:
        if values.get(key) is not None or known.get(key) not in (None, ""):
            continue
        while True:
            text = input(f"{label}: ").strip()
            if not text and "optional" in label:
                break
            try:
                values[key] = kind(text)
                break
            except ValueError:
                print(f"  {text!r} is not a {kind.__name__}")


def _request(args: argparse.Namespace) -> Any:
    from agent.errors import UserError
    from agent.technician.provision import Request

    values = {
        "profile": args.profile, "id": args.device_id, "site": args.site, "pole": args.pole,
        "location": args.location, "address": args.address, "latitude": args.lat,
        "longitude": args.lon, "host": args.broker_host, "port": args.broker_port,
        "username": args.username,
    }  # fmt: skip
    req = Request(values=values, cert=args.cert, ca=args.ca)
    req.rotate_key, req.rotate_command_key = args.rotate_key, args.rotate_command_key
    for path in (args.cert, args.ca, args.password_file, args.command_key_file):
        if path is not None and not Path(path).is_file():
            raise UserError(f"provision: {path} does not exist")
    if args.password_file:
        req.password = Path(args.password_file).read_text(encoding="utf-8").strip()
    elif args.generate_password:
        req.password = secrets.token_urlsafe(24)
    if args.command_key_file:
        req.command_key = Path(args.command_key_file).read_text(encoding="ascii").strip()
    return req


def _cmd_provision(args: argparse.Namespace) -> int:
    from agent.errors import UserError
    from agent.technician.openssl import OpenSSLError
    from agent.technician.provision import (
        Layout,
        ProvisionError,
        current_values,
        existing_site,
        provision,
    )

    layout = Layout(Path(args.root), Path(args.config_dir), args.service_group)
    req = _request(args)
    site = existing_site(layout)
    has_password = layout.real(layout.creds / "mqtt-password").exists()
    if sys.stdin.isatty() and not args.no_input:
        _ask(req.values, current_values(site))
        if req.password is None and not has_password:
            req.password = getpass.getpass("MQTT password (empty: none, TLS certificate only): ")
            req.password = req.password or None
    try:
        res = provision(req, layout)
    except (ProvisionError, OpenSSLError) as exc:
        raise UserError(f"provision: {exc}") from None
    for line in res.lines:
        print(line)
    if args.generate_password and req.password:
        user = args.username or req.values.get("id") or current_values(site).get("id")
        print(f"MQTT password for user {user} (register it at the broker; shown once):")
        print(req.password)
    print(f"next: pole-agent doctor {layout.site_file}")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    import logging
    import os

    from agent.technician.doctor import (
        default_credentials,
        passed,
        render_json,
        render_text,
        run_doctor,
    )

    config = Path(args.config)
    creds = args.credentials or os.environ.get("CREDENTIALS_DIRECTORY")
    creds = creds or default_credentials(config)
    if creds:
        # The site file names its secrets as systemd credentials; outside systemd they are
        # read from the provisioned folder next to it.
        os.environ["CREDENTIALS_DIRECTORY"] = str(creds)
    if not args.verbose_checks:
        logging.getLogger().setLevel(logging.ERROR)  # the report is the output, not logs
        os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # read when cv2 is first imported
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    checks = run_doctor(config, outputs=args.outputs)
    if args.json:
        print(render_json(checks, config))
    else:
        print(render_text(checks, colour=sys.stdout.isatty()))
    return 0 if passed(checks) else 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_provision(sub)
    _register_doctor(sub)


def _register_provision(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "provision",
        help="give this unit its identity, site file, device key + CSR and credentials",
        description="Write the unit's site file (0600) from a hardware profile and its "
        "identity; make the device key (EC P-256, on the box) and a CSR for the centre's CA, "
        "or install the certificate and CA the technician brings; store the MQTT password "
        "and the command key where the systemd unit loads them. Prompts for missing values "
        "in a terminal. Safe to re-run: keys are kept unless --rotate-key.",
    )
    p.add_argument("--profile", help="hardware profile, e.g. rpi4-gpio")
    p.add_argument("--device-id", help="device id, unique in the city")
    p.add_argument("--site", help="site (district) id")
    p.add_argument("--pole", help="pole number painted on the pole")
    p.add_argument("--location", help="human-readable place")
    p.add_argument("--address", help="road address")
    p.add_argument("--lat", type=float, help="latitude, WGS84")
    p.add_argument("--lon", type=float, help="longitude, WGS84")
    p.add_argument("--broker-host", help="the centre's broker")
    p.add_argument("--broker-port", type=int, help="broker port (8883 with TLS)")
    p.add_argument("--username", help="MQTT user (default: the device id)")
    p.add_argument("--password-file", help="file holding the MQTT password to store")
    p.add_argument(
        "--generate-password",
        action="store_true",
        help="make a random MQTT password and print it once for the broker admin",
    )
    p.add_argument("--command-key-file", help="install this command key (default: generate)")
    p.add_argument("--cert", type=Path, help="device certificate signed by the centre's CA")
    p.add_argument("--ca", type=Path, help="the CA certificate of the centre's broker")
    p.add_argument("--rotate-key", action="store_true", help="make a new device key and CSR")
    p.add_argument("--rotate-command-key", action="store_true", help="make a new command key")
    p.add_argument("--root", default="/", help="write under this prefix (image builds, tests)")
    p.add_argument("--config-dir", default="/etc/pole-agent", help="config folder on the unit")
    p.add_argument("--no-input", action="store_true", help="never prompt")
    p.add_argument(
        "--service-group",
        default="pole-agent",
        help="group of the service user, given read access to the site file (default pole-agent)",
    )
    p.set_defaults(func=_cmd_provision)


def _register_doctor(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "doctor",
        help="check a unit: config, model, cameras, bell, outputs, broker, clock, disk",
        description="One PASS/FAIL line per check, with what to do on failure; exit 0 only "
        "if nothing fails. Runs without the agent (stop the agent first on hardware whose "
        "inputs it holds).",
    )
    p.add_argument("config", help="the unit's site file, e.g. /etc/pole-agent/site.yaml")
    p.add_argument("--json", action="store_true", help="a JSON report for the installer")
    p.add_argument("--outputs", action="store_true", help="also pulse strobe and siren (loud!)")
    p.add_argument(
        "--credentials", help="folder of the unit's credentials (default: next to the config)"
    )
    p.add_argument("--verbose-checks", action="store_true", help="show the parts' log lines")
    p.set_defaults(func=_cmd_doctor)
