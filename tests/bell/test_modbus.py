"""The Modbus RTU client and backend against a simulated module over a real pty pair."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.bell.hw.modbus.coils import ModbusOutputs
from agent.bell.hw.modbus.inputs import ModbusBackend
from agent.bell.hw.modbus.rtu import (
    ModbusClient,
    ModbusCrcError,
    ModbusError,
    ModbusFrameError,
    ModbusReplyError,
    ModbusTimeoutError,
    crc16,
    frame,
)
from agent.bell.inputs import CommChange, Sample, Waker
from agent.bell.outputs import OutputError, make_outputs
from agent.config import BellConfig
from tests.bell.modbus_module import SimModule


def config(module: SimModule, **over: Any) -> BellConfig:
    modbus = {
        "port": module.path,
        "poll_ms": 20,
        "timeout_ms": 60,
        "fault_after": 3,
        "button": 0,
        "tamper": 1,
        "power_fail": 2,
        **over.pop("modbus", {}),
    }
    return BellConfig(backend="modbus", modbus=modbus, **over)


@pytest.fixture
def backend(module: SimModule) -> Iterator[ModbusBackend]:
    module.inputs[1] = module.inputs[2] = True  # door shut, power good (both contacts closed)
    b = ModbusBackend(config(module), Waker())
    b.open()
    yield b
    b.close()


def samples(readings: list[Any]) -> dict[str, float]:
    return {r.inp: r.value for r in readings if isinstance(r, Sample)}


def test_crc_known_values() -> None:
    assert crc16(b"123456789") == 0x4B37  # the CRC-16/MODBUS check value
    assert frame(1, bytes.fromhex("030000000a")).hex() == "01030000000ac5cd"


def test_first_poll_reports_every_input_then_only_changes(
    module: SimModule, backend: ModbusBackend
) -> None:
    assert samples(backend.poll_once()) == {"button": 0.0, "tamper": 0.0, "power": 0.0}
    assert backend.poll_once() == []
    module.inputs[0] = True
    assert samples(backend.poll_once()) == {"button": 1.0}
    module.inputs[0] = False
    module.inputs[1] = False  # the box door opens its contact
    assert samples(backend.poll_once()) == {"button": 0.0, "tamper": 1.0}


def test_normally_closed_button(module: SimModule) -> None:
    module.inputs[0] = True  # contact closed: at rest for a normally-closed bell
    b = ModbusBackend(config(module, normally_closed=True), Waker())
    b.open()
    try:
        assert samples(b.poll_once())["button"] == 0.0
        module.inputs[0] = False
        assert samples(b.poll_once()) == {"button": 1.0}
    finally:
        b.close()


@pytest.mark.parametrize("mode", ["dead", "garbage", "bad_crc", "exception", "flood"])
def test_a_bad_module_gives_one_comm_fault_after_the_count_then_recovers(
    module: SimModule, backend: ModbusBackend, mode: Any
) -> None:
    backend.poll_once()
    module.mode = mode
    got = [backend.poll_once() for _ in range(6)]
    assert got[0] == [] and got[1] == []  # noqa: PT018 - two polls, one fact
    fault = got[2]
    assert len(fault) == 1
    assert isinstance(fault[0], CommChange)
    assert not fault[0].ok
    assert "3 failed polls" in fault[0].why
    assert got[3:] == [[], [], []]  # one fault, not a storm
    assert backend.facts()["comm"] == "fault"
    module.mode = "ok"
    module.inputs[0] = True  # pressed while the line was bad
    back = backend.poll_once()
    assert isinstance(back[0], CommChange)
    assert back[0].ok
    assert samples(back) == {"button": 1.0}
    assert sum(backend.errors.values()) >= 6


def test_error_kinds_are_counted(module: SimModule, backend: ModbusBackend) -> None:
    for mode in ("dead", "bad_crc", "exception"):
        module.mode = mode
        backend.poll_once()
    assert backend.errors == {"timeout": 1, "crc": 1, "reply": 1}


def test_an_unplugged_adapter_is_a_comm_fault_not_a_crash(
    module: SimModule, backend: ModbusBackend
) -> None:
    backend.poll_once()
    module.unplug()
    got = [r for _ in range(4) for r in backend.poll_once()]
    assert [type(r).__name__ for r in got] == ["CommChange"]


def test_supervised_loop_register(module: SimModule) -> None:
    module.registers[3] = 1024
    cfg = config(module, modbus={"loop_register": 3}, supervision={"enabled": True})
    b = ModbusBackend(cfg, Waker())
    b.open()
    try:
        got = samples(b.poll_once())
        assert got == {"loop": pytest.approx(1024 / 4095), "tamper": 1.0, "power": 1.0}
        assert "button" not in got  # the loop is the button
    finally:
        b.close()


def test_coils_drive_strobe_and_siren_on_the_shared_line(
    module: SimModule, backend: ModbusBackend
) -> None:
    cfg = config(module, outputs={"backend": "modbus", "strobe": "4", "siren": "5"})
    out = make_outputs(cfg, backend.line)
    assert isinstance(out, ModbusOutputs)
    out.open()
    out.set(True)
    assert module.coils == {4: True, 5: True}
    out.set(False)
    assert module.coils == {4: False, 5: False}
    module.mode = "dead"
    with pytest.raises(OutputError, match="coil write failed"):
        out.set(True)


def test_open_of_a_missing_port_is_a_clear_error() -> None:
    from agent.bell.inputs import BellInputError

    cfg = BellConfig(backend="modbus", modbus={"port": "/dev/ttyNOPE9"})
    with pytest.raises(BellInputError, match=r"bell\.modbus\.port: cannot open /dev/ttyNOPE9"):
        ModbusBackend(cfg, Waker()).open()


class BytesPort:
    """An in-memory serial port that answers every request with fixed bytes (for fuzzing)."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.pos = 0

    def write(self, data: bytes, /) -> int:
        self.pos = 0
        return len(data)

    def read(self, size: int = 1, /) -> bytes:
        out = self.reply[self.pos : self.pos + size]
        self.pos += len(out)
        return out

    def reset_input_buffer(self) -> None:
        return

    def flush(self) -> None:
        return


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=24), st.sampled_from(["inputs", "registers", "coil"]))
def test_any_reply_bytes_give_values_or_a_modbus_error(reply: bytes, fn: str) -> None:
    client = ModbusClient(BytesPort(reply), baudrate=115200)
    client.gap_s = 0.0
    try:
        if fn == "inputs":
            assert len(client.read_discrete_inputs(1, 0, 3)) == 3
        elif fn == "registers":
            assert len(client.read_input_registers(1, 0, 2)) == 2
        else:
            client.write_single_coil(1, 0, True)
    except ModbusError:
        pass


