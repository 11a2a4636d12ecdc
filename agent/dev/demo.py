"""`pole-agent demo`: the whole agent on this machine, for a newcomer's first minute.

A private mosquitto on a free port, the agent (a child process, as systemd would run it)
on the development profile with the sample video looping and the bell simulator, and the
centre's monitor printing what arrives.  A simulated bell press follows a few seconds in.
Ctrl-C stops the monitor, the agent (SIGTERM, clean) and the broker, in that order.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from agent.centre.monitor import Monitor, connect_client
from agent.dev.broker import LocalBroker

__all__ = ["run_demo", "write_demo_site"]

DEMO_DIR = Path("var/demo")


def write_demo_site(folder: Path, port: int) -> Path:
    """The example site file with this run's broker port, spool and simulator socket."""
    base = yaml.safe_load((Path(__file__).parents[2] / "examples/dev-site.yaml").read_text())
    base["mqtt"] = {"host": "127.0.0.1", "port": port}
    base["spool"] = {"path": str(folder / "spool.db")}
    base["bell"] = {"simulator": {"socket": str(folder / "bell.sock")}}
    site = folder / "site.yaml"
    site.write_text(yaml.safe_dump(base, allow_unicode=True, sort_keys=False))
    return site


def _press_later(site: Path, after: float, stop: threading.Event) -> None:
    if stop.wait(after):
        return
    sock = yaml.safe_load(site.read_text())["bell"]["simulator"]["socket"]
    print(f"demo: pressing the bell (simulated) after {after:.0f}s", flush=True)
    subprocess.run(
        [sys.executable, "-m", "agent", "bell", "press", "--hold", "0.5", "--socket", sock],
        check=False,
    )


def run_demo(duration: float | None = None, press_after: float = 8.0) -> int:
    folder = DEMO_DIR.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    broker = LocalBroker(folder / "broker", persistence=False).start()
    site = write_demo_site(folder, broker.port)
    print(f"demo: broker on 127.0.0.1:{broker.port}; agent config {site}", flush=True)
    print(
        f"demo: watch with another monitor too: pole-agent monitor --port {broker.port}", flush=True
    )
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", str(site)],
        start_new_session=True,  # Ctrl-C reaches us only; we stop the agent with SIGTERM
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    stop = threading.Event()
    presser = threading.Thread(target=_press_later, args=(site, press_after, stop), daemon=True)
    presser.start()
    monitor = Monitor(connect_client("127.0.0.1", broker.port), "pole/#")
    interrupted = False
    try:
        monitor.client.connect_async("127.0.0.1", broker.port)
        monitor.client.loop_start()
        deadline = None if duration is None else time.monotonic() + duration
        while agent.poll() is None and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        stop.set()
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(15)
            except subprocess.TimeoutExpired:
                agent.kill()
        time.sleep(0.3)  # let the monitor print the offline status
        monitor.client.loop_stop()
        monitor.client.disconnect()
        broker.stop()
    counts = monitor.view.counts
    print(
        f"demo: agent exited with {agent.returncode}; monitor saw {counts['events']} events, "
        f"{counts['invalid']} invalid",
        flush=True,
    )
    if interrupted:
        return 0
    return 0 if agent.returncode == 0 and counts["invalid"] == 0 else 1
