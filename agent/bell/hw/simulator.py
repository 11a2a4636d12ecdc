"""The simulator input: presses from a unix socket (``pole-agent bell press``) or a script.

Protocol: one command per line, one reply line per command (``ok <command>`` or
``error <reason>``).  Commands::

    press [DUR]      down now, up after DUR (default 0.2 s); DUR like 3, 3s, 250ms
    hold DUR         the same, for a long press
    down | up        the contact alone
    tamper on|off    box door opened / closed
    power fail|ok    power-good input
    line V|normal|alarm|open|short   the supervised loop's analog value (0..1)
    hang DUR         block the bell thread itself for DUR (to test the systemd watchdog)

A script file holds ``<at_s> <command>`` lines (``#`` comments), replayed from start-up;
``<at_s> 1`` and ``<at_s> 0`` mean down and up.  With a supervised loop configured, the
button commands move the loop value between its normal and alarm bands, so the whole
supervision path runs in the demo.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import selectors
import socket
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.bell.inputs import BellInputError, InputName, Reading, Sample, Waker
from agent.config import BellConfig

__all__ = ["SimulatorBackend", "SimulatorOutputs", "parse_command", "parse_duration"]

log = logging.getLogger(__name__)

MAX_LINE = 256
MAX_CLIENTS = 8
MAX_PENDING = 10_000
Step = tuple[float, InputName, float]  # delay from now, input, value


def parse_duration(text: str) -> float:
    """'3', '3s', '0.5s', '250ms' -> seconds; ValueError naming the text otherwise."""
    t = text.strip().lower()
    scale = 1.0
    if t.endswith("ms"):
        t, scale = t[:-2], 0.001
    elif t.endswith("s"):
        t = t[:-1]
    try:
        value = float(t) * scale
    except ValueError:
        raise ValueError(f"{text!r} is not a duration (like 3, 3s or 250ms)") from None
    if not 0 < value <= 3600:
        raise ValueError(f"duration {text!r} must be between 0 and 3600 s")
    return value


def _levels(cfg: BellConfig) -> tuple[Callable[[bool], Step], dict[str, float]]:
    sup = cfg.supervision
    named = {
        "normal": (sup.normal[0] + sup.normal[1]) / 2,
        "alarm": (sup.alarm[0] + sup.alarm[1]) / 2,
        "open": 1.0,
        "short": 0.0,
    }

    def button(down: bool) -> Step:
        if sup.enabled:
            return (0.0, "loop", named["alarm"] if down else named["normal"])
        return (0.0, "button", 1.0 if down else 0.0)

    return button, named


def parse_command(line: str, cfg: BellConfig) -> list[Step]:
    """One simulator command -> timed steps; ValueError with a readable reason."""
    words = line.split()
    if not words:
        raise ValueError("empty command")
    verb, args = words[0].lower(), words[1:]
    button, named = _levels(cfg)
    if verb in ("press", "hold"):
        if len(args) > 1 or (verb == "hold" and not args):
            raise ValueError(f"usage: {verb} {'DUR' if verb == 'hold' else '[DUR]'}")
        dur = parse_duration(args[0]) if args else 0.2
        up = button(False)
        return [button(True), (dur, up[1], up[2])]
    if verb in ("down", "up", "1", "0") and not args:
        return [button(verb in ("down", "1"))]
    onoff = {"tamper": {"on": 1.0, "off": 0.0}, "power": {"fail": 1.0, "ok": 0.0}}
    if verb in onoff and len(args) == 1 and args[0].lower() in onoff[verb]:
        name: InputName = "tamper" if verb == "tamper" else "power"
        return [(0.0, name, onoff[verb][args[0].lower()])]
    if verb == "line" and len(args) == 1:
        return [(0.0, "loop", _loop_value(args[0], named))]
    raise ValueError(
        f"unknown command {line.strip()[:40]!r}; try press, hold, down, up, tamper, power, line"
    )


def _loop_value(text: str, named: dict[str, float]) -> float:
    if text.lower() in named:
        return named[text.lower()]
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"line value {text!r} is not a number or {'/'.join(named)}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"line value {value} must be within 0..1")
    return value


def load_script(path: Path, cfg: BellConfig) -> list[Step]:
    """A script file -> steps timed from start-up; BellInputError naming the bad line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BellInputError(f"bell.simulator.script: cannot read {path}: {exc}") from None
    steps: list[Step] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        at, _, command = line.partition(" ")
        try:
            start = float(at)
            if start < 0:
                raise ValueError(f"time {at} is negative")
            steps += [(start + d, inp, v) for d, inp, v in parse_command(command, cfg)]
        except ValueError as exc:
            raise BellInputError(f"{path}, line {n}: {exc} (in {raw.strip()!r})") from None
    return steps


