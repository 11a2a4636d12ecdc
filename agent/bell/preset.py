"""Turn the camera to the bell on activation: ONVIF PTZ ``GotoPreset``, off the bell thread.

A camera on the network can take seconds to answer, so the request runs on its own thread
(``bell-preset``) fed by a one-slot queue: the bell thread only drops a request in and
goes on (a second activation while one move is pending adds nothing).  The SOAP request
carries a WS-Security UsernameToken with a password digest
(base64(sha1(nonce + created + password))), which ONVIF cameras accept.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import queue
import secrets
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from agent import credentials
from agent.config import PresetConfig
from agent.worker import Worker

__all__ = ["PresetMover", "goto_preset_request", "password_digest"]

log = logging.getLogger(__name__)

TIMEOUT_S = 5.0
ACTION = "http://www.onvif.org/ver20/ptz/wsdl/GotoPreset"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
USERNAME_PROFILE = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
)
SOAP_SEC = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0"


def password_digest(nonce: bytes, created: str, password: str) -> str:
    """WS-Security PasswordDigest."""
    raw = hashlib.sha1(nonce + created.encode() + password.encode()).digest()  # noqa: S324 - the standard says SHA-1
    return base64.b64encode(raw).decode()


def goto_preset_request(cfg: PresetConfig, password: str, nonce: bytes, created: str) -> bytes:
    """The SOAP 1.2 envelope of a GotoPreset call."""
    security = ""
    if cfg.username:
        security = (
            f'<s:Header><Security s:mustUnderstand="1" xmlns="{WSSE}"><UsernameToken>'
            f"<Username>{escape(cfg.username)}</Username>"
            f'<Password Type="{USERNAME_PROFILE}#PasswordDigest">'
            f"{password_digest(nonce, created, password)}</Password>"
            f'<Nonce EncodingType="{SOAP_SEC}#Base64Binary">'
            f"{base64.b64encode(nonce).decode()}</Nonce>"
            f'<Created xmlns="{WSU}">{created}</Created>'
            "</UsernameToken></Security></s:Header>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">'
        f"{security}<s:Body>"
        '<GotoPreset xmlns="http://www.onvif.org/ver20/ptz/wsdl">'
        f"<ProfileToken>{escape(cfg.profile_token)}</ProfileToken>"
        f"<PresetToken>{escape(cfg.preset)}</PresetToken>"
        "</GotoPreset></s:Body></s:Envelope>"
    ).encode()


def _password(cfg: PresetConfig) -> str:
    if not cfg.password_file:
        return ""
    return credentials.read_text(cfg.password_file, "bell.preset.password_file")


class PresetMover(Worker):
    """Owns the ``bell-preset`` thread. ``request()`` never blocks."""

    def __init__(self, cfg: PresetConfig) -> None:
        super().__init__("bell-preset")
        self.cfg = cfg
        self._q: queue.Queue[str | None] = queue.Queue(maxsize=1)
        self._password = ""
        self.moves = 0
        self.failures = 0
        self.last_error: str | None = None

    def start(self) -> None:
        """Read the password (CredentialError if unreadable) and start the thread."""
        self._password = _password(self.cfg)
        super().start()

    def _wake(self) -> None:
        # A pending move is dropped for the wake-up: stopping wins over turning the camera.
        with contextlib.suppress(queue.Empty):
            self._q.get_nowait()
        with contextlib.suppress(queue.Full):
            self._q.put_nowait(None)

    def request(self, event_id: str) -> bool:
        """Ask for a move; it is pending afterwards (a pending one serves this call too)."""
        with contextlib.suppress(queue.Full):
            self._q.put_nowait(event_id)
        return True

    def facts(self) -> dict[str, Any]:
        return {"moves": self.moves, "failures": self.failures, "error": self.last_error}

    def _run(self) -> None:
        while (event_id := self._q.get()) is not None and not self._stop.is_set():
            self.progress()
            try:
                self.move()
            except (OSError, urllib.error.URLError) as exc:
                self.failures += 1
                self.last_error = str(exc)[:200]
                log.error(
                    "bell: camera preset %s for %s failed: %s", self.cfg.preset, event_id, exc
                )
            except Exception as exc:  # the runner counts this thread as the bell's: stay up
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:200]
                log.exception("bell: camera preset request crashed")
            else:
                self.moves += 1
                log.info("bell: camera %s moved to preset %s", self.cfg.camera, self.cfg.preset)

    def move(self) -> None:
        """One GotoPreset call; raises OSError/URLError on failure."""
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = goto_preset_request(self.cfg, self._password, secrets.token_bytes(16), created)
        req = urllib.request.Request(  # noqa: S310 - the URL is the configured camera
            self.cfg.onvif_url,
            data=body,
            headers={"Content-Type": f'application/soap+xml; charset=utf-8; action="{ACTION}"'},
            method="POST",
        )
        started = time.monotonic()
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:  # noqa: S310
            resp.read(65536)
        log.debug("GotoPreset answered in %.0f ms", (time.monotonic() - started) * 1000)
