"""`pole-agent demo`: the whole agent on this machine, for a newcomer's first minute.

A private mosquitto on a free port, the agent (a child process, as systemd would run it)
on the development profile with the sample video looping and the bell simulator, and the
centre's monitor printing what arrives.  A simulated bell press follows a few seconds in.
When the centre's side can run here (the ``centre`` extra and PostgreSQL's server
binaries), the demo also starts a private PostgreSQL, the ingest and the operators'
console (:mod:`agent.dev.centre_stack`) and prints the console's address and a login made
for this run; else one line says why not, and the rest runs as before.  The pole's command
keys are made for each run, so the console's Acknowledge really reaches the pole.

Two voices share the terminal, so each line says whose it is: ``agent  |`` lines are the
pole's own log (also kept in ``var/demo/agent.log``), ``centre |`` lines are what the
control centre receives over MQTT, and the console's address.

Ctrl-C (SIGINT), SIGTERM and a closed terminal (SIGHUP) all stop it the same clean way:
the agent first (SIGTERM: it says ``offline`` as it goes, and the monitor and the console
show it), then the monitor, the console, the ingest, PostgreSQL and the broker.  Every
child runs in a session of its own, so a terminal's signal reaches only this process,
which decides the order.
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
from agent.dev.centre_stack import CentreStack, DemoKeys, why_no_centre, write_keys
from agent.errors import UserError

__all__ = ["run_demo", "write_demo_site"]

DEMO_DIR = Path("var/demo")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def write_demo_site(folder: Path, port: int, keys: DemoKeys | None = None) -> Path:
    """The example site file with this run's broker port, spool, simulator socket and keys."""
    base = yaml.safe_load((Path(__file__).parents[2] / "examples/dev-site.yaml").read_text())
    base["mqtt"] = {"host": "127.0.0.1", "port": port}
    base["spool"] = {"path": str(folder / "spool.db")}
    base["bell"] = {"simulator": {"socket": str(folder / "bell.sock")}}
    if keys is not None:
        base["commands"] = {"key_file": str(keys.device), "site_key_file": str(keys.site)}
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


def _relay(stream: IO[bytes], log_file: Path, running: threading.Event) -> None:
    """Copy the agent's output into its log file and, labelled, onto the terminal;
    ``running`` once the agent says so (its signal handlers are in place by then)."""
    with log_file.open("ab") as log:
        for raw in iter(stream.readline, b""):
            log.write(raw)
            log.flush()
            line = raw.decode("utf-8", "replace").rstrip()
            say(f"agent  | {line}")
            if " running as " in line:
                running.set()


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


def _intro(broker: LocalBroker, site: Path, log_file: Path, keys: DemoKeys) -> None:
    exe = Path(sys.executable).parent / "pole-agent"
    device = yaml.safe_load(site.read_text())["device"]
    say(f"demo   | broker on 127.0.0.1:{broker.port}; agent config {site}")
    say("demo   | 'agent  |' lines: the pole's own log (also in " + str(log_file) + ")")
    say("demo   | 'centre |' lines: what the control centre receives over MQTT")
    say(
        f"demo   | the pole's command key is {keys.device}, made for this run (a real unit "
        "gets one from `pole-agent provision`); send it a signed command from another shell: "
        f"{exe} send {device['id']} ping --site {device['site']} --port {broker.port} "
        f"--key-file {keys.device}"
    )
    say(f"demo   | watch from another shell too: {exe} monitor --port {broker.port}")
    say("demo   | Ctrl-C stops everything cleanly")


def _start_centre(
    folder: Path, port: int, keys: DemoKeys, signalled: list[int]
) -> CentreStack | None:
    """The centre's side, or None with one line saying why not."""
    why = why_no_centre()
    if why is None and signalled:
        why = "stopping"
    if why is not None:
        say(f"centre | the console is not started: {why}; the rest of the demo runs without it")
        return None
    centre = CentreStack(folder, port, keys)
    say("centre | starting PostgreSQL (a fresh database each run), the ingest and the console")
    try:
        centre.start()
    except Exception as exc:  # noqa: BLE001 - whatever it was, the demo goes on without it
        centre.stop()
        text = " ".join(str(exc).split())[:400] or type(exc).__name__
        say(f"centre | the console is not started: {text}; the rest of the demo runs without it")
        return None
    assert centre.pg is not None
    say(f"centre | PostgreSQL on 127.0.0.1:{centre.pg.port} (data in {centre.pg.root}); "
        f"ingest and console logs in {folder}")  # fmt: skip
    return centre


