"""`pole-agent demo`: the whole agent on this machine, for a newcomer's first minute.

A private mosquitto on a free port, the agent (a child process, as systemd would run it)
on the development profile with the sample video looping and the bell simulator, and the
centre's monitor printing what arrives.  A simulated bell press follows a few seconds in.

Two voices share the terminal, so each line says whose it is: ``agent  |`` lines are the
pole's own log (also kept in ``var/demo/agent.log``), ``centre |`` lines are what the
control centre receives over MQTT.

Ctrl-C (SIGINT), SIGTERM and a closed terminal (SIGHUP) all stop it the same clean way:
the agent first (SIGTERM: it says ``offline`` as it goes, and the monitor shows it), then
the monitor, then the broker.  The agent and the broker run in sessions of their own, so a
terminal's signal reaches only this process, which decides the order.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import IO

import yaml

from agent.centre.monitor import Monitor, connect_client
from agent.dev.broker import LocalBroker

__all__ = ["run_demo", "write_demo_site"]

DEMO_DIR = Path("var/demo")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def write_demo_site(folder: Path, port: int) -> Path:
    """The example site file with this run's broker port, spool and simulator socket."""
    base = yaml.safe_load((Path(__file__).parents[2] / "examples/dev-site.yaml").read_text())
    base["mqtt"] = {"host": "127.0.0.1", "port": port}
    base["spool"] = {"path": str(folder / "spool.db")}
    base["bell"] = {"simulator": {"socket": str(folder / "bell.sock")}}
    site = folder / "site.yaml"
    site.write_text(yaml.safe_dump(base, allow_unicode=True, sort_keys=False))
    return site


def say(line: str) -> None:
    """Print a line; a closed terminal (SIGHUP, EIO, a broken pipe) must not stop the stop."""
    with contextlib.suppress(OSError, ValueError):
        print(line, flush=True)


class Labelled:
    """A text stream that prefixes each line with whose voice it is."""

    def __init__(self, label: str, out: IO[str] | None = None) -> None:
        self.label, self.out = label, out or sys.stdout
        self._part = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._part += text
            *lines, self._part = self._part.split("\n")
            for line in lines:
                say(f"{self.label} | {line}")
        return len(text)

    def flush(self) -> None:
        return

    def isatty(self) -> bool:
        try:
            return self.out.isatty()
        except (OSError, ValueError):
            return False


def _relay(stream: IO[bytes], log_file: Path) -> None:
    """Copy the agent's output into its log file and, labelled, onto the terminal."""
    with log_file.open("ab") as log:
        for raw in iter(stream.readline, b""):
            log.write(raw)
            log.flush()
            say(f"agent  | {raw.decode('utf-8', 'replace').rstrip()}")


def _press_later(site: Path, after: float, stop: threading.Event) -> None:
    if stop.wait(after):
        return
    sock = yaml.safe_load(site.read_text())["bell"]["simulator"]["socket"]
    say(f"demo   | pressing the bell (simulated) after {after:.0f}s")
    subprocess.run(
        [sys.executable, "-m", "agent", "bell", "press", "--hold", "0.5", "--socket", sock],
        check=False,
        capture_output=True,
    )


def _intro(broker: LocalBroker, site: Path, log_file: Path) -> None:
    exe = Path(sys.executable).parent / "pole-agent"
    say(f"demo   | broker on 127.0.0.1:{broker.port}; agent config {site}")
    say("demo   | 'agent  |' lines: the pole's own log (also in " + str(log_file) + ")")
    say("demo   | 'centre |' lines: what the control centre receives over MQTT")
    say(
        "demo   | the agent will warn that commands are disabled: this demo unit has no "
        "command key (a real unit gets one from `pole-agent provision`), so the centre "
        "cannot send it signed commands; nothing else depends on it"
    )
    say(f"demo   | watch from another shell too: {exe} monitor --port {broker.port}")
    say("demo   | Ctrl-C stops everything cleanly")


def run_demo(duration: float | None = None, press_after: float = 8.0) -> int:
    """Run until ``duration`` or a stop signal; 0 when everything went as it should."""
    folder = DEMO_DIR.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signalled: list[int] = []

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        # No lock in a signal handler (Event.set takes one the main thread may hold):
        # a plain list append, read by the main loop.
        signalled.append(signum)

    previous = {s: signal.signal(s, _on_signal) for s in STOP_SIGNALS}
    try:
        return _run(folder, stop, signalled, duration, press_after)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _run(
    folder: Path,
    stop: threading.Event,
    signalled: list[int],
    duration: float | None,
    press_after: float,
) -> int:
    broker = LocalBroker(folder / "broker", persistence=False).start()
    site = write_demo_site(folder, broker.port)
    log_file = folder / "agent.log"
    _intro(broker, site, log_file)
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", str(site)],
        start_new_session=True,  # a terminal's signals reach the demo only; it stops the agent
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert agent.stdout is not None
    relay = threading.Thread(target=_relay, args=(agent.stdout, log_file), name="demo-relay")
    relay.start()
    presser = threading.Thread(target=_press_later, args=(site, press_after, stop), daemon=True)
    presser.start()
    monitor = Monitor(connect_client("127.0.0.1", broker.port), "pole/#", out=Labelled("centre"))
    try:
        monitor.client.connect_async("127.0.0.1", broker.port)
        monitor.client.loop_start()
        deadline = None if duration is None else time.monotonic() + duration
        while agent.poll() is None and not signalled:
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(0.2)
    finally:
        stop.set()
        _stop_agent(agent)
        relay.join(5)
        time.sleep(0.3)  # let the monitor print the offline status
        monitor.client.loop_stop()
        monitor.client.disconnect()
        broker.stop()
    counts = monitor.view.counts
    say(
        f"demo   | agent exited with {agent.returncode}; the centre saw {counts['events']} "
        f"events, {counts['invalid']} invalid"
    )
    return 0 if agent.returncode == 0 and counts["invalid"] == 0 else 1


def _stop_agent(agent: subprocess.Popen[bytes]) -> None:
    if agent.poll() is None:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(15)
        except subprocess.TimeoutExpired:
            say("demo   | the agent did not stop within 15 s: killed")
            os.killpg(agent.pid, signal.SIGKILL)
            agent.wait()
