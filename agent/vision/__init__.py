"""Vision: the service (capture, motion gate, detector, tracker, rules), its child process
and the messages between them."""

from agent.vision.service import VisionService

__all__ = ["VisionService"]
