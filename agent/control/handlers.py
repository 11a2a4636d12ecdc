"""The commands the centre can send: one small handler each, listed in ``COMMANDS``.

Handlers run on the ``commands`` thread.  Stages are asked, never waited on: the bell's
methods only queue work for the bell thread, and a snapshot is published later on its
own topic, so every handler returns at once (``reload`` opens a new bell input and closes
it again, which does not block: it says at once whether the device can be had).
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Literal

from pydantic import Field

from agent import __version__
from agent.config import AgentConfig, ConfigError, config_hash, load, redacted
from agent.control.lookout import LookoutArgs, LookoutCancelArgs
from agent.control.registry import Args, CommandSpec, Context, NoArgs, Outcome, Request
from agent.reload import probe_bell_input

__all__ = ["COMMANDS"]

WEEK_S = 7 * 24 * 3600.0


# --------------------------------------------------------------------------- ping
class PingArgs(Args):
    echo: str | None = Field(default=None, max_length=200, description="Returned as is.")


def _running(ctx: Context) -> tuple[AgentConfig, str]:
    """The config the agent runs now and its hash: a reload may not rebuild this service."""
    runner = ctx.runner
    if runner is None:
        return ctx.cfg, config_hash(ctx.cfg)
    return runner.cfg, runner.cfg_hash


def ping(ctx: Context, args: PingArgs) -> Outcome:
    data: dict[str, Any] = {
        "ver": __version__,
        "boot": ctx.outbox.stamper.boot_id,
        "up": round(time.monotonic() - getattr(ctx.runner, "started", ctx.started), 1),
        "cfg": _running(ctx)[1],
    }
    if args.echo is not None:
        data["echo"] = args.echo
    return Outcome.ok(data)


# --------------------------------------------------------------------------- config
def config_get(ctx: Context, _args: NoArgs) -> Outcome:
    cfg, digest = _running(ctx)
    return Outcome.ok({"cfg": digest, "config": redacted(cfg)})


def reload(ctx: Context, _args: NoArgs) -> Outcome:
    runner = ctx.runner
    if runner is None:
        return Outcome.failed("this agent cannot reload (no runner)")
    try:
        new = load(runner.config_path)
    except ConfigError as exc:
        return Outcome.rejected(
            f"the config file is invalid; the running config stays: {exc.report()}",
            {"problems": exc.problems[:50]},
        )
    old: AgentConfig = runner.cfg
    if new.spool != old.spool or new.device.id != old.device.id:
        return Outcome.rejected("spool or device id changed: restart the service to apply")
    why = probe_bell_input(old, new)  # a new bell input is tried (opened, closed) right now
    if why is not None:
        return Outcome.rejected(
            f"the new bell input cannot be opened; the running config and bell stay: {why}"
        )
    changed = config_hash(new) != runner.cfg_hash
    data = {"cfg": config_hash(new), "changed": changed}
    # The result goes to the spool first: the reload stops this very service.
    return Outcome.ok(data, after=runner.request_reload if changed else None)


# --------------------------------------------------------------------------- bell
class BellTestArgs(Args):
    action: Literal["start", "end"] = Field(default="start", description="Open or close.")
    duration_s: float = Field(default=300.0, gt=0, le=3600, description="Test window length.")
    press_s: float | None = Field(
        default=None, gt=0, le=30, description="Also simulate a press this long (start only)."
    )


def bell_test(ctx: Context, args: BellTestArgs) -> Outcome:
    bell = ctx.bell
    if bell is None:
        return Outcome.failed("no bell on this unit")
    if args.action == "end":
        return _queued(bell.end_test(), {"test": False})
    if not _queued_ok(bell.start_test(args.duration_s)):
        return Outcome.failed("the bell is busy (its command queue is full); try again")
    data: dict[str, Any] = {"test": True, "duration_s": args.duration_s}
    if args.press_s is not None:
        if not _queued_ok(bell.simulate_press(args.press_s)):
            return Outcome.failed("test window opened, but the simulated press was not queued")
        data["press_s"] = args.press_s
    return Outcome.ok(data)


def bell_ack(ctx: Context, _args: NoArgs) -> Outcome:
    if ctx.bell is None:
        return Outcome.failed("no bell on this unit")
    return _queued(ctx.bell.acknowledge(), {"ack": True})


def _queued_ok(result: Any) -> bool:
    return result is not False  # bell methods return False when their queue is full


def _queued(result: Any, data: dict[str, Any]) -> Outcome:
    if not _queued_ok(result):
        return Outcome.failed("the bell is busy (its command queue is full); try again")
    return Outcome.ok(data)


# --------------------------------------------------------------------------- vision
class SnapshotArgs(Args):
    camera: str | None = Field(
        default=None, max_length=63, description="Camera id (default: first)."
    )


def snapshot(ctx: Context, args: SnapshotArgs) -> Outcome:
    cams = [c.id for c in ctx.cfg.cameras]
    if args.camera is not None and args.camera not in cams:
        return Outcome.rejected(f"no camera {args.camera!r}; cameras: {', '.join(cams) or 'none'}")
    if ctx.vision is None:
        return Outcome.failed("no camera is running on this unit")
    snap_id = f"{ctx.outbox.stamper.boot_id}-snap-{secrets.token_hex(4)}"
    if not ctx.vision.request_snapshot(snap_id, args.camera):
        return Outcome.failed("no recent frame to take a snapshot from (camera lost?)")
    return Outcome.ok({"snap": snap_id, "topic": ctx.outbox.topics.snapshot(snap_id)})


class ArmArgs(Args):
    name: str = Field(min_length=1, max_length=63, description="Rule or zone name.")
    for_s: float = Field(default=3600.0, gt=0, le=WEEK_S, description="How long it lasts.")


def _targets(cfg: AgentConfig) -> set[str]:
    names = set()
    for cam in cfg.cameras:
        names |= {r.name for r in cam.rules} | {z.name for z in cam.zones}
    return names


def _arming(ctx: Context, args: ArmArgs, arm: bool) -> Outcome:
    known = _targets(ctx.cfg)
    if args.name not in known:
        listed = ", ".join(sorted(known)) or "none"
        return Outcome.rejected(f"no rule or zone named {args.name!r}; known: {listed}")
    if ctx.vision is None:
        return Outcome.failed("no camera is running on this unit")
    until = time.monotonic() + args.for_s
    method = ctx.vision.arm if arm else ctx.vision.disarm
    if method(args.name, until) is False:
        return Outcome.failed(f"vision did not accept {'arm' if arm else 'disarm'} {args.name!r}")
    return Outcome.ok({"name": args.name, "armed": arm, "for_s": args.for_s})


def arm(ctx: Context, args: ArmArgs) -> Outcome:
    return _arming(ctx, args, True)


def disarm(ctx: Context, args: ArmArgs) -> Outcome:
    return _arming(ctx, args, False)


# --------------------------------------------------------------------------- lookout
def lookout(ctx: Context, args: LookoutArgs) -> Outcome:
    """Take a lookout on: the vision side audits it, looks back in the index, then matches
    live until ``for_s``; the answer lists the lookouts in force."""
    if ctx.vision is None:
        return Outcome.failed("no camera is running on this unit")
    from agent.vision.protocol import LookoutRequest

    request = ctx.request or Request("", "local", site=False)
    got = ctx.vision.start_lookout(
        LookoutRequest(
            spec=args, remaining_s=args.for_s, signer=request.signer, req=request.req,
            site=request.site,
        )
    )  # fmt: skip
    if isinstance(got, str):
        return Outcome.failed(got)
    return Outcome.ok({"id": args.id, "accepted": True, "active": got})


def lookout_cancel(ctx: Context, args: LookoutCancelArgs) -> Outcome:
    if ctx.vision is None:
        return Outcome.failed("no camera is running on this unit")
    if not ctx.vision.cancel_lookout(args.id):
        return Outcome.rejected(f"no lookout {args.id!r} is active here")
    return Outcome.ok({"id": args.id, "cancelled": True})


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("ping", ping, PingArgs, broadcast=True, summary="echo, version and boot id"),
    CommandSpec("config-get", config_get, broadcast=True, summary="effective config, redacted"),
    CommandSpec("reload", reload, broadcast=True, summary="re-read and apply the config file"),
    CommandSpec("snapshot", snapshot, SnapshotArgs, broadcast=True, summary="a JPEG now"),
    CommandSpec("bell-test", bell_test, BellTestArgs, summary="start or end a bell test window"),
    CommandSpec("bell-ack", bell_ack, summary="acknowledge an alarm: siren and strobe off"),
    CommandSpec("arm", arm, ArmArgs, summary="arm a rule or zone for a period"),
    CommandSpec("disarm", disarm, ArmArgs, summary="disarm a rule or zone for a period"),
    CommandSpec("lookout", lookout, LookoutArgs, broadcast=True, summary="search for a person"),
    CommandSpec(
        "lookout-cancel", lookout_cancel, LookoutCancelArgs, broadcast=True, summary="end it"
    ),
)
