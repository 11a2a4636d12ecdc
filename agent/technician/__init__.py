"""The technician's tools at the pole: ``provision`` and ``doctor``."""

from __future__ import annotations

__all__: list[str] = []
