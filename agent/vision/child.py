"""The vision process: a :class:`~agent.vision.VisionService` behind a socket to the agent.

Started by :class:`agent.vision.process.VisionProcess` as ``python -m agent.vision.child --fd N``.
It lowers its own CPU priority first (SCHED_IDLE by default; before numpy, OpenCV or
onnxruntime start their thread pools, which inherit it), then reads its config from the
socket, runs the service with a :class:`PipeOutbox`, and sends everything the service
emits to the parent.

Messages are pickled tuples over a ``multiprocessing.connection.Connection``:

- parent -> child: ``("config", cameras, detection, device_id, boot_id)`` first, then
  ``("snap", event_id, camera)``, ``("rule", name, armed, remaining_s)``, ``("stop",)``;
- child -> parent: ``("ready", pid, priority)``, ``("event", json)``, ``("state", name, state,
  since, detail)``, ``("snap", event_id, jpeg)``, ``("facts", cams, detector, progress_age_s,
  counters)``, ``("fatal", text)``.

The child never blocks its vision thread on a slow parent for long: its outgoing queue is
bounded; object events and facts are dropped (counted) when it is three quarters full,
other messages wait at most ``BLOCK_S`` and are then dropped (counted, logged).  SIGINT,
SIGTERM and SIGHUP are ignored: a terminal's Ctrl-C or systemd's stop reaches the whole
group, and the parent decides when its child stops (``stop``, or the socket closing).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import queue
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from agent.outbox import Outbox

if TYPE_CHECKING:
    from agent.events import Event, EventStamper
    from agent.vision.service import VisionService

__all__ = ["Child", "PipeOutbox", "main"]

log = logging.getLogger("agent.vision.child")

OUT_MAX = 64  # messages waiting for the parent
SOFT_MAX = OUT_MAX * 3 // 4  # above this, droppable messages are dropped
BLOCK_S = 2.0  # longest wait of a non-droppable message for room
FACTS_S = 1.0  # facts period
FIRST_FACTS_S = 0.2  # ... while a camera is still starting
STOP_S = 3.0  # the service's stop timeout


class PipeOutbox(Outbox):
    """An Outbox whose ``emit``/``state``/``snapshot`` go to the parent, not to a spool."""

    def __init__(self, child: Child, stamper: EventStamper) -> None:
        # No spool here on purpose: the parent owns it; only the stamper is used.
        self.stamper = stamper
        self.failed = 0
        self._child = child

    def emit(self, event: Event) -> bool:
        from agent.events import encode

        return self._child.offer(("event", encode(event)), droppable=event.k == "object")

    def state(
        self, name: str, state: str, since: int, detail: dict[str, Any] | None = None
    ) -> None:
        self._child.offer(("state", name, state, since, detail), droppable=False)

    def snapshot(self, event_id: str, jpeg: bytes) -> None:
        self._child.offer(("snap", event_id, jpeg), droppable=False)


class Child:
    """The child's side: a receiver thread, a sender thread, facts from the main thread."""

    def __init__(self, conn: Connection, priority: str | None) -> None:
        self.conn = conn
        self.priority = priority
        self.out: queue.Queue[tuple[Any, ...] | None] = queue.Queue(maxsize=OUT_MAX)
        self.stop = threading.Event()
        self.dropped_objects = 0
        self.dropped_other = 0
        self.service: VisionService | None = None

    # ------------------------------------------------------------------ outgoing
    def offer(self, msg: tuple[Any, ...], *, droppable: bool) -> bool:
        """Queue a message for the parent; False (counted) when it had to be dropped."""
        try:
            if not droppable:
                self.out.put(msg, timeout=BLOCK_S)
            elif self.out.qsize() < SOFT_MAX:
                self.out.put_nowait(msg)
            else:
                raise queue.Full
        except queue.Full:
            if droppable:
                self.dropped_objects += msg[0] == "event"
                return False
            self.dropped_other += 1
            log.error("vision process: the agent does not read; %s message dropped", msg[0])
            return False
        return True

    def _send_loop(self) -> None:
        while True:
            msg = self.out.get()
            if msg is None:
                return
            try:
                self.conn.send(msg)
            except (OSError, ValueError):  # the parent is gone: nobody to work for
                self.stop.set()
                return

    # ------------------------------------------------------------------ incoming
    def _recv_loop(self) -> None:
        try:
            while not self.stop.is_set():
                self._handle(self.conn.recv())
        except (EOFError, OSError):
            pass  # the parent closed its end or died
        except Exception:
            log.exception("vision process: bad message from the agent; stopping")
        self.stop.set()

    def _handle(self, msg: tuple[Any, ...]) -> None:
        svc = self.service
        if msg[0] == "stop" or svc is None:
            self.stop.set()
        elif msg[0] == "snap":
            svc.request_snapshot(msg[1], msg[2])
        elif msg[0] == "rule":
            _, name, armed, remaining = msg
            # A duration, not a monotonic instant: correct whatever the two clocks are.
            until = None if remaining is None else time.monotonic() + remaining
            (svc.arm if armed else svc.disarm)(name, until)

    # ------------------------------------------------------------------ main
    def run(self) -> int:
        try:
            first = self.conn.recv()
        except (EOFError, OSError):
            return 0
        try:
            self.service = self._build(first)
        except Exception as exc:  # say why to the parent, then exit
            log.exception("vision process: could not start")
            self.conn.send(("fatal", f"{type(exc).__name__}: {exc}"[:500]))
            return 2
        sender = threading.Thread(target=self._send_loop, name="child-send", daemon=True)
        sender.start()
        threading.Thread(target=self._recv_loop, name="child-recv", daemon=True).start()
        self.service.start()
        self.offer(("ready", os.getpid(), self.priority), droppable=False)
        period = FIRST_FACTS_S  # the agent learns soon that a camera is up (snapshots)
        while not self.stop.wait(period):
            facts = self._facts()
            self.offer(facts, droppable=True)
            if all(f.get("state") != "starting" for f in facts[1].values()):
                period = FACTS_S
        self.service.stop(STOP_S)
        self.offer(self._facts(), droppable=True)
        with contextlib.suppress(queue.Full):
            self.out.put(None, timeout=BLOCK_S)
        sender.join(BLOCK_S)
        return 0

    def _build(self, first: tuple[Any, ...]) -> VisionService:
        from agent.events import EventStamper
        from agent.vision.service import VisionService

        kind, cameras, detection, device_id, boot_id = first
        if kind != "config":
            raise ValueError(f"expected the config message first, got {kind!r}")
        return VisionService(cameras, detection, PipeOutbox(self, EventStamper(device_id, boot_id)))

    def _facts(self) -> tuple[Any, ...]:
        svc = self.service
        assert svc is not None
        counters = {"dropped_objects": self.dropped_objects, "dropped_other": self.dropped_other}
        age = time.monotonic() - svc.last_progress()
        return ("facts", svc.facts(), svc.detector_facts(), age, counters)


