"""The console's commands to poles: a signed ``bell-ack``, and the pole's ``cmd_result``.

Each pole verifies commands with its own device key (docs/operations.md): the console finds
it as ``KEY_DIR/<device>.key``, else uses the one ``--key-file`` (a lab, or a site that shares
one key).  Sending blocks (connect, publish, wait for the result), so the web app runs it in a
thread; each command has its own short MQTT connection, like ``pole-agent send``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.centre.sender import BrokerAccess, request_command
from agent.control.auth import KeyFileError, load_key

__all__ = ["Commander"]


@dataclass(frozen=True)
class Commander:
    access: BrokerAccess
    prefix: str = "pole"
    key_file: str | None = None
    key_dir: str | None = None
    v5: bool = True
    timeout_s: float = 10.0

    def key(self, dev: str) -> bytes:
        """The device's command key; KeyFileError when there is none."""
        if self.key_dir and (Path(self.key_dir) / f"{dev}.key").exists():
            return load_key(str(Path(self.key_dir) / f"{dev}.key"))
        if self.key_file:
            return load_key(self.key_file)
        raise KeyFileError(f"no command key for {dev}: give --key-dir or --key-file")

    def ack(self, site: str, dev: str) -> dict[str, Any]:
        """Send ``bell-ack`` to ``dev``; what came back as JSON-able facts (``res`` always)."""
        try:
            key = self.key(dev)
        except KeyFileError as exc:
            return {"res": "not sent", "why": str(exc)}
        req, out = request_command(
            self.access, prefix=self.prefix, site=site, device=dev, command="bell-ack",
            key=key, timeout=self.timeout_s, v5=self.v5,
        )  # fmt: skip
        result = out.results.get(dev)
        if out.error or result is None:
            why = out.error or f"no answer from {dev} within {self.timeout_s:g} s"
            return {"res": "no answer", "why": why, "req": req}
        return {"res": result.res, "why": result.why, "data": result.data, "req": req}
