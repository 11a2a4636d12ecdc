"""Lookout, the pole's side: appearance records of person tracks, the local index.

``colour`` judges upper and lower garment colours of a person crop; ``height`` learns the
camera's person height per image row; ``record`` votes a record per track; ``index``
keeps the records for a few hours in a SQLite file next to the spool; ``cli`` is
``pole-agent appearance``.  Nothing here sends anything: only a lookout's matcher may.

The names load on first use: the CLI imports this package in the agent's own process,
which must not load numpy and OpenCV for it (they live in the vision child).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.lookout.colour import COLOURS, Judgement, judge, similarity
    from agent.lookout.height import HeightModel
    from agent.lookout.index import AppearanceIndex, Hit, Slots
    from agent.lookout.match import lookout_score, match
    from agent.lookout.record import AppearanceRecord, Recorder

__all__ = [
    "COLOURS",
    "AppearanceIndex",
    "AppearanceRecord",
    "HeightModel",
    "Hit",
    "Judgement",
    "Recorder",
    "Slots",
    "judge",
    "lookout_score",
    "match",
    "similarity",
]

_HOME = {
    "COLOURS": "colour",
    "Judgement": "colour",
    "judge": "colour",
    "similarity": "colour",
    "HeightModel": "height",
    "AppearanceIndex": "index",
    "Hit": "index",
    "Slots": "index",
    "lookout_score": "match",
    "match": "match",
    "AppearanceRecord": "record",
    "Recorder": "record",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'agent.lookout' has no attribute {name!r}")
    return getattr(importlib.import_module(f"agent.lookout.{home}"), name)
