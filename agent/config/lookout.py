"""Lookout on the pole: appearance records of person tracks and their local index."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from agent.config.base import Strict

__all__ = ["AUDIT_NAME", "INDEX_NAME", "LookoutConfig", "audit_path", "index_path"]

INDEX_NAME = "lookout.db"
AUDIT_NAME = "lookout-audit.jsonl"


class LookoutConfig(Strict):
    enabled: bool = Field(
        default=True, description="Keep appearance records of person tracks in the local index."
    )
    index_path: str | None = Field(
        default=None,
        min_length=1,
        description="SQLite file of the appearance index; default 'lookout.db' in the "
        "spool's folder. Never the spool itself.",
    )
    retention_h: float = Field(
        default=6.0, gt=0, le=168, description="Hours a record (and its thumbnail) is kept."
    )
    max_rows: int = Field(default=20_000, ge=100, le=1_000_000, description="Most records kept.")
    max_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024 * 1024, description="Most bytes of records kept."
    )
    best_frames: int = Field(
        default=5, ge=1, le=20, description="Best frames of a track its colours are voted over."
    )
    refresh_s: float = Field(
        default=60.0, ge=5, le=3600, description="A long track's record is rewritten this often."
    )
    thumbnails: bool = Field(
        default=True, description="Keep a masked body thumbnail (at most 96x192) per record."
    )
    max_active: int = Field(
        default=8, ge=1, le=64, description="Most lookouts active at once; more are refused."
    )
    audit_path: str | None = Field(
        default=None,
        min_length=1,
        description="JSON-lines audit log of lookouts and candidates sent; default "
        "'lookout-audit.jsonl' in the spool's folder.",
    )
    audit_days: float = Field(
        default=90.0, gt=0, le=3650, description="Days an audit entry is kept."
    )


def _beside_spool(given: str | None, spool_path: str, name: str) -> Path:
    return Path(given) if given is not None else Path(spool_path).parent / name


def index_path(lookout: LookoutConfig, spool_path: str) -> Path:
    """Where the index lives: ``lookout.index_path``, else next to the spool file."""
    return _beside_spool(lookout.index_path, spool_path, INDEX_NAME)


def audit_path(lookout: LookoutConfig, spool_path: str) -> Path:
    """Where the audit log lives: ``lookout.audit_path``, else next to the spool file."""
    return _beside_spool(lookout.audit_path, spool_path, AUDIT_NAME)
