"""Checks across sections that pydantic cannot place precisely, each with its own path.

A model validator can only say "cameras[0]: ..." and shows the whole camera as the input;
these checks run on the validated config and name the exact key a technician must edit.
"""

from __future__ import annotations

from agent.config.cameras import CameraConfig
from agent.config.model import AgentConfig

__all__ = ["camera_problems", "cross_checks"]


def cross_checks(cfg: AgentConfig) -> list[str]:
    """One line per problem, ``path: what is wrong``; empty when the config is coherent."""
    found: list[str] = []
    for i, cam in enumerate(cfg.cameras):
        found += camera_problems(i, cam)
    return found


def camera_problems(index: int, cam: CameraConfig) -> list[str]:
    """The problems of camera ``index`` that need more than one of its keys to see."""
    found: list[str] = []
    zones = [z.name for z in cam.zones]
    for j, rule in enumerate(cam.rules):
        if rule.zone is not None and rule.zone not in zones:
            defined = ", ".join(zones) if zones else "none"
            found.append(
                f"cameras[{index}].rules[{j}].zone: rule {rule.name!r} names zone "
                f"{rule.zone!r}, which camera {cam.id!r} does not define (zones: {defined})"
            )
    return found
