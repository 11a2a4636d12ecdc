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
import secrets
import string
import time
from collections import OrderedDict
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
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise KeyFileError(f"command key file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"command key file {path} cannot be read: {exc}") from None
    if len(text) % 2 or any(c not in string.hexdigits for c in text):
        raise KeyFileError(f"command key file {path} must hold hex digits only")
    key = bytes.fromhex(text)
    if len(key) < MIN_KEY_BYTES:
        raise KeyFileError(
            f"command key file {path} holds {len(key)} bytes; at least {MIN_KEY_BYTES} needed"
        )
    return key


class ReplayCache:
    """Request ids seen within the freshness window; bounded, oldest forgotten first.

    An id only needs remembering while a command carrying it could still pass the age
    check, so entries older than ``window_ms`` are dropped on every call.
    """

    def __init__(self, window_ms: int, max_entries: int = 4096) -> None:
        self.window_ms = window_ms
        self.max_entries = max_entries
        self._seen: OrderedDict[str, int] = OrderedDict()  # req -> wall ms when seen
        self.evicted = 0

    def seen(self, req: str, now_ms: int) -> bool:
        """True if ``req`` was seen before; otherwise remember it and return False."""
        self._expire(now_ms)
        if req in self._seen:
            return True
        self._seen[req] = now_ms
        if len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)
            self.evicted += 1
        return False

    def _expire(self, now_ms: int) -> None:
        while self._seen:
            oldest = next(iter(self._seen.values()))
            if now_ms - oldest <= self.window_ms:
                return
            self._seen.popitem(last=False)

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
