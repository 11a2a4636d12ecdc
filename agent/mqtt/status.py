"""The retained status message: birth on every connect, offline on a clean stop, the will."""

from __future__ import annotations

from dataclasses import dataclass

from agent.config import DeviceConfig
from agent.events import StatusMessage, encode, now_ms

__all__ = ["StatusInfo", "status_message"]


@dataclass(frozen=True)
class StatusInfo:
    """What the birth message tells the centre about this unit."""

    device: DeviceConfig
    boot_id: str
    version: str
    config_hash: str


def status_message(info: StatusInfo, state: str, why: str, broker: str) -> bytes:
    """``state``/``why`` for the ``status`` topic; a birth carries the unit's facts too."""
    d = info.device
    birth = why == "birth"
    msg = StatusMessage(
        dev=d.id,
        state=state,  # type: ignore[arg-type]
        why=why,  # type: ignore[arg-type]
        boot=info.boot_id,
        ts=now_ms(),
        ver=info.version if birth else None,
        cfg=info.config_hash if birth else None,
        site=d.site if birth else None,
        pole=d.pole if birth else None,
        place=(d.location or None) if birth else None,
        addr=(d.address or None) if birth else None,
        lat=d.latitude if birth else None,
        lon=d.longitude if birth else None,
        broker=broker if birth else None,
    )
    return encode(msg)
