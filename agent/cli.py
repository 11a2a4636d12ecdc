"""`pole-agent`: the technician's and operator's commands. Thin: the work is elsewhere.

Each feature package registers its own sub-commands (``register(subparsers)``), listed in
``CLI_MODULES``; this module only parses, dispatches and turns known errors into a
clear paragraph with exit code 2 instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agent import __version__
from agent.errors import EXIT_BAD_INPUT, AgentError, UserError

__all__ = ["CLI_MODULES", "EXIT_BAD_INPUT", "UserError", "main"]

# Modules that add sub-commands: each has register(subparsers).
CLI_MODULES = (
    "agent.cli",
    "agent.centre.cli",
    "agent.detect.cli",
    "agent.bell.cli",
    "agent.technician.cli",
    "agent.spool.cli",
    "agent.model.cli",
    "agent.lookout.cli",
    "agent.centre.lookout.cli",
)

Handler = Callable[[argparse.Namespace], int]


def _cmd_config_validate(args: argparse.Namespace) -> int:
    from agent.config import is_profile, load, load_profile_file

    path = Path(args.file)
    # A profile names no device and no profile of its own: decided by the content, so a
    # profile copied out of firmware_configs/ is still checked as one.
    if args.profile_only or is_profile(path):
        load_profile_file(path)
        print(f"{path}: valid hardware profile")
        return 0
    cfg = load(path)
    print(f"{path}: valid (device {cfg.device.id}, profile {cfg.profile or 'none'})")
    return 0


def _cmd_config_show(args: argparse.Namespace) -> int:
    import yaml

    from agent.config import load, redacted

    cfg = load(args.file)
    data = redacted(cfg)
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), end="")
    return 0


def _cmd_config_schema(args: argparse.Namespace) -> int:
    from agent.config import AgentConfig

    print(json.dumps(AgentConfig.model_json_schema(), indent=2, ensure_ascii=False))
    return 0


def _cmd_assets_fetch(args: argparse.Namespace) -> int:
    from agent import assets

    names = args.names or list(assets.ASSETS)
    for name in names:
        if name not in assets.ASSETS:
            raise UserError(f"no asset {name!r}; known: {', '.join(assets.ASSETS)}")
        path = assets.fetch(name, force=args.force)
        print(f"{name}: {path} (sha256 verified; licence {assets.ASSETS[name].licence})")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from agent.config import load
    from agent.logs import setup, shutdown
    from agent.runner import Runner

    setup(load(args.config).log.level if not args.verbose else "debug")
    try:
        return Runner(args.config).run()
    finally:
        shutdown()  # the last lines (``stopped``) are in the log queue


def _cmd_demo(args: argparse.Namespace) -> int:
    from agent.dev.demo import run_demo

    return run_demo(duration=args.duration, press_after=args.press_after)


def _cmd_contract_schema(args: argparse.Namespace) -> int:
    from agent.contract import write

    for path in write(Path(args.out)):
        print(path)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run",
        help="run the agent with a site file (what the systemd unit starts)",
        description="Run the agent: bell, cameras, detection, the link to the centre. "
        "SIGTERM or Ctrl-C stops it cleanly; SIGHUP re-reads the config.",
    )
    p.add_argument("config", help="the unit's site file (names its hardware profile)")
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser(
        "demo",
        help="run everything on this machine: a private broker, the agent on the sample "
        "video with the bell simulator, the monitor, and (with the centre extra and "
        "PostgreSQL) a private database, the ingest and the operators' console",
    )
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--press-after", type=float, default=8.0, help="simulate a bell press after N s")
    p.set_defaults(func=_cmd_demo)

    cfg = sub.add_parser("config", help="validate, show or describe configuration files")
    csub = cfg.add_subparsers(dest="config_cmd", required=True, metavar="ACTION")
    p = csub.add_parser("validate", help="check a site file (merged with its profile) or a profile")
    p.add_argument("file", help="site file, or a profile in firmware_configs/")
    p.add_argument("--profile-only", action="store_true", help="treat FILE as a hardware profile")
    p.set_defaults(func=_cmd_config_validate)
    p = csub.add_parser("show", help="print the effective merged config, secrets redacted")
    p.add_argument("file", help="site file")
    p.add_argument("--json", action="store_true", help="JSON instead of YAML")
    p.set_defaults(func=_cmd_config_show)
    p = csub.add_parser("schema", help="print the JSON Schema of a config file (for editors)")
    p.set_defaults(func=_cmd_config_schema)

    ast = sub.add_parser("assets", help="fetch the default model and the sample video")
    asub = ast.add_subparsers(dest="assets_cmd", required=True, metavar="ACTION")
    p = asub.add_parser("fetch", help="download into the cache and verify sha256")
    p.add_argument("names", nargs="*", help="model, video (default: both)")
    p.add_argument("--force", action="store_true", help="download again even if cached")
    p.set_defaults(func=_cmd_assets_fetch)

    c = sub.add_parser("contract", help="the MQTT contract: JSON Schemas and AsyncAPI")
    csub = c.add_subparsers(dest="contract_cmd", required=True, metavar="ACTION")
    s = csub.add_parser("schema", help="write JSON Schemas and asyncapi.json into a folder")
    s.add_argument("--out", default="docs/contract", help="folder (default docs/contract)")
    s.set_defaults(func=_cmd_contract_schema)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pole-agent",
        description="Edge agent for city-safety camera poles: emergency bell, "
        "on-device detection, and a durable MQTT link to the control centre.",
    )
    parser.add_argument("--version", action="version", version=f"pole-agent {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in CLI_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    func: Any = args.func
    try:
        return int(func(args))
    except AgentError as exc:
        print(f"pole-agent: {exc.paragraph()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
