"""Errors of the detection stage (defined in :mod:`agent.errors`)."""

from __future__ import annotations

from agent.errors import ModelError

__all__ = ["ModelError"]
