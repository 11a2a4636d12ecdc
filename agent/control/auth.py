"""Signing and checking commands: the HMAC over a canonical text, replay cache, rate limit.

Pure logic (no I/O except :func:`load_key`); time is always an argument.

The signed text is five lines joined by ``\\n``::

    pole-agent-cmd/1
    <topic>            the full topic the command is published on (binds prefix, site,
                       device or ``_site``, and the command name: no replay elsewhere)
    <req>
    <ts>               integer, UTC ms
    <args>             canonical JSON: sort_keys, separators (",", ":"), ASCII escapes

and ``mac`` is the lowercase hex HMAC-SHA256 of its UTF-8 bytes with the key: the 32
bytes written as 64 hex digits in the key file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import string
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from agent import credentials
from agent.errors import CredentialError

__all__ = [
    "SIGNATURE_VERSION",
    "KeyFileError",
    "ReplayCache",
    "TokenBucket",
    "canonical_args",
    "generate_key",
    "load_key",
    "make_request",
    "sign",
    "signed_text",
    "verify",
]

log = logging.getLogger(__name__)

SIGNATURE_VERSION = "pole-agent-cmd/1"
MIN_KEY_BYTES = 16


class KeyFileError(CredentialError):
    """The command key file is missing or not a key: one clear sentence."""


def canonical_args(args: dict[str, Any]) -> str:
    """The one JSON text of ``args`` both sides sign."""
    return json.dumps(args, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def signed_text(topic: str, req: str, ts: int, args: dict[str, Any]) -> bytes:
    """The exact bytes the HMAC covers."""
    return "\n".join([SIGNATURE_VERSION, topic, req, str(ts), canonical_args(args)]).encode()


def sign(key: bytes, topic: str, req: str, ts: int, args: dict[str, Any]) -> str:
    """Lowercase hex HMAC-SHA256 of :func:`signed_text`."""
    return hmac.new(key, signed_text(topic, req, ts, args), hashlib.sha256).hexdigest()


def verify(key: bytes, topic: str, req: str, ts: int, args: dict[str, Any], *, mac: str) -> bool:
    """True when ``mac`` is the right signature (constant-time comparison)."""
    return hmac.compare_digest(sign(key, topic, req, ts, args), mac.strip().lower())


def make_request(
    key: bytes | None,
    topic: str,
    args: dict[str, Any] | None = None,
    *,
    req: str | None = None,
    ts: int | None = None,
) -> tuple[str, bytes]:
    """A signed command payload for ``topic`` (unsigned when ``key`` is None): (req, bytes)."""
    req = req or secrets.token_hex(8)
    ts = time.time_ns() // 1_000_000 if ts is None else ts
    body: dict[str, Any] = {"req": req, "ts": ts, "args": args or {}}
    if key is not None:
        body["mac"] = sign(key, topic, req, ts, body["args"])
    return req, json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def generate_key() -> str:
    """A fresh key as the key file holds it: 64 hex digits."""
    return secrets.token_hex(32)


def load_key(name: str) -> bytes:
    """The key bytes from a key file of hex digits; KeyFileError says what is wrong."""
    path = credentials.resolve(name)
    try:
        text = credentials.read_text(name, "command key")
    except CredentialError as exc:
        raise KeyFileError(str(exc), exc.path) from None
    if len(text) % 2 or any(c not in string.hexdigits for c in text):
        raise KeyFileError(f"command key file {path} must hold hex digits only")
    key = bytes.fromhex(text)
    if len(key) < MIN_KEY_BYTES:
        raise KeyFileError(
            f"command key file {path} holds {len(key)} bytes; at least {MIN_KEY_BYTES} needed"
        )
    return key


class ReplayCache:
    """Request ids of accepted commands, by the commands' own timestamps; survives restarts.

    Freshness is checked against this unit's clock (``commands.max_age_s`` either side), but
    the replay cache does not trust that clock: it forgets an id only once a newer accepted
    command (the centre's clock, which only moves forward) is ``horizon_ms`` ahead of it,
    and it refuses anything older than that horizon, since it can no longer tell whether such
    a command was seen.  A step of this unit's clock, back or forward, changes neither.  With
    ``path`` the ids are kept in a small file (written atomically on each accepted command,
    at most ``commands.rate_per_min`` a minute), so a restart does not open a replay window
    and needs no "not before start" rule that a clock step would break.
    """

    def __init__(self, horizon_ms: int, max_entries: int = 4096, path: Path | None = None) -> None:
        self.horizon_ms = horizon_ms
        self.max_entries = max_entries
        self.path = path
        self._seen: OrderedDict[str, int] = OrderedDict()  # req -> command ts, oldest first
        self.newest = 0
        self.evicted = 0
        self.save_errors = 0
        if path is not None:
            self._load(path)

    def check(self, req: str, ts: int) -> str | None:
        """Why a command with this id and ts is a replay (or too old to tell), else None.

        A command that passes is remembered (and saved): call this last, after every other
        check, so that a refused command does not use up its id.
        """
        if ts < self.newest - self.horizon_ms:
            return (
                f"stale: older than commands already accepted by {self.horizon_ms / 1000:g} s "
                "or more; send it again"
            )
        if req in self._seen:
            return f"replayed: request id {req!r} was already used"
        self._seen[req] = ts
        self.newest = max(self.newest, ts)
        self._expire()
        if self.path is not None:
            self._save(self.path)
        return None

    def _expire(self) -> None:
        floor = self.newest - self.horizon_ms
        for req, ts in list(self._seen.items()):
            if ts < floor:
                del self._seen[req]
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)
            self.evicted += 1

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            entries = data["seen"]
            self.newest = int(data["newest"])
            for req, ts in entries:
                self._seen[str(req)] = int(ts)
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # A damaged file must not stop commands: start empty, but refuse what may be old.
            log.warning("commands: replay cache %s unreadable (%s); starting empty", path, exc)
            self._seen.clear()
        self._expire()

    def _save(self, path: Path) -> None:
        data = {"newest": self.newest, "seen": list(self._seen.items())}
        tmp = path.with_name(f".{path.name}.new")
        try:
            with tmp.open("w", encoding="utf-8") as f:
                json.dump(data, f, separators=(",", ":"))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:  # a read-only card: commands still work, replays after a restart
            self.save_errors += 1
            log.warning("commands: cannot save the replay cache %s: %s", path, exc)

    def __len__(self) -> int:
        return len(self._seen)


class TokenBucket:
    """``rate_per_min`` tokens a minute, holding at most ``burst``; time in seconds."""

    def __init__(self, rate_per_min: float, burst: float, now: float) -> None:
        self.rate = rate_per_min / 60.0
        self.burst = burst
        self.tokens = burst
        self.t = now

    def take(self, now: float) -> bool:
        """Spend a token if there is one."""
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.t) * self.rate)
        self.t = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