@pytest.mark.parametrize(
    ("reply", "error", "text"),
    [
        (b"", ModbusTimeoutError, "no reply from unit 1"),
        (b"\x01", ModbusFrameError, "cut short after 01"),
        (b"\x07\x02\x01\x00", ModbusFrameError, "unexpected bytes 07 02"),
        (frame(1, b"\x02\x02\x00\x00"), ModbusFrameError, "byte count 2"),
        (frame(1, b"\x02\x01\x05")[:-1] + b"\x00", ModbusCrcError, "bad CRC"),
        (frame(1, b"\x82\x02"), ModbusReplyError, "2 (illegal data address)"),
    ],
)
def test_malformed_replies_name_the_bytes(reply: bytes, error: type, text: str) -> None:
    client = ModbusClient(BytesPort(reply), baudrate=115200)
    with pytest.raises(error, match=text.replace("(", r"\(").replace(")", r"\)")):
        client.read_discrete_inputs(1, 0, 3)


def test_a_good_reply_decodes_bits() -> None:
    client = ModbusClient(BytesPort(frame(1, b"\x02\x02\x05\x01")), baudrate=115200)
    assert client.read_discrete_inputs(1, 0, 10) == [
        True, False, True, False, False, False, False, False, True, False,
    ]  # fmt: skip