def run_demo(duration: float | None = None, press_after: float = 8.0) -> int:
    """Run until ``duration`` or a stop signal; 0 when everything went as it should."""
    folder = DEMO_DIR.resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"demo: cannot make {folder} ({exc.strerror or exc}); run it from a folder you can "
            "write, such as the checkout"
        ) from None
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
    try:
        broker = LocalBroker(folder / "broker", persistence=False).start()
    except (OSError, RuntimeError) as exc:  # not installed, or it would not start
        raise UserError(f"demo: the broker did not start: {exc}") from None
    centre: CentreStack | None = None
    try:
        keys = write_keys(folder)
        site = write_demo_site(folder, broker.port, keys)
        log_file = folder / "agent.log"
        _intro(broker, site, log_file, keys)
        centre = _start_centre(folder, broker.port, keys, signalled)
        return _run_agent(site, log_file, broker, centre, stop=stop, signalled=signalled,
                          duration=duration, press_after=press_after)  # fmt: skip
    finally:
        if centre is not None:
            centre.settle()
            for problem in centre.stop():
                say(f"centre | {problem}")
        broker.stop()


def _run_agent(
    site: Path,
    log_file: Path,
    broker: LocalBroker,
    centre: CentreStack | None,
    *,
    stop: threading.Event,
    signalled: list[int],
    duration: float | None,
    press_after: float,
) -> int:
    """The agent and the monitor until the end; both stopped (agent first) on return."""
    if signalled:  # stopped while the centre was starting: nothing to show
        return 0
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", str(site)],
        start_new_session=True,  # a terminal's signals reach the demo only; it stops the agent
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert agent.stdout is not None
    running = threading.Event()
    relay = threading.Thread(
        target=_relay, args=(agent.stdout, log_file, running), name="demo-relay"
    )
    relay.start()
    presser = threading.Thread(target=_press_later, args=(site, press_after, stop), daemon=True)
    presser.start()
    monitor = Monitor(connect_client("127.0.0.1", broker.port), "pole/#", out=Labelled("centre"))
    try:
        monitor.client.connect_async("127.0.0.1", broker.port)
        monitor.client.loop_start()
        deadline = None if duration is None else time.monotonic() + duration
        announced = False
        while agent.poll() is None and not signalled:
            if deadline is not None and time.monotonic() >= deadline:
                break
            if centre is not None:
                announced = _watch(centre, announced)
            time.sleep(0.2)
    finally:
        stop.set()
        _stop_agent(agent, running)
        relay.join(5)
        time.sleep(0.3)  # let the monitor print the offline status
        monitor.client.loop_stop()
        monitor.client.disconnect()
    counts = monitor.view.counts
    say(
        f"demo   | agent exited with {agent.returncode}; the centre saw {counts['events']} "
        f"events, {counts['invalid']} invalid"
    )
    return 0 if agent.returncode == 0 and counts["invalid"] == 0 else 1


def _watch(centre: CentreStack, announced: bool) -> bool:
    """Say the console's address and login once it answers (True from then on), and, once
    each, a child of the centre's that exited on its own."""
    for problem in centre.trouble():
        say(f"centre | {problem}")
    if not announced and centre.ready():
        say(f"centre | {centre.login_line}")
        return True
    return announced


def _stop_agent(agent: subprocess.Popen[bytes], running: threading.Event) -> None:
    # A SIGTERM before the agent has its handlers would kill it outright, without its
    # offline status: a stop in its first seconds waits for it to be running.
    deadline = time.monotonic() + 30
    while not running.is_set() and agent.poll() is None and time.monotonic() < deadline:
        running.wait(0.1)
    if agent.poll() is None:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(15)
        except subprocess.TimeoutExpired:
            say("demo   | the agent did not stop within 15 s: killed")
            os.killpg(agent.pid, signal.SIGKILL)
            agent.wait()
