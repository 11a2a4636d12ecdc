"""The centre's side of a lookout: describe, send, watch, cancel, scan a video.

``describe`` turns Korean or English words into slots; ``watch`` collects candidates;
``scan`` runs the pole's pipeline and matcher over a file; ``cli`` is ``pole-agent lookout``.
"""

from __future__ import annotations

from agent.centre.lookout.describe import Described, describe
from agent.centre.lookout.watch import Candidate, CandidateBoard, LookoutWatch

__all__ = ["Candidate", "CandidateBoard", "Described", "LookoutWatch", "describe"]
