"""Sub-commands of the centre's side: `monitor` and `contract schema`."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def _cmd_monitor(args: argparse.Namespace) -> int:
    from agent.config import load
    from agent.mqtt.monitor import Monitor, connect_client

    host, port, prefix = args.host, args.port, args.prefix
    username, password, ca, cert, key = args.username, None, args.ca, args.cert, args.key
    if args.password_file:
        password = Path(args.password_file).read_text(encoding="utf-8").strip()
    if args.config:
        cfg = load(args.config)
        host = host or cfg.mqtt.host
        port = port or cfg.mqtt.port
        prefix = prefix or cfg.mqtt.topic_prefix
        args.site = args.site or cfg.device.site
        args.device = args.device or cfg.device.id
        if cfg.mqtt.tls and not ca:
            ca = cfg.mqtt.tls.ca
    prefix = prefix or "pole"
    site = args.site or "+"
    topic = f"{prefix}/{site}/{args.device}/#" if args.device else f"{prefix}/{site}/#"
    client = connect_client(
        host or "127.0.0.1",
        port or 1883,
        username=username,
        password=password,
        tls_ca=ca,
        tls_cert=cert,
        tls_key=key,
    )
    monitor = Monitor(client, topic, as_json=args.json, count=args.count)
    counts = monitor.run(host or "127.0.0.1", port or 1883, timeout=args.timeout)
    if not args.json:
        print(
            f"-- {counts['events']} events, {counts['duplicates']} duplicates, "
            f"{counts['gaps']} gaps, {counts['invalid']} invalid messages"
        )
    return 1 if counts["invalid"] else 0


def _cmd_contract_schema(args: argparse.Namespace) -> int:
    from agent.contract import write

    for path in write(Path(args.out)):
        print(path)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "monitor",
        help="watch a pole or a site as the centre sees it (validates, dedups, shows gaps)",
    )
    p.add_argument("--config", help="take broker and device from this site file")
    p.add_argument("--host", help="broker host (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="broker port (default 1883)")
    p.add_argument("--prefix", help="topic prefix (default pole)")
    p.add_argument("--site", help="site id (default: all sites)")
    p.add_argument("--device", help="device id (default: every device of the site)")
    p.add_argument("--username", help="MQTT user name")
    p.add_argument("--password-file", help="file holding the MQTT password")
    p.add_argument("--ca", help="CA certificate for TLS")
    p.add_argument("--cert", help="client certificate for TLS")
    p.add_argument("--key", help="client key for TLS")
    p.add_argument("--json", action="store_true", help="print raw messages as JSON lines")
    p.add_argument("--count", type=int, help="stop after this many events")
    p.add_argument("--timeout", type=float, help="stop after this many seconds")
    p.set_defaults(func=_cmd_monitor)

    c = sub.add_parser("contract", help="the MQTT contract: JSON Schemas and AsyncAPI")
    csub = c.add_subparsers(dest="contract_cmd", required=True, metavar="ACTION")
    s = csub.add_parser("schema", help="write JSON Schemas and asyncapi.json into a folder")
    s.add_argument("--out", default="docs/contract", help="folder (default docs/contract)")
    s.set_defaults(func=_cmd_contract_schema)
