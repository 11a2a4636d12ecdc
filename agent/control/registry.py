"""What a command is: a name, a model of its arguments, and one handler function.

A handler gets the :class:`Context` (the stages it may act on) and its validated
arguments, and returns an :class:`Outcome`.  Adding a command means writing one handler
and one :class:`CommandSpec` line in ``agent.control.handlers.COMMANDS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from agent.config import AgentConfig
from agent.outbox import Outbox

if TYPE_CHECKING:
    from agent.vision.protocol import LookoutRequest

__all__ = [
    "Args",
    "BellControl",
    "CommandSpec",
    "Context",
    "Handler",
    "NoArgs",
    "Outcome",
    "Request",
    "RunnerControl",
    "Signer",
    "VisionControl",
    "by_name",
]


# Which key verified a command: the device's or the site's, or the one before a rotation.
Signer = Literal["device", "site", "previous-device", "previous-site", "local"]


@dataclass(frozen=True)
class Request:
    """The command being handled, as the gate accepted it (for handlers that audit)."""

    req: str
    signer: Signer
    site: bool  # came on the site-wide topic


class Args(BaseModel):
    """Base of argument models: unknown keys are errors, no silent coercion of strings."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class NoArgs(Args):
    """A command without arguments."""


class BellControl(Protocol):
    """What commands need from the bell service."""

    def start_test(self, duration_s: float) -> Any: ...
    def end_test(self) -> Any: ...
    def acknowledge(self) -> Any: ...
    def simulate_press(self, hold_s: float) -> Any: ...


class VisionControl(Protocol):
    """What commands need from the vision service."""

    def request_snapshot(self, event_id: str, camera: str | None = None) -> bool: ...
    def arm(self, name: str, until: float) -> Any: ...
    def disarm(self, name: str, until: float) -> Any: ...
    def start_lookout(self, msg: LookoutRequest) -> list[dict[str, Any]] | str: ...
    def cancel_lookout(self, lookout_id: str) -> bool: ...


class RunnerControl(Protocol):
    """What commands need from the runner."""

    config_path: Path
    cfg: AgentConfig
    cfg_hash: str  # of cfg and its secret files' contents as applied

    def request_reload(self) -> None: ...


@dataclass(frozen=True)
class Outcome:
    """A handler's answer; ``after`` runs once the result is durable in the spool."""

    res: Literal["ok", "rejected", "failed"]
    why: str | None = None
    data: dict[str, Any] | None = None
    after: Callable[[], None] | None = None

    @staticmethod
    def ok(data: dict[str, Any] | None = None, after: Callable[[], None] | None = None) -> Outcome:
        return Outcome("ok", None, data, after)

    @staticmethod
    def rejected(why: str, data: dict[str, Any] | None = None) -> Outcome:
        return Outcome("rejected", why, data)

    @staticmethod
    def failed(why: str, data: dict[str, Any] | None = None) -> Outcome:
        return Outcome("failed", why, data)


@dataclass
class Context:
    """The agent as a handler sees it; stages are None when the unit has none."""

    cfg: AgentConfig
    outbox: Outbox
    runner: RunnerControl | None = None
    bell: BellControl | None = None
    vision: VisionControl | None = None
    started: float = field(default_factory=time.monotonic)
    request: Request | None = None  # set by the command thread for each handler call


Handler = Callable[[Context, Any], Outcome]


@dataclass(frozen=True)
class CommandSpec:
    """One command: its handler, its argument model, and whether a site broadcast may run it."""

    name: str
    handler: Handler
    args: type[Args] = NoArgs
    broadcast: bool = False
    summary: str = ""


def by_name(specs: tuple[CommandSpec, ...]) -> Mapping[str, CommandSpec]:
    """The registry as a mapping; names must be unique."""
    out = {s.name: s for s in specs}
    if len(out) != len(specs):
        raise ValueError("command names must be unique")
    return out
