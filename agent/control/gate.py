"""The gate every command passes before a handler sees it: one verdict per message.

Checks in order: topic, size, JSON, envelope types, known command, broadcast allowed,
key present, signature, age (both directions, and not from before this agent started),
replay, rate, argument types.  A message with a usable request id gets a
:class:`Rejected` verdict (answered with a ``rejected`` result); without one it is
:class:`Dropped` (counted and logged, nobody to answer).  Pure: time is an argument.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent.config import CommandsConfig
from agent.control.auth import KeyFileError, ReplayCache, TokenBucket, load_key, verify
from agent.control.registry import Args, CommandSpec, Signer
from agent.events import CommandRequest, Topics

__all__ = ["Accepted", "Dropped", "Gate", "Keys", "Rejected", "Verdict", "errors_text"]

log = logging.getLogger(__name__)

# A request id can still be read from a payload too big or too broken to parse, so that
# the centre learns why its command failed.
REQ_SNIFF = re.compile(rb'"req"\s*:\s*"([^"\\\x00-\x1f]{1,64})"')
SNIFF_BYTES = 512
MAX_NAME = 64


@dataclass(frozen=True)
class Accepted:
    spec: CommandSpec
    req: str
    args: Args
    broadcast: bool
    signer: Signer = "device"


@dataclass(frozen=True)
class Rejected:
    name: str
    req: str
    why: str


@dataclass(frozen=True)
class Dropped:
    reason: str  # a counter name: foreign_topic, probe, oversized, invalid_json, no_req
    detail: str


Verdict = Accepted | Rejected | Dropped


@dataclass(frozen=True)
class Keys:
    """The device key and the site key, or why each is unusable."""

    device: bytes | None
    device_problem: str
    site: bytes | None
    site_problem: str
    # The keys before a rotation, accepted too while the centre's fleet changes over.
    previous_device: bytes | None = None
    previous_site: bytes | None = None

    @staticmethod
    def load(cfg: CommandsConfig) -> Keys:
        device, dprob = _one_key(cfg.key_file, "commands.key_file")
        site, sprob = _one_key(cfg.site_key_file, "commands.site_key_file")
        old_device = _previous(cfg.previous_key_file, "commands.previous_key_file")
        old_site = _previous(cfg.previous_site_key_file, "commands.previous_site_key_file")
        return Keys(device, dprob, site, sprob, old_device, old_site)


def _previous(name: str | None, field: str) -> bytes | None:
    if name is None:
        return None
    try:
        return load_key(name)
    except KeyFileError as exc:  # the current key still works: say it, go on
        log.warning("commands: %s ignored: %s", field, exc)
        return None


def _one_key(name: str | None, field: str) -> tuple[bytes | None, str]:
    if name is None:
        return None, f"commands are disabled on this unit: no {field} configured"
    try:
        return load_key(name), ""
    except KeyFileError as exc:
        return None, f"commands are disabled on this unit: {exc}"


def errors_text(exc: ValidationError, prefix: str = "") -> str:
    """Pydantic errors as 'field: message' joined by '; '."""
    parts = []
    for err in exc.errors()[:10]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{prefix}{loc or '(top level)'}: {err['msg']}")
    return "; ".join(parts)


def sniff_req(payload: bytes) -> str | None:
    """A request id found in the first bytes of a payload that cannot be parsed."""
    match = REQ_SNIFF.search(payload[:SNIFF_BYTES])
    return match.group(1).decode("utf-8", "replace") if match else None


class Gate:
    """Holds the keys, the replay cache and the rate bucket; ``check`` gives a verdict."""

    def __init__(
        self,
        cfg: CommandsConfig,
        topics: Topics,
        specs: Mapping[str, CommandSpec],
        keys: Keys,
        *,
        mono: float,
        replay_file: Path | None = None,
    ) -> None:
        self.cfg = cfg
        self.topics = topics
        self.specs = specs
        self.keys = keys
        self.max_age_ms = int(cfg.max_age_s * 1000)
        # An id must be remembered while a replay could still pass the age check: a
        # command is fresh for max_age on either side of its ts.
        self.replay = ReplayCache(2 * self.max_age_ms, path=replay_file)
        self.verified_with_previous = 0
        self.bucket = TokenBucket(cfg.rate_per_min, cfg.rate_per_min, mono)
        self._device_prefix = f"{topics.base}/cmd/"
        self._site_prefix = f"{topics.prefix}/{topics.site}/_site/cmd/"

    def check(self, topic: str, payload: bytes, size: int, now_ms: int, mono: float) -> Verdict:
        """The verdict on one message; ``payload`` may be only the head when ``size`` is big."""
        if topic.startswith(self._device_prefix):
            name, broadcast = topic[len(self._device_prefix) :], False
        elif topic.startswith(self._site_prefix):
            name, broadcast = topic[len(self._site_prefix) :], True
        else:
            return Dropped("foreign_topic", f"message on {topic[:200]!r}")
        if not name or "/" in name:
            return Dropped("foreign_topic", f"message on {topic[:200]!r}")
        if name.startswith("_"):
            return Dropped("probe", f"probe on {name[:MAX_NAME]!r}")  # `pole-agent doctor`
        name = name[:MAX_NAME]
        if size > self.cfg.max_bytes:
            why = f"payload of {size} bytes is over commands.max_bytes ({self.cfg.max_bytes})"
            return self._reject_or_drop(name, sniff_req(payload), why, "oversized")
        data, problem = _parse(payload)
        if problem:
            return self._reject_or_drop(name, sniff_req(payload), problem, "invalid_json")
        return self._check_request(name, broadcast, topic, data, now_ms=now_ms, mono=mono)

    def _reject_or_drop(self, name: str, req: str | None, why: str, reason: str) -> Verdict:
        if req is None:
            return Dropped(reason, f"{name}: {why} (no request id to answer)")
        return Rejected(name, req, why)

    def _check_request(
        self, name: str, broadcast: bool, topic: str, data: Any, *, now_ms: int, mono: float
    ) -> Verdict:
        if not isinstance(data, dict):
            return Dropped(
                "no_req", f"{name}: payload is a JSON {type(data).__name__}, not an object"
            )
        raw_req = data.get("req")
        req = raw_req if isinstance(raw_req, str) and 1 <= len(raw_req) <= 64 else None
        try:
            request = CommandRequest.model_validate(data, strict=True)
        except ValidationError as exc:
            return self._reject_or_drop(name, req, f"invalid command: {errors_text(exc)}", "no_req")
        req = request.req
        spec = self.specs.get(name)
        if spec is None:
            known = ", ".join(sorted(self.specs))
            return Rejected(name, req, f"unknown command {name!r}; known: {known}")
        if broadcast and not spec.broadcast:
            return Rejected(name, req, f"not for broadcast: {name!r} must be sent to each device")
        why, signer = self._authentic(topic, request, broadcast)
        if why is None:
            why = self._fresh(request, now_ms)
        if why is not None:
            return Rejected(name, req, why)
        if not self.bucket.take(mono):
            return Rejected(
                name, req, f"rate limited: over commands.rate_per_min ({self.cfg.rate_per_min})"
            )
        try:
            args = spec.args.model_validate(request.args)
        except ValidationError as exc:
            return Rejected(name, req, f"invalid arguments: {errors_text(exc, 'args.')}")
        return Accepted(spec, req, args, broadcast, signer)

    def _authentic(
        self, topic: str, request: CommandRequest, broadcast: bool
    ) -> tuple[str | None, Signer]:
        """Why the signature is not good (None: it is), and which key made it."""
        key = self.keys.site if broadcast else self.keys.device
        previous = self.keys.previous_site if broadcast else self.keys.previous_device
        which: Signer = "site" if broadcast else "device"
        if key is None:
            return (self.keys.site_problem if broadcast else self.keys.device_problem), which
        if request.mac is None:
            return "unsigned: the command has no mac", which
        try:
            if verify(key, topic, request.req, request.ts, request.args, mac=request.mac):
                return None, which
            if previous is not None and verify(
                previous, topic, request.req, request.ts, request.args, mac=request.mac
            ):
                self.verified_with_previous += 1
                return None, "previous-site" if broadcast else "previous-device"
        except (TypeError, ValueError, RecursionError):
            why = "args cannot be put in canonical JSON, so the signature cannot be checked"
            return why, which
        return "bad signature: mac does not match (wrong key, or a different signed text)", which

    def _fresh(self, request: CommandRequest, now_ms: int) -> str | None:
        age = now_ms - request.ts
        limit = self.cfg.max_age_s
        if age > self.max_age_ms:
            return f"expired: sent {age / 1000:.1f} s ago, commands.max_age_s is {limit:g}"
        if -age > self.max_age_ms:
            return (
                f"from the future: ts is {-age / 1000:.1f} s ahead of this unit's clock "
                f"(max {limit:g} s); check both clocks"
            )
        return self.replay.check(request.req, request.ts)


def _parse(payload: bytes) -> tuple[Any, str]:
    try:
        return json.loads(payload), ""
    except UnicodeDecodeError as exc:
        return None, f"not valid JSON: byte {exc.start} is not UTF-8"
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc.msg} at byte {exc.pos}"
    except RecursionError:
        return None, "not valid JSON: nested too deeply"
