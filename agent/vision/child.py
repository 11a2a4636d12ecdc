"""The vision process: a :class:`~agent.vision.service.VisionService` behind a socket.

Started by :class:`agent.vision.process.VisionProcess` as ``python -m agent.vision.child
--fd N``, with an environment built from an allow-list (no credentials).  It lowers its
own CPU priority first (SCHED_IDLE by default; before numpy, OpenCV or onnxruntime start
their thread pools, which inherit it), then reads its :class:`~agent.vision.protocol.Config`
from the socket, runs the service with a :class:`PipeSink`, and sends everything the
service emits to the parent.  The messages and their frames are in
:mod:`agent.vision.protocol`; a message from the agent that breaks it stops the child.

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
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from agent.vision.protocol import (
    Config,
    EventReport,
    Facts,
    Fatal,
    FrameReader,
    LookoutCancel,
    LookoutRequest,
    ProtocolError,
    Ready,
    RuleRequest,
    SnapRequest,
    Snapshot,
    StateReport,
    ToChild,
    ToParent,
    decode_to_child,
    encode,
)

if TYPE_CHECKING:
    from agent.events import Event, EventStamper
    from agent.vision.service import VisionService

__all__ = ["Child", "PipeSink", "main"]

log = logging.getLogger("agent.vision.child")

OUT_MAX = 64  # messages waiting for the parent
SOFT_MAX = OUT_MAX * 3 // 4  # above this, droppable messages are dropped
BLOCK_S = 2.0  # longest wait of a non-droppable message for room
FACTS_S = 1.0  # facts period
FIRST_FACTS_S = 0.2  # ... while a camera is still starting
STOP_S = 3.0  # the service's stop timeout


class PipeSink:
    """The child's :class:`~agent.outbox.EventSink`: everything goes to the parent."""

    def __init__(self, child: Child, stamper: EventStamper) -> None:
        self.stamper = stamper  # ids made here are replaced by the parent's stamper
        self._child = child

    def emit(self, event: Event) -> bool:
        return self._child.offer(EventReport(event=event), droppable=event.k == "object")

    def state(
        self, name: str, state: str, since: int, detail: dict[str, Any] | None = None
    ) -> None:
        msg = StateReport(name=name, state=state, since=since, detail=detail)
        self._child.offer(msg, droppable=False)

    def snapshot(self, event_id: str, jpeg: bytes) -> None:
        self._child.offer(Snapshot(event_id=event_id, jpeg=jpeg), droppable=False)