class SimulatorBackend:
    """Unix socket server and script player, polled by the bell thread (no own thread)."""

    name = "simulator"

    def __init__(
        self, cfg: BellConfig, waker: Waker, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.cfg = cfg
        self.path = Path(cfg.simulator.socket)
        self.waker = waker
        self.clock = clock
        self._sel: selectors.BaseSelector | None = None
        self._server: socket.socket | None = None
        self._buffers: dict[socket.socket, bytes] = {}
        self._pending: list[tuple[float, int, InputName, float]] = []
        self._seq = itertools.count()
        self.commands = 0
        self.rejected = 0

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> None:
        steps = (
            load_script(Path(self.cfg.simulator.script), self.cfg)
            if self.cfg.simulator.script
            else []
        )
        self._server = self._listen()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._server, selectors.EVENT_READ, "server")
        self._sel.register(self.waker.fileno(), selectors.EVENT_READ, "waker")
        now = self.clock()
        if self.cfg.supervision.enabled:
            self._schedule(now, [_levels(self.cfg)[0](False)])
        self._schedule(now, steps)
        log.info("bell simulator listening on %s", self.path)

    def _listen(self) -> socket.socket:
        path = str(self.path)
        if self.path.exists():
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(path)
                except OSError:
                    self.path.unlink(missing_ok=True)  # a stale socket of a dead agent
                else:
                    raise BellInputError(
                        f"bell.simulator.socket: another agent already listens on {path}"
                    )
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            server.bind(path)
            os.chmod(path, 0o660)
            server.listen(MAX_CLIENTS)
        except OSError as exc:
            server.close()
            raise BellInputError(f"bell.simulator.socket: cannot listen on {path}: {exc}") from None
        server.setblocking(False)
        return server

    def close(self) -> None:
        for conn in list(self._buffers):
            self._drop(conn)
        if self._sel is not None:
            self._sel.close()
            self._sel = None
        if self._server is not None:
            self._server.close()
            self._server = None
            self.path.unlink(missing_ok=True)

    def facts(self) -> dict[str, Any]:
        return {"socket": str(self.path), "commands": self.commands, "rejected": self.rejected}

    # ------------------------------------------------------------------ polling
    def poll(self, timeout: float) -> list[Reading]:
        assert self._sel is not None, "open() first"
        now = self.clock()
        if self._pending:
            timeout = min(timeout, self._pending[0][0] - now)
        for key, _ in self._sel.select(max(0.0, timeout)):
            if key.data == "server":
                self._accept()
            elif key.data == "waker":
                self.waker.clear()
            else:
                self._read(key.fileobj)  # type: ignore[arg-type]
        return self._due(self.clock())

    def _due(self, now: float) -> list[Reading]:
        out: list[Reading] = []
        while self._pending and self._pending[0][0] <= now:
            at, _, inp, value = heapq.heappop(self._pending)
            out.append(Sample(inp, value, at))  # the simulated edge time, for latency
        return out

    def _schedule(self, now: float, steps: list[Step]) -> None:
        if len(self._pending) + len(steps) > MAX_PENDING:
            raise ValueError(f"too many pending simulator steps (limit {MAX_PENDING})")
        for delay, inp, value in steps:
            heapq.heappush(self._pending, (now + delay, next(self._seq), inp, value))

    def _accept(self) -> None:
        assert self._server is not None
        assert self._sel is not None
        try:
            conn, _ = self._server.accept()
        except BlockingIOError:
            return
        if len(self._buffers) >= MAX_CLIENTS:
            conn.close()
            return
        conn.setblocking(False)
        self._buffers[conn] = b""
        self._sel.register(conn, selectors.EVENT_READ, "client")

    def _read(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        buf = self._buffers[conn] + data
        *lines, rest = buf.split(b"\n")
        for line in lines:
            self._reply(conn, self._command(line))
        if len(rest) > MAX_LINE:
            self.rejected += 1
            self._reply(conn, f"error line longer than {MAX_LINE} bytes")
            self._drop(conn)
            return
        self._buffers[conn] = rest

    def _command(self, raw: bytes) -> str:
        try:
            line = raw.decode("utf-8").strip()
            if len(line) > MAX_LINE:
                raise ValueError(f"line longer than {MAX_LINE} bytes")
            if line.split()[:1] == ["hang"] and len(line.split()) == 2:
                self._hang(parse_duration(line.split()[1]))
            else:
                self._schedule(self.clock(), parse_command(line, self.cfg))
        except (UnicodeDecodeError, ValueError) as exc:
            self.rejected += 1
            why = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc)
            log.warning("bell simulator: rejected a command: %s", why)
            return f"error {why}"
        self.commands += 1
        log.info("bell simulator: %s", line)
        return f"ok {line}"

    def _hang(self, seconds: float) -> None:
        # Deliberately blocks the bell thread: the runner must stop the watchdog pings.
        log.warning("bell simulator: hanging the bell thread for %.1f s (watchdog test)", seconds)
        time.sleep(seconds)

    def _reply(self, conn: socket.socket, text: str) -> None:
        with contextlib.suppress(OSError):  # a client that went away gets no reply
            conn.send(text.encode() + b"\n")

    def _drop(self, conn: socket.socket) -> None:
        self._buffers.pop(conn, None)
        if self._sel is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(conn)
        conn.close()


class SimulatorOutputs:
    """Records what a real box would switch, and logs it (the demo shows the lines)."""

    name = "simulator"

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.state = dict.fromkeys(names, False)
        self.history: deque[tuple[str, bool]] = deque(maxlen=1000)

    def open(self) -> None:
        return

    def set(self, on: bool) -> None:
        for name in self.names:
            self.state[name] = on
            self.history.append((name, on))
        log.info("bell outputs (simulated): %s %s", " and ".join(self.names), "ON" if on else "off")

    def close(self) -> None:
        return

    def facts(self) -> dict[str, Any]:
        return dict(self.state)
