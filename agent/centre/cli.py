"""Sub-commands of the centre's side: `monitor`, `send`, `centre migrate|ingest`."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from agent import credentials

if TYPE_CHECKING:
    from agent.centre.sender import SendResult

__all__ = ["register"]


def _cmd_monitor(args: argparse.Namespace) -> int:
    from agent.centre.liveness import Liveness
    from agent.centre.monitor import Monitor, connect_client

    access, prefix, site = _broker_target(args, need_site=False)
    if args.config and not args.device:
        from agent.config import load

        args.device = load(args.config).device.id
    site = site or "+"
    topic = f"{prefix}/{site}/{args.device}/#" if args.device else f"{prefix}/{site}/#"
    client = connect_client(
        access.host, access.port, username=access.username, password=access.password,
        tls_ca=access.ca, tls_cert=access.cert, tls_key=access.key, v5=args.protocol == "5",
    )  # fmt: skip
    liveness = Liveness(args.silent_after)
    monitor = Monitor(
        client,
        topic,
        as_json=args.json,
        count=args.count,
        liveness=liveness,
        reorder_window_s=args.reorder_window,
    )
    counts = monitor.run(access.host, access.port, timeout=args.timeout)
    if not args.json:
        print(
            f"-- {counts['events']} events, {counts['duplicates']} duplicates, "
            f"{counts['gaps']} gaps, {counts['invalid']} invalid messages"
        )
    return 1 if counts["invalid"] else 0


def _parse_arg(text: str) -> tuple[str, Any]:
    from agent.errors import UserError

    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise UserError(f"--arg {text!r}: expected NAME=VALUE")
    try:
        return name, json.loads(raw)  # numbers, true/false, null, "quoted strings", {...}
    except ValueError:
        return name, raw  # anything else is a plain string


def _broker_target(args: argparse.Namespace, need_site: bool = True) -> tuple[Any, str, str]:
    """(BrokerAccess, prefix, site) from the broker flags, completed from --config."""
    from agent.centre.sender import BrokerAccess
    from agent.config import load
    from agent.errors import UserError

    host, port, prefix, site, ca = args.host, args.port, args.prefix, args.site, args.ca
    if args.config:
        cfg = load(args.config)
        host, port = host or cfg.mqtt.host, port or cfg.mqtt.port
        prefix, site = prefix or cfg.mqtt.topic_prefix, site or cfg.device.site
        ca = ca or (cfg.mqtt.tls.ca if cfg.mqtt.tls else None)
    if need_site and not site:
        raise UserError("give --site (or --config with the unit's site file)")
    password = None
    if args.password_file:
        password = credentials.read_text(args.password_file, "password")
    access = BrokerAccess(
        host or "127.0.0.1", port or 1883, args.username, password, ca, args.cert, args.key
    )
    return access, prefix or "pole", site or ""


def _broker_args(p: argparse.ArgumentParser, site_help: str) -> None:
    """The flags that say how to reach the centre's broker, shared by monitor and send."""
    p.add_argument("--config", help="take broker, prefix and site from this site file")
    p.add_argument("--host", help="broker host (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="broker port (default 1883)")
    p.add_argument("--prefix", help="topic prefix (default pole)")
    p.add_argument("--site", help=site_help)
    p.add_argument("--username", help="MQTT user name (the centre's account)")
    p.add_argument("--password-file", help="file holding the MQTT password")
    p.add_argument("--ca", help="CA certificate for TLS")
    p.add_argument("--cert", help="client certificate for TLS")
    p.add_argument("--key", help="client key for TLS")
    p.add_argument(
        "--protocol",
        choices=["5", "3.1.1"],
        default="5",
        help="MQTT version (default 5; 3.1.1 for NATS or RabbitMQ)",
    )


def _send_key(args: argparse.Namespace) -> bytes | None:
    from agent.control.auth import KeyFileError, load_key
    from agent.errors import UserError

    if args.unsigned:
        return None
    if not args.key_file:
        raise UserError("send: give --key-file (the device's command key), or --unsigned")
    try:
        return load_key(args.key_file)
    except KeyFileError as exc:
        raise UserError(f"send: {exc}") from None


def exchange(
    args: argparse.Namespace,
    device: str,
    command: str,
    cmd_args: dict[str, Any],
    req: str | None = None,
) -> tuple[str, SendResult]:
    """Sign (``--key-file``) and publish a command to ``device`` (``_site``: the whole site,
    every answer collected until ``--timeout``); (request id, SendResult)."""
    from agent.centre.sender import request_command

    access, prefix, site = _broker_target(args)
    return request_command(
        access, prefix=prefix, site=site, device=device, command=command,
        key=_send_key(args), args=cmd_args, timeout=args.timeout,
        v5=args.protocol == "5", req=req,
    )  # fmt: skip


def _cmd_send(args: argparse.Namespace) -> int:
    from agent.events import encode

    cmd_args = dict(_parse_arg(a) for a in args.arg)
    req, out = exchange(args, args.device, args.command, cmd_args, args.req)
    if out.error or not out.results:
        why = out.error or f"no result for {args.command} (req {req}) within {args.timeout:g} s"
        print(f"send: {why}")
        return 1
    for event in out.results.values():
        if args.json:
            print(encode(event).decode())
        else:
            why = f": {event.why}" if event.why else ""
            data = f" {json.dumps(event.data, ensure_ascii=False)}" if event.data else ""
            print(f"{event.dev} {event.cmd} {event.res}{why}{data}")
    return 0 if all(e.res == "ok" for e in out.results.values()) else 1


def _register_send(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "send",
        help="send a signed command to a pole and print its result (exit 0 when ok)",
        description="Sign COMMAND with the device's command key, publish it on "
        "<prefix>/<site>/DEVICE/cmd/COMMAND and wait for the matching cmd_result. DEVICE "
        "'_site' broadcasts to the whole site (signed with the site key) and collects every "
        "answer until --timeout. Example: pole-agent send dev-0001 bell-ack --site gangnam "
        "--key-file dev-0001.cmdkey",
    )
    p.add_argument("device", help="device id, or _site for a site broadcast")
    p.add_argument(
        "command", help="ping, config-get, reload, snapshot, bell-test, bell-ack, arm, disarm"
    )
    p.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help='an argument; VALUE is JSON if it parses (30, true, "30"), else text',
    )
    p.add_argument("--key-file", help="the device's (or site's) command key, 64 hex digits")
    p.add_argument("--unsigned", action="store_true", help="send without a mac (for testing)")
    p.add_argument("--req", help="request id (default: random)")
    _broker_args(p, "site id of the device")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait (default 10)")
    p.add_argument("--json", action="store_true", help="print the result events as JSON lines")
    p.set_defaults(func=_cmd_send)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "monitor",
        help="watch a pole or a site as the centre sees it (validates, dedups, shows gaps)",
    )
    _broker_args(p, "site id (default: all sites)")
    p.add_argument("--device", help="device id (default: every device of the site)")
    p.add_argument("--json", action="store_true", help="print raw messages as JSON lines")
    p.add_argument("--count", type=int, help="stop after this many events")
    p.add_argument("--timeout", type=float, help="stop after this many seconds")
    p.add_argument(
        "--silent-after",
        type=float,
        metavar="SECONDS",
        help="show a pole OFFLINE (silent) after this long without a heartbeat "
        "(default: 3 heartbeat periods, learnt from its heartbeats; 90 s until known)",
    )
    p.add_argument(
        "--reorder-window",
        type=float,
        default=30.0,
        metavar="S",
        help="a missing seq is reported lost only after S seconds (default 30)",
    )
    p.set_defaults(func=_cmd_monitor)

    _register_send(sub)

    from agent.centre.ingest import cli as ingest_cli

    ingest_cli.register(sub)
