"""The lookout audit log on the pole: every lookout and every candidate sent, kept for days.

A JSON-lines file next to the spool (``lookout.audit_path``, default ``lookout-audit.jsonl``
in the spool's folder), written by the one process that runs the matcher (the vision
child, or the vision thread).  One line per fact, ``{"ts": <UTC ms>, "kind": ..., ...}``:

- ``lookout``: a lookout taken on (id, request id, which key signed it: ``device``,
  ``site``, ``previous-device`` or ``previous-site``, site broadcast or not, the slots asked,
  look-back and expiry; ``replayed`` when re-sent to a restarted vision process);
- ``candidate``: a candidate sent (lookout id, event id, camera, track, score, matched
  slots, thumbnail bytes);
- ``cancel`` and ``expired``: the end of a lookout and how many candidates it sent.

Lines older than ``lookout.audit_days`` are removed when the log is opened and then once a
day (the file is rewritten atomically).  ``pole-agent lookout audit`` reads it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

__all__ = ["AuditLog", "read_audit"]

log = logging.getLogger(__name__)

DAY_MS: Final = 86_400_000


def read_audit(path: Path) -> list[dict[str, Any]]:
    """Every entry of the log, oldest first; a damaged line is skipped (and logged)."""
    out: list[dict[str, Any]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return out
    for n, line in enumerate(text.splitlines(), 1):
        try:
            entry = json.loads(line)
        except ValueError:
            log.warning("lookout audit %s: line %d is damaged, skipped", path, n)
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out


class AuditLog:
    """Appends entries; drops those older than ``keep_days`` on open and once a day."""

    def __init__(
        self, path: str | Path, keep_days: float = 90.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self.keep_ms = int(keep_days * DAY_MS)
        self._clock = clock
        self._lock = threading.Lock()
        self.errors = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._pruned_ms = 0
        self.prune()

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def write(self, kind: str, **fields: Any) -> bool:
        """One entry; False (counted, logged) when the disk refused it."""
        now = self.now_ms()
        line = json.dumps({"ts": now, "kind": kind, **fields}, ensure_ascii=False)
        with self._lock:
            if now - self._pruned_ms >= DAY_MS:
                self._prune(now)
            try:
                with self.path.open("a", encoding="utf-8") as f:
                    f.write(line + "\n")
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as exc:
                self.errors += 1
                log.error("lookout audit %s: cannot write: %s", self.path, exc)
                return False
        return True

    def prune(self) -> int:
        """Remove the entries older than ``keep_days`` now; how many went."""
        with self._lock:
            return self._prune(self.now_ms())

    def _prune(self, now: int) -> int:
        self._pruned_ms = now
        entries = read_audit(self.path)
        keep = [e for e in entries if int(e.get("ts", 0)) >= now - self.keep_ms]
        if len(keep) == len(entries):
            return 0
        tmp = self.path.with_name(f".{self.path.name}.new")
        try:
            with tmp.open("w", encoding="utf-8") as f:
                f.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in keep)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            self.errors += 1
            log.error("lookout audit %s: cannot prune: %s", self.path, exc)
            return 0
        return len(entries) - len(keep)