def _lower_priority(priority: str) -> str | None:
    """``idle`` (SCHED_IDLE) or a niceness to add; what was set, None when refused.

    SCHED_IDLE is preferred because a waking normal task preempts an idle one at once; a
    niced task may still finish its time slice first, a few ms per hop on the bell's path.
    Lowering one's own priority needs no privilege, but a seccomp filter can refuse it
    (systemd's ``SystemCallFilter=~@resources``).  Linux applies both per thread: called
    before any thread exists, every thread started later inherits it.
    """
    try:
        if priority == "idle":
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return "idle"
        return f"nice {os.nice(int(priority))}"  # the resulting niceness
    except (OSError, AttributeError) as exc:
        # Logging is not set up yet; the parent reports priority None from "ready".
        print(f"vision process: could not lower its priority: {exc}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m agent.vision.child``."""
    ap = argparse.ArgumentParser(prog="agent.vision.child", description=__doc__.split("\n")[0])
    ap.add_argument("--fd", type=int, required=True, help="socket to the agent")
    ap.add_argument("--priority", default="idle", help="'idle' (SCHED_IDLE) or niceness to add")
    ap.add_argument("--log-level", default="info")
    args = ap.parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    priority = _lower_priority(args.priority)  # first: thread pools started later inherit it
    from agent import logs

    logs.setup(args.log_level)
    code = Child(Connection(args.fd), priority).run()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Daemon threads may sit in native code (a camera read, onnxruntime): do not let
    # interpreter finalisation wait on or tear them down under their feet.
    os._exit(code)


if __name__ == "__main__":
    main()
