"""Lookout, the pole's side: appearance records of person tracks, the local index.

``colour`` judges upper and lower garment colours of a person crop; ``height`` learns the
camera's person height per image row; ``record`` votes a record per track; ``index``
keeps the records for a few hours in a SQLite file next to the spool; ``cli`` is
``pole-agent appearance``.  Nothing here sends anything: only a lookout's matcher may.
"""

from __future__ import annotations

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
