"""One generation of the vision child: how it starts, what it inherits, how it ends.

:func:`launch` starts ``python -m agent.vision.child`` with one end of a socket pair and
sends it its :class:`~agent.vision.protocol.Config`; :class:`ChildProcess` is the agent's
handle on it (the process, its socket, what vision-rx knows of it); :func:`end_process`
waits for it, then kills it.

The child parses untrusted network video, so its environment is built from an allow-list
(:func:`child_env`), not the agent's minus a few names: ``$CREDENTIALS_DIRECTORY``, a
password in a variable the config names, systemd's notify socket and anything else
nobody thought of stay out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agent.vision.protocol import Config, FrameReader, ToChild, encode

__all__ = ["ENV_NAMES", "ENV_PREFIXES", "ChildProcess", "child_env", "end_process", "launch"]

log = logging.getLogger(__name__)

# What the child may inherit: locale, time zone, Python's and the thread pools' knobs,
# OpenCV's FFmpeg options, the asset cache, journald's stream.  Nothing else: no
# credentials, no password variables, no NOTIFY_SOCKET or WATCHDOG_* (NotifyAccess=main).
ENV_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "JOURNAL_STREAM",
        "POLE_AGENT_CACHE",
        "XDG_CACHE_HOME",
    }
)
ENV_PREFIXES = ("LC_", "PYTHON", "OMP_", "OPENBLAS_", "MKL_", "ORT_", "OPENCV_")


@dataclass
class ChildProcess:
    """One generation of the child process and the agent's end of its socket."""

    proc: subprocess.Popen[bytes]
    sock: socket.socket
    started: float
    last_msg: float  # this process's monotonic time of the last message
    progress: float  # ... of the child's last vision turn
    ready: bool = False  # its service started (the model is loaded)
    counters: dict[str, int] = field(default_factory=dict)
    stuck: dict[str, float] = field(default_factory=dict)  # cameras hung in native code
    # Held while sending; the socket is closed under it, so that a send never lands on
    # a reused descriptor.  vision-rx kills the process first, which unblocks a send.
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False
    reader: FrameReader = field(init=False)

    def __post_init__(self) -> None:
        self.reader = FrameReader(self.sock)

    def send(self, msg: ToChild) -> None:
        frame = encode(msg)
        with self.send_lock:
            if not self.closed:
                with contextlib.suppress(OSError):  # it died: vision-rx restarts it
                    self.sock.sendall(frame)

    def close(self) -> None:
        with self.send_lock:
            self.closed = True
            self.sock.close()


def launch(config: Config) -> ChildProcess:
    """Start a child at ``config.detection.process_priority`` and send it ``config``."""
    mine, theirs = socket.socketpair()
    try:
        proc = subprocess.Popen(
            _argv(theirs.fileno(), str(config.detection.process_priority)),
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            env=child_env(os.environ),
        )
    except OSError:
        mine.close()
        raise
    finally:
        theirs.close()
    now = time.monotonic()
    child = ChildProcess(proc, mine, now, now, now)
    child.send(config)
    return child


def _argv(fd: int, priority: str) -> list[str]:
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    module = "agent.vision.child"
    return [
        sys.executable,
        "-m",
        module,
        "--fd",
        str(fd),
        "--priority",
        priority,
        "--log-level",
        level,
    ]


def child_env(parent: Mapping[str, str]) -> dict[str, str]:
    """The child's environment: the allowed names of ``parent``, and this source tree.

    An allow-list, not a deny-list: a secret under a name nobody thought of (a password
    variable named in the config, a token of some library) stays out too.
    """
    env = {k: v for k, v in parent.items() if k in ENV_NAMES or k.startswith(ENV_PREFIXES)}
    # The child imports the same source tree as this process, installed or not.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def end_process(proc: subprocess.Popen[bytes], grace: float) -> int | None:
    """Wait ``grace`` for the process to exit, then terminate and kill it."""
    try:
        return proc.wait(grace)
    except subprocess.TimeoutExpired:
        log.warning("vision: process %d did not stop in %.1f s; killing it", proc.pid, grace)
    proc.terminate()  # ignored once it has set up; kept for a child stuck before that
    try:
        return proc.wait(0.5)
    except subprocess.TimeoutExpired:
        proc.kill()
    return proc.wait()
