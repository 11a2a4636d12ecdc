"""Soak: the whole agent for N minutes on the sample video, bell presses, broker restarts.

    python bench/soak.py [--minutes 10] [--press-every 20] [--restart-every 120]

The agent runs as a child process (`pole-agent run`, dev-sim profile, sample video looping
at 5 fps, bell simulator) against a private mosquitto that is restarted every
``--restart-every`` seconds.  Every minute it records the resident memory and open file
descriptors of the agent and of any child processes (the vision process), and at the end
checks that every bell press arrived at the centre.  Flat columns are the result.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.dev.broker import LocalBroker  # noqa: E402
from tests.agentproc import AgentProcess, write_site  # noqa: E402
from tests.centre.observer import Centre  # noqa: E402


def _children(pid: int) -> list[int]:
    try:
        out = subprocess.run(
            ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
        ).stdout
    except FileNotFoundError:
        return []
    return [int(p) for p in out.split()]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def sample(pid: int) -> tuple[float, int, float, int]:
    """(agent RSS MB, agent fds, children RSS MB, children fds)."""
    kids = _children(pid)
    return (
        _rss_mb(pid),
        _fds(pid),
        sum(_rss_mb(k) for k in kids),
        sum(_fds(k) for k in kids),
    )


def run(minutes: float, press_every: float, restart_every: float, folder: Path) -> int:
    broker = LocalBroker(folder / "broker").start()
    camera = {"id": "cam1", "source": "sample", "loop": True, "fps": 5}
    site = write_site(
        folder / "unit",
        broker.port,
        cameras=[camera],
        extra={
            "bell": {"policy": {"lockout_s": 0}},
            "health": {"heartbeat_s": 10},
            "detection": {"process_priority": "idle"},  # the default (tests use a niceness)
        },
    )
    centre = Centre(broker.port, "pole/#")
    agent = AgentProcess(site)
    start = time.monotonic()
    end = start + minutes * 60
    next_press, next_restart, next_sample = start + 10, start + restart_every, start + 30
    presses = restarts = 0
    rows: list[tuple[float, float, int, float, int, int]] = []
    try:
        while time.monotonic() < end and agent.proc.poll() is None:
            now = time.monotonic()
            if now >= next_press:
                agent.press(0.2)
                presses += 1
                next_press += press_every
            if now >= next_restart:
                broker.restart()
                restarts += 1
                next_restart += restart_every
            if now >= next_sample:
                rss, fds, crss, cfds = sample(agent.proc.pid)
                rows.append(((now - start) / 60, rss, fds, crss, cfds, presses))
                print(
                    f"{rows[-1][0]:5.1f} min  agent {rss:6.1f} MB {fds:3d} fds   "
                    f"children {crss:6.1f} MB {cfds:3d} fds   presses {presses}",
                    flush=True,
                )
                next_sample += 60
            time.sleep(0.2)
        alive = agent.proc.poll() is None
        got = centre.wait_for(
            lambda m: m.topic.endswith("/event/bell") and b'"activated"' in m.payload,
            presses,
            timeout=60,
        )
        ids = {m.json()["id"] for m in got}
    finally:
        code = agent.stop()
        centre.close()
        broker.stop()
    objects = sum(1 for m in centre.messages if m.topic.endswith("/event/object"))
    print(
        f"\n{minutes:g} min, {presses} presses, {restarts} broker restarts, agent alive: {alive}, "
        f"exit code {code}"
    )
    print(f"bell activations received: {len(ids)} of {presses}; object events received: {objects}")
    if rows:
        first, last = rows[0], rows[-1]
        print(
            f"agent RSS {first[1]:.1f} -> {last[1]:.1f} MB, fds {first[2]} -> {last[2]}; "
            f"children RSS {first[3]:.1f} -> {last[3]:.1f} MB, fds {first[4]} -> {last[4]}"
        )
    return 0 if alive and len(ids) >= presses and code == 0 else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--press-every", type=float, default=20.0)
    ap.add_argument("--restart-every", type=float, default=120.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pole-soak-") as d:
        return run(args.minutes, args.press_every, args.restart_every, Path(d))


if __name__ == "__main__":
    sys.exit(main())
