"""The simulator backend: its command language, its unix socket and its script files."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.bell.hw.simulator import SimulatorBackend, parse_command, parse_duration
from agent.bell.inputs import BellInputError, Reading, Sample, Waker
from agent.config import BellConfig

CFG = BellConfig(backend="simulator")


@pytest.mark.parametrize(
    ("text", "seconds"), [("3", 3.0), ("3s", 3.0), ("0.5s", 0.5), ("250ms", 0.25), (" 2S ", 2.0)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "why"), [("abc", "not a duration"), ("0", "between"), ("-1s", "between")]
)
def test_bad_durations(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_duration(text)


@pytest.mark.parametrize(
    ("line", "steps"),
    [
        ("press", [(0.0, "button", 1.0), (0.2, "button", 0.0)]),
        ("press 3s", [(0.0, "button", 1.0), (3.0, "button", 0.0)]),
        ("hold 250ms", [(0.0, "button", 1.0), (0.25, "button", 0.0)]),
        ("down", [(0.0, "button", 1.0)]),
        ("up", [(0.0, "button", 0.0)]),
        ("tamper on", [(0.0, "tamper", 1.0)]),
        ("tamper off", [(0.0, "tamper", 0.0)]),
        ("power fail", [(0.0, "power", 1.0)]),
        ("power ok", [(0.0, "power", 0.0)]),
        ("line 0.42", [(0.0, "loop", 0.42)]),
        ("line open", [(0.0, "loop", 1.0)]),
        ("line short", [(0.0, "loop", 0.0)]),
    ],
)
def test_commands(line: str, steps: list[Any]) -> None:
    assert parse_command(line, CFG) == steps


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("", "empty"),
        ("hold", "usage: hold DUR"),
        ("press 1 2", "usage"),
        ("press soon", "not a duration"),
        ("line 2", "within 0..1"),
        ("line wet", "not a number"),
        ("tamper maybe", "unknown command"),
        ("frobnicate", "unknown command 'frobnicate'"),
    ],
)
def test_bad_commands(line: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_command(line, CFG)


def test_supervised_press_moves_the_loop() -> None:
    cfg = BellConfig(backend="simulator", supervision={"enabled": True})
    assert parse_command("press 1", cfg) == [
        (0.0, "loop", pytest.approx(0.225)),
        (1.0, "loop", pytest.approx(0.5)),
    ]


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimulatorBackend]:
    cfg = BellConfig(backend="simulator", simulator={"socket": str(tmp_path / "b.sock")})
    b = SimulatorBackend(cfg, Waker())
    b.open()
    yield b
    b.close()


def client(sim: SimulatorBackend) -> socket.socket:
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(str(sim.path))
    c.settimeout(5)
    return c


def poll_until(sim: SimulatorBackend, n: int, timeout: float = 5.0) -> list[Reading]:
    got: list[Reading] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got += sim.poll(0.05)
        if n and len(got) >= n:
            break
    return got


def test_press_over_the_socket(sim: SimulatorBackend) -> None:
    with client(sim) as c:
        c.sendall(b"press 0.1\n")
        got = poll_until(sim, 2)
        assert c.recv(100) == b"ok press 0.1\n"
    assert [(r.inp, r.value) for r in got if isinstance(r, Sample)] == [
        ("button", 1.0),
        ("button", 0.0),
    ]
    down, up = got
    assert isinstance(down, Sample)
    assert isinstance(up, Sample)
    assert up.t - down.t == pytest.approx(0.1, abs=1e-6)  # scheduled edge times


def test_bad_input_gets_an_error_reply_and_the_backend_survives(sim: SimulatorBackend) -> None:
    with client(sim) as c:
        c.sendall(b"\xff\xfe\n" + b"nonsense\n")
        poll_until(sim, 0, timeout=0.3)
        assert c.recv(200).split(b"\n")[:2] == [
            b"error not UTF-8 text",
            b"error unknown command 'nonsense'; try press, hold, down, up, tamper, power, line",
        ]
    with client(sim) as c:
        c.sendall(b"x" * 1000)
        poll_until(sim, 0, timeout=0.3)
        assert c.recv(200).startswith(b"error line longer than 256 bytes")
        assert c.recv(10) == b""  # and the connection is closed
    with client(sim) as c:
        c.sendall(b"tamper on\n")
        assert [(r.inp, r.value) for r in poll_until(sim, 1) if isinstance(r, Sample)] == [
            ("tamper", 1.0)
        ]
    assert sim.rejected == 3


def test_a_second_agent_cannot_take_the_socket(sim: SimulatorBackend) -> None:
    other = SimulatorBackend(sim.cfg, Waker())
    with pytest.raises(BellInputError, match="another agent already listens"):
        other.open()


def test_a_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens
    b = SimulatorBackend(BellConfig(backend="simulator", simulator={"socket": str(path)}), Waker())
    b.open()
    b.close()
    assert not path.exists()


def test_script_file_is_replayed(tmp_path: Path) -> None:
    script = tmp_path / "demo.txt"
    script.write_text("# a demo\n0.05 press 0.1\n0.1 tamper on\n\n0.2 1\n0.25 0\n")
    cfg = BellConfig(
        backend="simulator",
        simulator={"socket": str(tmp_path / "s.sock"), "script": str(script)},
    )
    b = SimulatorBackend(cfg, Waker())
    b.open()
    try:
        got = poll_until(b, 5)
    finally:
        b.close()
    assert [(r.inp, r.value) for r in got if isinstance(r, Sample)] == [
        ("button", 1.0),
        ("tamper", 1.0),
        ("button", 0.0),
        ("button", 1.0),
        ("button", 0.0),
    ]


def test_a_bad_script_line_is_named(tmp_path: Path) -> None:
    script = tmp_path / "bad.txt"
    script.write_text("0.1 press\nsoon press\n")
    cfg = BellConfig(
        backend="simulator",
        simulator={"socket": str(tmp_path / "s.sock"), "script": str(script)},
    )
    with pytest.raises(BellInputError, match=r"bad\.txt, line 2: could not convert"):
        SimulatorBackend(cfg, Waker()).open()


def test_the_waker_ends_a_long_wait(sim: SimulatorBackend) -> None:
    sim.waker.set()
    start = time.monotonic()
    assert sim.poll(30.0) == []
    assert time.monotonic() - start < 20  # far from the 30 s it was allowed
