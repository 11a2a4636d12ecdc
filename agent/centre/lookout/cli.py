"""`pole-agent lookout send|watch|cancel|scan|audit`.

``send`` builds a lookout from flags and/or a description (``--describe``), shows the slots
for confirmation, signs it with the site key and broadcasts it; ``watch`` collects the
candidates from every pole; ``cancel`` ends it; ``scan`` runs the pole's pipeline and matcher
over a video file; ``audit`` prints a pole's audit log.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent.errors import UserError

__all__ = ["build_args", "check_args", "new_id", "parse_duration", "register", "wire_args"]

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?"
                       r"(?:(\d+(?:\.\d+)?)s?)?$")  # fmt: skip
_FLAG = {
    "vehicle_colour": "--vehicle-colour", "vehicle_type": "--vehicle-type", "items": "--item",
    "since_s": "--since", "for_s": "--for", "min_score": "--min-score",
    "max_candidates": "--max-candidates", "hist": "--similar",
}  # fmt: skip


def parse_duration(text: str, flag: str) -> float:
    """``2h``, ``90m``, ``1h30m``, ``45s``, ``1d`` or plain seconds; UserError naming the flag."""
    m = _DURATION.match(text.strip().lower())
    if not text.strip() or m is None or not any(m.groups()):
        raise UserError(f"{flag} {text!r}: expected a duration such as 2h, 90m, 1h30m or 45s")
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s


def _list(values: list[str] | None) -> list[str]:
    """Repeated flags and comma-separated values alike: ``--upper red,navy --upper white``."""
    return [v.strip().lower() for raw in values or [] for v in raw.split(",") if v.strip()]


def build_args(ns: argparse.Namespace, lookout_id: str) -> tuple[Any, list[str], list[str]]:
    """LookoutArgs from the flags and ``--describe``; also the unknown words and notes."""
    from agent.centre.lookout.describe import describe

    slots: dict[str, Any] = {}
    unknown: list[str] = []
    notes: list[str] = []
    if getattr(ns, "describe", None):
        found = describe(ns.describe)
        slots, unknown, notes = found.slots, found.unknown, found.notes
    for name in ("upper", "lower", "vehicle_colour"):
        if _list(getattr(ns, name)):
            slots[name] = _list(getattr(ns, name))
    if _list(ns.item):
        slots["items"] = _list(ns.item)
    for name in ("size", "riding", "vehicle_type"):
        if getattr(ns, name):
            slots[name] = getattr(ns, name)
    if slots.get("vehicle_colour") or slots.get("vehicle_type"):
        slots["cls"] = "vehicle"
    if ns.similar:
        slots["hist"] = ns.similar
        slots["cls"] = getattr(ns, "similar_class", None) or "person"
    args = {
        "id": lookout_id, **slots,
        "since_s": parse_duration(ns.since, "--since"), "for_s": parse_duration(ns.for_, "--for"),
        "min_score": ns.min_score, "max_candidates": ns.max_candidates,
    }  # fmt: skip
    return check_args(args), unknown, notes


def check_args(args: dict[str, Any], names: dict[str, str] = _FLAG) -> Any:
    """LookoutArgs from ``args``; a UserError naming each bad field as ``names`` says
    (the flags here; the console passes its form's field names)."""
    from agent.control.gate import errors_text
    from agent.control.lookout import LookoutArgs

    try:
        return LookoutArgs.model_validate(args)
    except ValidationError as exc:
        text = errors_text(exc)
        for field, name in names.items():
            text = re.sub(rf"\b{field}\b", name, text)
        raise UserError(f"lookout: {text}") from None


def new_id() -> str:
    """A fresh lookout id: ``lk-<local time>-<4 hex digits>``."""
    return f"lk-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def wire_args(spec: Any) -> dict[str, Any]:
    """The ``lookout`` command's arguments as sent: the id and what differs from defaults."""
    return dict(spec.model_dump(mode="json", exclude_defaults=True) | {"id": spec.id})


def _show(spec: Any, unknown: list[str], notes: list[str]) -> str:
    asked = spec.asked()
    lines = [f"lookout {spec.id}"]
    lines += [f"  {k:<15} {', '.join(v) if isinstance(v, list) else v}" for k, v in asked.items()]
    lines.append(
        f"  look back {spec.since_s:g} s, watch {spec.for_s:g} s, min score "
        f"{spec.min_score:g}, at most {spec.max_candidates} per pole"
    )
    lines += [f"  note: {n}" for n in notes]
    if unknown:
        lines.append(f"  words not understood (not used): {', '.join(unknown)}")
    return "\n".join(lines)


def _confirm(ns: argparse.Namespace) -> None:
    if ns.yes:
        return
    if not sys.stdin.isatty():
        raise UserError("lookout send: confirm the slots with --yes when not at a terminal")
    if input("send this lookout to every pole of the site? [y/N] ").strip().lower() not in (
        "y",
        "yes",
        "예",
        "네",
    ):
        raise UserError("lookout send: not sent")


def _broadcast(ns: argparse.Namespace, command: str, args: dict[str, Any]) -> int:
    from agent.centre.cli import exchange

    _req, out = exchange(ns, "_site", command, args)
    if out.error:
        print(f"lookout {command}: {out.error}")
        return 1
    for event in out.results.values():
        why = f": {event.why}" if event.why else ""
        data = f" {json.dumps(event.data, ensure_ascii=False)}" if event.data else ""
        print(f"  {event.dev} {event.res}{why}{data}")
    if not out.results:
        print(f"  no pole answered within {ns.timeout:g} s")
    return 0 if any(e.res == "ok" for e in out.results.values()) else 1


def _cmd_send(ns: argparse.Namespace) -> int:
    lookout_id = ns.id or new_id()
    spec, unknown, notes = build_args(ns, lookout_id)
    print(_show(spec, unknown, notes))
    _confirm(ns)
    print(spec.id, flush=True)
    return _broadcast(ns, "lookout", wire_args(spec))


def _cmd_cancel(ns: argparse.Namespace) -> int:
    from agent.control.lookout import LookoutCancelArgs

    try:
        LookoutCancelArgs(id=ns.id)
    except ValidationError:
        raise UserError(f"lookout cancel: ID {ns.id!r} is not a lookout id") from None
    print(ns.id, flush=True)
    return _broadcast(ns, "lookout-cancel", {"id": ns.id})


def _cmd_watch(ns: argparse.Namespace) -> int:
    from agent.centre.cli import _broker_target
    from agent.centre.lookout.watch import CandidateBoard, LookoutWatch
    from agent.centre.monitor import connect_client

    access, prefix, site = _broker_target(ns, need_site=False)
    client = connect_client(
        access.host, access.port, username=access.username, password=access.password,
        tls_ca=access.ca, tls_cert=access.cert, tls_key=access.key, v5=ns.protocol == "5",
    )  # fmt: skip
    board = CandidateBoard(ns.id, Path(ns.out) if ns.out else None)
    watch = LookoutWatch(client, prefix, site or "+", board)
    watch.start(access.host, access.port)
    try:
        watch.run(ns.timeout, lambda text: print(text + "\n", flush=True))
    except KeyboardInterrupt:
        pass
    finally:
        watch.stop()
    if ns.json:
        for row in board.rows():
            print(json.dumps(row, ensure_ascii=False))
    return 0


def _cmd_scan(ns: argparse.Namespace) -> int:
    from agent.centre.lookout.scan import scan

    video = Path(ns.video)
    if not video.is_file():
        raise UserError(f"VIDEO: {video} does not exist or is not a file")
    spec, unknown, notes = build_args(ns, "scan")
    print(_show(spec, unknown, notes))
    result = scan(video, spec, Path(ns.out), fps=ns.fps)
    print(f"{result.frames} frames analysed, {result.records} records, "
          f"{len(result.candidates)} candidate(s); table {result.table}")  # fmt: skip
    print(result.table.read_text(encoding="utf-8"), end="")
    return 0


def _cmd_audit(ns: argparse.Namespace) -> int:
    from agent.config import audit_path, load
    from agent.lookout.audit import read_audit

    path = Path(ns.file) if ns.file else None
    if path is None:
        if not ns.site_file:
            raise UserError("lookout audit: give --site-file (the unit's site file) or --file")
        cfg = load(ns.site_file)
        path = audit_path(cfg.lookout, cfg.spool.path)
    entries = [e for e in read_audit(path) if ns.id is None or e.get("id") == ns.id]
    for e in entries:
        if ns.json:
            print(json.dumps(e, ensure_ascii=False))
            continue
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(e.get("ts", 0)) / 1000))
        rest = {k: v for k, v in e.items() if k not in ("ts", "kind", "id")}
        print(f"{when} {e.get('kind', '?'):<9} {e.get('id', '')} "
              f"{json.dumps(rest, ensure_ascii=False)}")  # fmt: skip
    if not ns.json:
        print(f"-- {len(entries)} entries in {path}")
    return 0


