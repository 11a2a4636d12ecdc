"""`pole-agent bell …`: drive a running agent's bell simulator from a terminal.

``pole-agent bell press --hold 3s`` sends ``press 3`` to the simulator socket of the agent
(``bell.simulator.socket`` of ``--config FILE``, or ``--socket PATH``) and prints what it
sent and the agent's answer.
"""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

from agent.errors import UserError

__all__ = ["register", "send_command"]

TIMEOUT_S = 3.0


def send_command(path: str, command: str, timeout: float = TIMEOUT_S) -> str:
    """Send one line to the simulator socket and return its reply line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            raise UserError(
                f"no agent listens on {path}: start the agent with bell.backend 'simulator' "
                "(the dev-sim profile), or give its socket with --socket or --config"
            ) from None
        except OSError as exc:
            raise UserError(f"cannot connect to {path}: {exc.strerror or exc}") from None
        try:
            sock.sendall(command.encode() + b"\n")
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = sock.recv(1024)
                if not chunk:
                    break
                reply += chunk
        except OSError as exc:
            raise UserError(f"{path}: no answer from the agent ({exc})") from None
    return reply.decode(errors="replace").strip()


def _socket_path(args: argparse.Namespace) -> str:
    if args.socket:
        return str(args.socket)
    if args.config:
        from agent.config import load

        return load(args.config).bell.simulator.socket
    from agent.config import SimulatorInput

    return SimulatorInput().socket


def _send(args: argparse.Namespace, command: str) -> int:
    path = _socket_path(args)
    reply = send_command(path, command)
    if not reply.startswith("ok"):
        raise UserError(f"the agent refused {command!r}: {reply or 'no reply'}")
    print(f"sent {command!r} to {path}: {reply}")
    return 0


def _cmd_press(args: argparse.Namespace) -> int:
    from agent.bell.hw.simulator import parse_duration

    try:
        hold = parse_duration(args.hold)
    except ValueError as exc:
        raise UserError(f"--hold: {exc}") from None
    return _send(args, f"press {hold:g}")


def _cmd_send(args: argparse.Namespace) -> int:
    return _send(args, " ".join(args.words))


def _target(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--socket", type=Path, help="simulator socket of the running agent")
    where.add_argument("--config", type=Path, help="site file whose bell.simulator.socket to use")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bell = sub.add_parser("bell", help="press the simulated emergency bell of a running agent")
    bsub = bell.add_subparsers(dest="bell_cmd", required=True, metavar="ACTION")
    p = bsub.add_parser("press", help="press the bell (down, then up after --hold)")
    p.add_argument("--hold", default="0.2s", help="how long it is held: 3, 3s, 250ms (0.2s)")
    _target(p)
    p.set_defaults(func=_cmd_press)
    p = bsub.add_parser(
        "send", help="send a raw simulator command: down, up, tamper on, power fail, line open …"
    )
    p.add_argument("words", nargs="+", help="the command, e.g. tamper on")
    _target(p)
    p.set_defaults(func=_cmd_send)