class Child:
    """The child's side: a receiver thread, a sender thread, facts from the main thread."""

    def __init__(self, sock: socket.socket, priority: str | None) -> None:
        self.sock = sock
        self.reader = FrameReader(sock)
        self.priority = priority
        self.out: queue.Queue[ToParent | None] = queue.Queue(maxsize=OUT_MAX)
        self.stop = threading.Event()
        self.dropped_objects = 0
        self.dropped_other = 0
        self.service: VisionService | None = None

    # ------------------------------------------------------------------ outgoing
    def offer(self, msg: ToParent, *, droppable: bool) -> bool:
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
                self.dropped_objects += isinstance(msg, EventReport)
                return False
            self.dropped_other += 1
            log.error("vision process: the agent does not read; %s message dropped", msg.t)
            return False
        return True

    def _send_loop(self) -> None:
        while True:
            msg = self.out.get()
            if msg is None:
                return
            try:
                frame = encode(msg)
            except (ProtocolError, ValueError) as exc:  # a bug here: say it, carry on
                self.dropped_other += 1
                log.error("vision process: %s message not sent: %s", msg.t, exc)
                continue
            try:
                self.sock.sendall(frame)
            except OSError:  # the parent is gone: nobody to work for
                self.stop.set()
                return

    # ------------------------------------------------------------------ incoming
    def _receive(self) -> ToChild:
        """The next message from the agent (blocking); EOFError when it closed its end."""
        while (frame := self.reader.read(None)) is None:
            pass
        return decode_to_child(frame)

    def _recv_loop(self) -> None:
        try:
            while not self.stop.is_set():
                self._handle(self._receive())
        except (EOFError, OSError):
            pass  # the parent closed its end or died
        except Exception:
            log.exception("vision process: bad message from the agent; stopping")
        self.stop.set()

    def _handle(self, msg: ToChild) -> None:
        svc = self.service
        if svc is None or not isinstance(
            msg, SnapRequest | RuleRequest | LookoutRequest | LookoutCancel
        ):
            self.stop.set()  # Stop, or a second Config
        elif isinstance(msg, SnapRequest):
            svc.request_snapshot(msg.event_id, msg.camera)
        elif isinstance(msg, LookoutRequest):
            why = svc.start_lookout(msg)
            if isinstance(why, str):
                log.error("vision process: lookout %s not taken on: %s", msg.spec.id, why)
        elif isinstance(msg, LookoutCancel):
            svc.cancel_lookout(msg.id)
        else:
            # A duration, not a monotonic instant: correct whatever the two clocks are.
            until = None if msg.remaining_s is None else time.monotonic() + msg.remaining_s
            (svc.arm if msg.armed else svc.disarm)(msg.name, until)

    # ------------------------------------------------------------------ main
    def run(self) -> int:
        try:
            first = self._receive_first()
        except (EOFError, OSError):
            return 0
        try:
            self.service = self._build(first)
        except Exception as exc:  # say why to the parent, then exit
            log.exception("vision process: could not start")
            with contextlib.suppress(OSError):
                self.sock.sendall(encode(Fatal(text=f"{type(exc).__name__}: {exc}"[:500])))
            return 2
        sender = threading.Thread(target=self._send_loop, name="child-send", daemon=True)
        sender.start()
        threading.Thread(target=self._recv_loop, name="child-recv", daemon=True).start()
        self.service.start()
        self.offer(Ready(pid=os.getpid(), priority=self.priority), droppable=False)
        period = FIRST_FACTS_S  # the agent learns soon that a camera is up (snapshots)
        while not self.stop.wait(period):
            facts = self._facts()
            self.offer(facts, droppable=True)
            if all(f.get("state") != "starting" for f in facts.cameras.values()):
                period = FACTS_S
        self.service.stop(STOP_S)
        self.offer(self._facts(), droppable=True)
        with contextlib.suppress(queue.Full):
            self.out.put(None, timeout=BLOCK_S)
        sender.join(BLOCK_S)
        return 0

    def _receive_first(self) -> ToChild | ProtocolError:
        """The first message, or the ProtocolError it raised (reported as fatal)."""
        try:
            return self._receive()
        except ProtocolError as exc:
            return exc

    def _build(self, first: ToChild | ProtocolError) -> VisionService:
        from agent.events import EventStamper
        from agent.vision.service import VisionService

        if isinstance(first, ProtocolError):
            raise first
        if not isinstance(first, Config):
            raise ProtocolError(f"expected the config message first, got {first.t!r}")
        sink = PipeSink(self, EventStamper(first.device_id, first.boot_id))
        return VisionService(
            list(first.cameras),
            first.detection,
            sink,
            lookout=first.lookout,
            first_tids=first.first_tids,
        )

    def _facts(self) -> Facts:
        svc = self.service
        assert svc is not None
        counters = {"dropped_objects": self.dropped_objects, "dropped_other": self.dropped_other}
        age = time.monotonic() - svc.last_progress()
        return Facts(
            cameras=svc.facts(),
            detector=svc.detector_facts(),
            progress_age_s=age,
            counters=counters,
            stuck=svc.stuck_captures(),
            next_tids=svc.tracker_next_ids(),
        )


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
    code = Child(socket.socket(fileno=args.fd), priority).run()
    logs.shutdown()  # os._exit below skips the exit hooks that would flush the log queue
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Daemon threads may sit in native code (a camera read, onnxruntime): do not let
    # interpreter finalisation wait on or tear them down under their feet.
    os._exit(code)


if __name__ == "__main__":
    main()
