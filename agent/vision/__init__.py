"""Vision: the service (capture, motion gate, detector, tracker, rules), its child process
and the messages between them.

Nothing heavy is imported here: ``python -m agent.vision.child`` imports this package
before it lowers its CPU priority, and numpy, OpenCV and onnxruntime must start their
thread pools only after that (they inherit the priority).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from agent.config import CameraConfig, DetectionConfig, LookoutConfig
    from agent.outbox import EventSink
    from agent.vision.process import VisionProcess
    from agent.vision.service import VisionService

__all__ = ["make_vision"]


def make_vision(
    cameras: list[CameraConfig],
    detection: DetectionConfig,
    sink: EventSink,
    *,
    lookout: LookoutConfig | None = None,
    first_tids: Mapping[str, int] | None = None,
) -> VisionService | VisionProcess:
    """The vision stage that ``detection.isolation`` asks for.

    ``process`` (the default): a child process, so that the detector never holds the
    agent's GIL and a crash in a decoder or the model cannot take the bell with it.
    ``thread``: a thread of the agent (simpler to debug, one process less).  Raises what
    building the stage raises (the caller decides whether vision is worth a start).
    ``lookout``: appearance records into the local index, its ``index_path`` resolved
    (:func:`agent.config.index_path`); None: none are kept.  ``first_tids``: per camera,
    the first track id, from the predecessor's ``next_tids()`` on a reload (a track id names
    one track per camera and boot).
    """
    if detection.isolation == "process":
        from agent.vision.process import VisionProcess

        return VisionProcess(cameras, detection, sink, lookout=lookout, first_tids=first_tids)
    from agent.vision.service import VisionService

    return VisionService(cameras, detection, sink, lookout=lookout, first_tids=first_tids)
