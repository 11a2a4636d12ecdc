"""`pole-agent doctor CONFIG`: is this unit ready? One PASS/FAIL line per part.

Order: config, model, each camera, bell input, outputs, broker, clock, disk.  A config
that does not load stops the rest (nothing else can be checked).  WARN (the clock cannot
be confirmed) and SKIP do not fail the run; any FAIL does.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from agent import __version__
from agent.config import AgentConfig, ConfigError, load
from agent.technician.checks import (
    Check,
    check_bell,
    check_broker,
    check_camera,
    check_clock,
    check_disk,
    check_model,
    check_outputs,
)

__all__ = ["default_credentials", "passed", "render_json", "render_text", "run_doctor"]

MARK = {"pass": "PASS", "fail": "FAIL", "warn": "WARN", "skip": "SKIP"}


def default_credentials(config: Path) -> Path | None:
    """Where the unit's credentials are when systemd does not say: next to the site file."""
    creds = config.resolve().parent / "credentials"
    return creds if creds.is_dir() else None


def run_doctor(config: Path, *, outputs: bool = False) -> list[Check]:
    """Every check, in the documented order."""
    try:
        cfg = load(config)
    except ConfigError as exc:
        return [Check("config", "fail", exc.report(), "fix the file, or re-run provision")]
    checks = [Check("config", "pass", _describe(cfg, config))]
    cams, frame = [], None
    for cam in cfg.cameras:
        check, got = check_camera(cam)
        cams.append(check)
        frame = frame if frame is not None else got
    checks.append(check_model(cfg, frame))
    checks += cams
    checks.append(check_bell(cfg))
    checks.append(check_outputs(cfg, outputs))
    checks.append(check_broker(cfg))
    checks.append(check_clock())
    checks.append(check_disk(cfg))
    return checks


def _describe(cfg: AgentConfig, path: Path) -> str:
    d = cfg.device
    return f"{path} valid: device {d.id}, site {d.site}, pole {d.pole}, profile {cfg.profile}"


def passed(checks: list[Check]) -> bool:
    return all(c.status != "fail" for c in checks)


def render_text(checks: list[Check], colour: bool = False) -> str:
    paint = {"pass": "32", "fail": "1;31", "warn": "33", "skip": "2"}
    lines = []
    for c in checks:
        mark = MARK[c.status]
        if colour:
            mark = f"\x1b[{paint[c.status]}m{mark}\x1b[0m"
        detail = c.detail.replace("\n", "\n" + " " * 20)
        lines.append(f"{mark}  {c.name:<13} {detail}")
        if c.status in ("fail", "warn") and c.fix:
            lines.append(f"{'':19} -> {c.fix}")
    verdict = "all checks passed" if passed(checks) else "NOT READY: fix the FAIL lines above"
    lines.append(verdict)
    return "\n".join(lines)


def render_json(checks: list[Check], config: Path) -> str:
    doc: dict[str, Any] = {
        "ok": passed(checks),
        "config": str(config),
        "version": __version__,
        "host": os.uname().nodename,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "checks": [
            {"name": c.name, "status": c.status, "detail": c.detail, "fix": c.fix, "data": c.data}
            for c in checks
        ],
    }
    return json.dumps(doc, ensure_ascii=False, indent=2)
