"""`pole-agent spool dead`: the messages the broker would never take, for a technician.

Read-only: the spool file is opened with SQLite's ``mode=ro``, so running it next to the
agent changes nothing and takes no write lock.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["register"]


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _spool_file(args: argparse.Namespace) -> Path:
    from agent.errors import UserError

    if args.file is not None:
        return Path(args.file)
    if args.config is None:
        raise UserError("spool dead: name the site file (CONFIG) or the spool file (--file)")
    from agent.config import load

    return Path(load(args.config).spool.path)


def _cmd_dead(args: argparse.Namespace) -> int:
    import sqlite3

    from agent.errors import UserError
    from agent.events import Priority
    from agent.spool.dead import read_dead

    path = _spool_file(args)
    if not path.is_file():
        raise UserError(f"spool dead: {path} does not exist")
    try:
        rows, dropped = read_dead(path)
    except sqlite3.Error as exc:
        raise UserError(f"spool dead: {path} cannot be read: {exc}") from exc
    if args.json:
        out = {
            "file": str(path),
            "dropped": dropped,
            "dead": [
                {"id": r.id, "row": r.row_id, "pri": r.priority, "topic": r.topic,
                 "bytes": r.size, "retain": r.retain, "created": r.created_ms,
                 "dead_at": r.dead_ms, "reason": r.reason}
                for r in rows
            ],
        }  # fmt: skip
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    print(f"{path}: {len(rows)} message(s) set aside, {dropped} older ones dropped")
    for r in rows:
        pri = Priority(r.priority).name.lower() if r.priority in set(Priority) else r.priority
        print(f"{_utc(r.dead_ms)} UTC  row {r.row_id}  {pri}  {r.topic}  {r.size} bytes")
        print(f"    {r.reason}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("spool", help="look into the unit's spool (read-only)")
    ssub = p.add_subparsers(dest="spool_cmd", required=True, metavar="ACTION")
    d = ssub.add_parser(
        "dead",
        help="list the messages set aside because the broker will never take them",
        description="List the spool's dead-letter table: messages set aside because the "
        "broker will never take them (too large, or it dropped the connection each time). "
        "Opens the spool file read-only.",
    )
    d.add_argument("config", nargs="?", help="the unit's site file (names the spool file)")
    d.add_argument("--file", help="the spool file itself, instead of a site file")
    d.add_argument("--json", action="store_true", help="JSON instead of text")
    d.set_defaults(func=_cmd_dead)
