"""The emergency bell (안심비상벨): inputs, state machine, outputs and the bell thread."""

from __future__ import annotations

from agent.bell.machine import BellMachine, BellSignal, Debouncer
from agent.bell.panel import BellPanel
from agent.bell.service import BellError, BellService
from agent.bell.supervision import AuxInput, LoopClassifier, SupervisedLoop

__all__ = [
    "AuxInput",
    "BellError",
    "BellMachine",
    "BellPanel",
    "BellService",
    "BellSignal",
    "Debouncer",
    "LoopClassifier",
    "SupervisedLoop",
]
