"""Running the unit: spool, heartbeat, commands from the centre, logging."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agent.config.base import Strict

__all__ = ["CommandsConfig", "HealthConfig", "LogConfig", "SpoolConfig"]


class SpoolConfig(Strict):
    path: str = Field(default="spool.db", min_length=1, description="SQLite file of the outbox.")
    max_rows: int = Field(default=100_000, ge=100, le=10_000_000, description="Most events kept.")
    max_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1024 * 1024, description="Most payload bytes kept."
    )
    telemetry_ttl_s: int = Field(
        default=3600, ge=60, description="Heartbeats older than this are not replayed."
    )


class HealthConfig(Strict):
    heartbeat_s: float = Field(default=30.0, ge=1, le=3600, description="Heartbeat period.")
    watchdog_grace_s: float = Field(
        default=10.0, ge=1, le=600, description="A critical thread silent this long is hung."
    )


class CommandsConfig(Strict):
    key_file: str | None = Field(
        default=None,
        description="Per-device HMAC key file (64 hex digits); a relative path is looked up "
        "in $CREDENTIALS_DIRECTORY. Without it, every command is refused.",
    )
    site_key_file: str | None = Field(
        default=None,
        description="Site-wide HMAC key file for broadcasts on <prefix>/<site>/_site/cmd/+; "
        "without it, broadcasts are refused.",
    )
    previous_key_file: str | None = Field(
        default=None,
        description="The device key before a rotation, still accepted while the centre "
        "changes over; remove it once every command is signed with the new key.",
    )
    previous_site_key_file: str | None = Field(
        default=None, description="The site key before a rotation (as previous_key_file)."
    )
    max_age_s: float = Field(default=60.0, ge=1, le=3600, description="Oldest accepted command.")
    max_bytes: int = Field(default=4096, ge=256, le=262144, description="Largest payload.")
    rate_per_min: int = Field(
        default=60, ge=1, le=6000, description="Commands per minute (and rejections reported)."
    )


class LogConfig(Strict):
    level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Level."
    )
