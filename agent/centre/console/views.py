"""Rows into what an operator reads: how a bell was pressed, a pole's health, the map.

Pure functions over the database's rows, so they are tested without a server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from agent.centre.liveness import FACTOR

__all__ = ["PoleView", "how_pressed", "local_time", "map_svg", "pole_view", "span"]

Row = dict[str, Any]
HOLD_S = 0.5  # an activation this long after its press came from holding the button


def local_time(ts: datetime | None) -> str:
    """The console machine's local time, to the second."""
    return ts.astimezone().strftime("%Y-%m-%d %H:%M:%S") if ts else "—"


def span(seconds: float | None) -> str:
    """A time left or a look-back as an operator says it: ``5h 59m``, ``12m``, ``40s``."""
    if seconds is None:
        return "—"
    s = max(0, int(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m" if m else f"{s}s"


def how_pressed(row: Row) -> str:
    """press, hold or double, inferred from the pole's ``pressed`` rows before the activation.

    The contract does not name the bell's mode; the presses tell it: two presses since the
    previous activation (within 65 s: a hold lasts up to 60 s) is a double press, an activation
    well after its press is a hold, else a press.  Unknown when the presses were not (yet) received.
    """
    presses, last = row.get("presses") or 0, row.get("last_press")
    if not presses or last is None:
        return "press"
    if row["ts"] - last >= timedelta(seconds=HOLD_S):
        return "hold"
    return "double" if presses >= 2 else "press"


@dataclass(frozen=True)
class PoleView:
    dev: str
    label: str  # pole number, else the device id
    place: str
    addr: str
    site: str
    status: str  # online, offline, unknown
    why: str
    faults: list[str]
    level: str  # ok, fault, offline: how loudly the row stands out
    heartbeat: str
    hb_age: str
    cams: str
    spool: str
    broker: str
    lat: float | None
    lon: float | None


def _faults(row: Row) -> list[str]:
    out: list[str] = []
    for f in (row.get("bell_faults") or []) + (row.get("hb_faults") or []):
        name = {"comm": "comm fault", "line_open": "line fault (open)",
                "line_short": "line fault (short)"}.get(f, f.replace("_", " "))  # fmt: skip
        if name not in out:
            out.append(name)
    spool = row.get("spool_state")
    if spool and spool != "ok":
        out.append(f"spool {spool}")
    for cam, facts in sorted((row.get("cams") or {}).items()):
        if not isinstance(facts, dict):
            continue
        if facts.get("tampered"):
            out.append(f"tamper {cam}")
        if facts.get("state") not in ("ok", "starting", "stopped", None):
            out.append(f"camera {cam} {facts['state']}")
    return out


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    s = max(0, int(seconds))
    return f"{s} s" if s < 120 else f"{s // 60} min" if s < 7200 else f"{s // 3600} h"


def pole_view(row: Row, silent_after_s: float) -> PoleView:
    """One pole as the table shows it; ``silent`` when no heartbeat came for
    ``silent_after_s`` or three of its heartbeat periods, whichever is longer.

    The ingest marks silent poles itself, by the same rule on the same columns (``heard_at``,
    ``heartbeat_period_s``); the console judges again so that a stopped ingest cannot leave
    every pole looking online.
    """
    status, why = row["status"], row.get("status_why") or ""
    quiet, period = row.get("quiet_s"), row.get("heartbeat_period_s") or 0.0
    limit = max(silent_after_s, FACTOR * float(period))
    if status == "online" and quiet is not None and quiet > limit:
        status, why = "offline", "silent"
    faults = _faults(row)
    cams = row.get("cams") or {}
    depth = row.get("spool_depth") or {}
    return PoleView(
        dev=row["dev"], label=row.get("pole") or row["dev"], place=row.get("place") or "",
        addr=row.get("addr") or "", site=row["site"], status=status, why=why, faults=faults,
        level="offline" if status != "online" else "fault" if faults else "ok",
        heartbeat=local_time(row.get("heartbeat_at")), hb_age=_age(row.get("hb_age_s")),
        cams=", ".join(f"{c} {f.get('state', '?')}" for c, f in sorted(cams.items())
                       if isinstance(f, dict)) or "—",
        spool=", ".join(f"{k} {v}" for k, v in sorted(depth.items())) or "empty",
        broker=row.get("broker") or "—", lat=row.get("lat"), lon=row.get("lon"),
    )  # fmt: skip


def _mercator(lat: float, lon: float) -> tuple[float, float]:
    """Web Mercator in tile units at zoom 0 (0..1 both ways)."""
    s = math.sin(math.radians(max(-85.0, min(85.0, lat))))
    return (lon + 180.0) / 360.0, 0.5 - math.log((1 + s) / (1 - s)) / (4 * math.pi)


def map_svg(poles: list[PoleView], tiles: str | None = None, width: int = 1400,
            height: int = 400) -> str:  # fmt: skip
    """An SVG of the poles' positions (Web Mercator), over tiles when a URL template is given.

    ``tiles`` is like ``http://tiles.centre/{z}/{x}/{y}.png``: the console never assumes the
    internet, so without it the plot stands alone on a plain grid.
    """
    pts = [(p, *_mercator(p.lat, p.lon)) for p in poles if p.lat is not None and p.lon is not None]
    out = [f'<svg class="map" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="poles map" xmlns="http://www.w3.org/2000/svg">',
           f'<rect width="{width}" height="{height}" class="map-bg"/>']  # fmt: skip
    if not pts:
        out.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">'
                   "no pole has reported its position yet</text></svg>")  # fmt: skip
        return "".join(out)
    xs, ys = [x for _, x, _ in pts], [y for _, _, y in pts]
    span = max(max(xs) - min(xs), (max(ys) - min(ys)) * width / height, 1e-7)
    # Tiles come in whole zoom levels; without them the plot fills the frame.
    fit = math.log2(width * 0.9 / 256 / span)
    zoom = max(0.0, min(18.0, math.floor(fit) if tiles else fit))
    scale = 256 * 2**zoom  # pixels per zoom-0 unit
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    ox, oy = cx * scale - width / 2, cy * scale - height / 2
    if tiles:
        for tx in range(int(ox // 256), int((ox + width) // 256) + 1):
            for ty in range(int(oy // 256), int((oy + height) // 256) + 1):
                url = tiles.format(z=int(zoom), x=tx, y=ty)
                out.append(f'<image href={quoteattr(url)} x="{tx * 256 - ox:.0f}" '
                           f'y="{ty * 256 - oy:.0f}" width="256" height="256"/>')  # fmt: skip
    else:
        out += [f'<line class="grid" x1="{width * i / 8:.0f}" y1="0" x2="{width * i / 8:.0f}" '
                f'y2="{height}"/>' for i in range(1, 8)]  # fmt: skip
    order = {"ok": 0, "fault": 1, "offline": 2}  # the loud ones drawn last, on top
    for p, x, y in sorted(pts, key=lambda t: order[t[0].level]):
        title = escape(f"{p.label} {p.place} — {p.status} {p.why} {' '.join(p.faults)}")
        out.append(f'<circle id="dot-{escape(p.dev)}" class="dot {p.level}" '
                   f'cx="{x * scale - ox:.1f}" cy="{y * scale - oy:.1f}" r="5">'
                   f"<title>{title}</title></circle>")  # fmt: skip
    out.append("</svg>")
    return "".join(out)
