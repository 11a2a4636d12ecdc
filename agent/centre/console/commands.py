"""The console's commands to poles: a signed ``bell-ack``, a lookout, and the poles' answers.

Each pole verifies commands with its own device key (docs/operations.md): the console finds
it as ``KEY_DIR/<device>.key``, else uses the one ``--key-file`` (a lab, or a site that shares
one key).  A site-wide command (``lookout``, ``lookout-cancel``) goes to ``_site`` and is
signed with the site key, as ``pole-agent lookout send --key-file SITE.key`` does: the
console finds it as ``KEY_DIR/<site>.site.key``, else uses ``--site-key-file``.  Sending
blocks (connect, publish, wait for the results), so the web app runs it in a thread; each
command has its own short MQTT connection, like ``pole-agent send``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.centre.sender import BrokerAccess, request_command
from agent.control.auth import KeyFileError, load_key
from agent.events import CommandResultEvent

__all__ = ["Commander", "answer_facts"]


def answer_facts(event: CommandResultEvent) -> dict[str, Any]:
    """A pole's ``cmd_result`` as the console keeps and shows it."""
    return {"res": event.res, "why": event.why, "data": event.data}


@dataclass(frozen=True)
class Commander:
    access: BrokerAccess
    prefix: str = "pole"
    key_file: str | None = None
    key_dir: str | None = None
    v5: bool = True
    timeout_s: float = 10.0
    site_key_file: str | None = None

    def key(self, dev: str) -> bytes:
        """The device's command key; KeyFileError when there is none."""
        if self.key_dir and (Path(self.key_dir) / f"{dev}.key").exists():
            return load_key(str(Path(self.key_dir) / f"{dev}.key"))
        if self.key_file:
            return load_key(self.key_file)
        raise KeyFileError(f"no command key for {dev}: give --key-dir or --key-file")

    def site_key(self, site: str) -> bytes:
        """The site's key for broadcasts; KeyFileError when there is none."""
        if self.key_dir and (Path(self.key_dir) / f"{site}.site.key").exists():
            return load_key(str(Path(self.key_dir) / f"{site}.site.key"))
        if self.site_key_file:
            return load_key(self.site_key_file)
        raise KeyFileError(
            f"no site key for {site}: give --site-key-file or put {site}.site.key in --key-dir"
        )

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

    def broadcast(
        self, site: str, command: str, args: dict[str, Any], *, dev: str | None = None,
        on_answer: Callable[[CommandResultEvent], None] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Send ``command`` to every pole of ``site`` (site key), or to ``dev`` alone (its own
        key), collecting answers for ``timeout_s``; ``on_answer`` sees each as it comes.

        ``res``: ``ok`` when a pole took it, ``refused`` when every answer said no, ``no
        answer``, or ``not sent`` (no key, broker refused); ``answers`` by device.
        """
        try:
            key = self.key(dev) if dev else self.site_key(site)
        except KeyFileError as exc:
            return {"res": "not sent", "why": str(exc), "answers": {}}
        req, out = request_command(
            self.access, prefix=self.prefix, site=site, device=dev or "_site", command=command,
            key=key, args=args, timeout=self.timeout_s, v5=self.v5, on_result=on_answer,
        )  # fmt: skip
        answers = {d: answer_facts(e) for d, e in sorted(out.results.items())}
        if out.error and not answers:
            return {"res": "not sent", "why": out.error, "req": req, "answers": {}}
        if not answers:
            why = f"no pole answered within {self.timeout_s:g} s"
            return {"res": "no answer", "why": why, "req": req, "answers": {}}
        took = sum(a["res"] == "ok" for a in answers.values())
        said = None if took == len(answers) else f"{len(answers) - took} of {len(answers)} refused"
        return {"res": "ok" if took else "refused", "why": said, "req": req, "answers": answers}
