"""Commands from the centre: signed requests on ``cmd/<name>``, one result each.

``agent.control.auth`` defines the signature (the centre's tools use it too),
``gate`` checks each message, ``handlers`` holds one function per command and
``service`` owns the ``commands`` thread the runner starts.
"""

from __future__ import annotations

from agent.control.auth import KeyFileError, generate_key, load_key, sign, signed_text
from agent.control.registry import CommandSpec, Context, Outcome

__all__ = [
    "CommandSpec",
    "Context",
    "KeyFileError",
    "Outcome",
    "generate_key",
    "load_key",
    "sign",
    "signed_text",
]
