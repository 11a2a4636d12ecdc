"""The ``commands`` thread: takes messages from the link, checks them, runs handlers.

``submit`` is called by the link thread for every message on the command topics and
never blocks: a bounded queue, and a full queue drops and counts.  The thread passes each
message through the :class:`~agent.control.gate.Gate`, runs the handler of an accepted
command, and answers with exactly one ``cmd_result`` event through the outbox (so through
the spool, like any event).  Nothing a message contains can stop the thread or the bell.
"""

from __future__ import annotations

import logging
import queue
import time
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from agent.control.auth import TokenBucket
from agent.control.gate import Accepted, Dropped, Gate, Keys, Rejected
from agent.control.handlers import COMMANDS
from agent.control.registry import (
    BellControl,
    Context,
    Outcome,
    Request,
    RunnerControl,
    VisionControl,
    by_name,
)
from agent.events import now_ms
from agent.logs import Throttle
from agent.outbox import Outbox
from agent.worker import Worker

__all__ = ["CommandService"]

log = logging.getLogger(__name__)

QUEUE_SIZE = 64
LOG_EVERY_S = 60.0
MAX_WHY = 2000
Message = tuple[str, bytes, int]  # topic, payload (or its head), size


class CommandService(Worker):
    """Owns the ``commands`` thread. Build, ``attach`` the stages, ``start``."""

    def __init__(self, cfg: AgentConfig, outbox: Outbox) -> None:
        super().__init__("commands")
        self.cfg = cfg
        self.outbox = outbox
        self.ctx = Context(cfg=cfg, outbox=outbox)
        self.keys = Keys.load(cfg.commands)
        mono = time.monotonic()
        self.gate = Gate(
            cfg.commands,
            outbox.topics,
            by_name(COMMANDS),
            self.keys,
            mono=mono,
            # next to the spool this service really writes to (not a path relative to the cwd)
            replay_file=Path(outbox.spool.path).with_name("commands-replay.json"),
        )
        # Rejections are answered too, so answers are rate-limited as well: a flood of
        # garbage must not fill the spool with results at alarm priority.
        self._answers = TokenBucket(cfg.commands.rate_per_min, cfg.commands.rate_per_min, mono)
        self._queue: queue.Queue[Message] = queue.Queue(maxsize=QUEUE_SIZE)
        self._log_gate = Throttle(LOG_EVERY_S)
        self.counts: dict[str, int] = {"ok": 0, "rejected": 0, "failed": 0, "queue_full": 0}
        self.dropped: dict[str, int] = {}

    # ------------------------------------------------------------------ wiring
    def attach(
        self,
        *,
        runner: RunnerControl | None,
        bell: BellControl | Any | None,
        vision: VisionControl | Any | None,
    ) -> None:
        """Give the handlers the stages they act on (bell or vision may be None)."""
        self.ctx.runner, self.ctx.bell, self.ctx.vision = runner, bell, vision

    def submit(self, topic: str, payload: bytes) -> None:
        """Called by the link thread for each command message; never blocks."""
        size = len(payload)
        if size > self.cfg.commands.max_bytes:
            payload = payload[:512]  # enough to find a request id; the rest is not kept
        try:
            self._queue.put_nowait((topic, payload, size))
        except queue.Full:
            self.counts["queue_full"] += 1
            self._log_limited(
                "queue_full",
                "commands: queue full, message dropped (%d so far)",
                self.counts["queue_full"],
            )

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if not self.keys.device:
            log.warning("commands: %s", self.keys.device_problem)
        super().start()

    def facts(self) -> dict[str, Any]:
        return {
            **self.counts,
            "dropped": dict(self.dropped),
            "queued": self._queue.qsize(),
            "keyed": self.keys.device is not None,
            # Commands still signed with the key before a rotation: the centre sees stragglers.
            "prev_key": self.gate.verified_with_previous,
            "replay_save_errors": self.gate.replay.save_errors,
        }

    # ------------------------------------------------------------------ the thread
    def _turn(self) -> None:
        try:
            message = self._queue.get(timeout=0.5)
        except queue.Empty:
            return
        self._handle(*message)

    def _finish(self) -> None:
        if self._stop.is_set():
            self._drain()

    def _crashed(self, exc: Exception) -> None:
        log.error("commands thread crashed; commands are no longer answered: %s", exc, exc_info=exc)

    def _drain(self) -> None:
        # Stopping (or reloading): what is still queued gets its one answer, not run.
        while True:
            try:
                message = self._queue.get_nowait()
            except queue.Empty:
                return
            self._handle(*message, run=False)

    def _handle(self, topic: str, payload: bytes, size: int, *, run: bool = True) -> None:
        try:
            verdict = self.gate.check(topic, payload, size, now_ms(), time.monotonic())
        except Exception:  # a bug in a check must not end the thread
            log.exception("commands: checking a message on %s failed", topic[:200])
            self._drop("check_error", "see the log")
            return
        if isinstance(verdict, Dropped):
            self._drop(verdict.reason, verdict.detail)
        elif isinstance(verdict, Rejected):
            self._answer(verdict.name, verdict.req, Outcome.rejected(verdict.why))
        elif run:
            self._answer(verdict.spec.name, verdict.req, self._execute(verdict))
        else:
            why = "the agent is stopping or reloading; not run, send it again"
            self._answer(verdict.spec.name, verdict.req, Outcome.failed(why))

    def _execute(self, cmd: Accepted) -> Outcome:
        log.info(
            "command %s (req %s)%s", cmd.spec.name, cmd.req, " [site]" if cmd.broadcast else ""
        )
        self.ctx.request = Request(cmd.req, cmd.signer, cmd.broadcast)
        try:
            return cmd.spec.handler(self.ctx, cmd.args)
        except Exception as exc:
            log.exception("command %s (req %s) failed", cmd.spec.name, cmd.req)
            return Outcome.failed(f"{type(exc).__name__}: {exc}"[:MAX_WHY])

    def _answer(self, name: str, req: str, out: Outcome) -> None:
        self.counts[out.res] += 1
        if out.res == "rejected":
            kind = f"rejected:{(out.why or '').split(':')[0][:40]}"
            self._log_limited(kind, "command %s (req %s) rejected: %s", name, req, out.why)
            if not self._answers.take(time.monotonic()):
                self._drop("answers_limited", "too many rejections to answer")
                return
        why = out.why[:MAX_WHY] if out.why else None
        event = self.outbox.stamper.cmd_result(
            req=req, cmd=name, res=out.res, why=why, data=out.data
        )
        if self.outbox.emit(event) and out.after is not None:
            out.after()

    def _drop(self, reason: str, detail: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        if reason != "probe":
            count = self.dropped[reason]
            self._log_limited(
                reason, "commands: message dropped (%s): %s (%d so far)", reason, detail, count
            )

    def _log_limited(self, key: str, template: str, *args: Any) -> None:
        # A flood must not flood the journal: one line per kind a minute, with the count.
        if self._log_gate.ready(key):
            log.warning(template, *args)