def _slot_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--upper", action="append", help="upper garment colour(s), e.g. red,navy")
    p.add_argument("--lower", action="append", help="lower garment colour(s)")
    p.add_argument("--size", choices=["child", "adult"], help="apparent size class")
    p.add_argument("--item", action="append", help="backpack, handbag, umbrella, suitcase")
    p.add_argument("--riding", choices=["bicycle", "motorcycle"], help="riding one")
    p.add_argument("--vehicle-colour", action="append", help="a vehicle's colour(s)")
    p.add_argument("--vehicle-type", choices=["car", "truck", "bus", "motorcycle", "bicycle"])
    p.add_argument("--describe", help='a description, e.g. "빨간 상의에 청바지, 초등학생"')
    p.add_argument("--similar", metavar="HIST", help="find similar: a candidate's hist (base64)")
    p.add_argument(
        "--similar-class",
        choices=["person", "vehicle"],
        help="with --similar: what the candidate was (default person); only tracks of that "
        "class are compared",
    )
    p.add_argument("--since", default="2h", help="look back this far (default 2h)")
    p.add_argument("--for", dest="for_", default="6h", help="watch live this long (default 6h)")
    p.add_argument("--min-score", type=float, default=0.5, help="0..1 (default 0.5)")
    p.add_argument("--max-candidates", type=int, default=20, help="per pole (default 20)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from agent.centre.cli import _broker_args

    top = sub.add_parser("lookout", help="search every pole for a described person")
    lsub = top.add_subparsers(dest="lookout_command", required=True, metavar="ACTION")

    p = lsub.add_parser("send", help="sign and broadcast a lookout; prints its id")
    _slot_flags(p)
    p.add_argument("--id", help="lookout id (default: lk-<time>-<random>)")
    p.add_argument("--yes", action="store_true", help="send without asking (scripts)")
    _key_flags(p, _broker_args)
    p.set_defaults(func=_cmd_send)

    p = lsub.add_parser("cancel", help="end a lookout on every pole")
    p.add_argument("id", metavar="ID")
    _key_flags(p, _broker_args)
    p.set_defaults(func=_cmd_cancel)

    p = lsub.add_parser("watch", help="collect, rank and show a lookout's candidates")
    p.add_argument("id", metavar="ID")
    p.add_argument("--out", help="save thumbnails into this folder")
    p.add_argument("--json", action="store_true", help="at the end, one JSON line per row")
    _broker_args(p, "site id (default: every site)")
    p.add_argument("--timeout", type=float, help="stop after this many seconds")
    p.set_defaults(func=_cmd_watch)

    p = lsub.add_parser("scan", help="run the pole's pipeline and matcher over a video")
    p.add_argument("video", metavar="VIDEO")
    _slot_flags(p)
    p.add_argument("--out", required=True, help="folder for thumbnails and candidates.tsv")
    p.add_argument("--fps", type=float, default=5.0, help="analysed frames a second")
    p.set_defaults(func=_cmd_scan)

    p = lsub.add_parser("audit", help="print this pole's lookout audit log")
    p.add_argument("--site-file", help="the unit's site file (finds the log)")
    p.add_argument("--file", help="the audit log itself")
    p.add_argument("--id", help="only this lookout")
    p.add_argument("--json", action="store_true", help="one JSON line per entry")
    p.set_defaults(func=_cmd_audit)


def _key_flags(p: argparse.ArgumentParser, broker_args: Any) -> None:
    p.add_argument("--key-file", help="the site's command key, 64 hex digits")
    p.add_argument("--unsigned", action="store_true", help="send without a mac (for testing)")
    broker_args(p, "site id")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to collect answers")
