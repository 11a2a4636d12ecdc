"""Where does the agent process's memory go over time?  tracemalloc over a running agent.

    python bench/heap_growth.py [--minutes 4] [--top 8]

Runs the agent's Runner in this process (dev-sim profile, the sample video in the vision
child, the bell simulator, a private broker and a counting subscriber), waits a minute for
caches to fill, then compares two tracemalloc snapshots taken ``--minutes`` apart, with a
bell press every 15 s in between.  Prints RSS at both ends and the allocation sites that
grew most.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.dev.broker import LocalBroker  # noqa: E402
from agent.health import Notifier  # noqa: E402
from agent.runner import Runner  # noqa: E402
from tests.agentproc import write_site  # noqa: E402
from tests.centre.observer import Centre  # noqa: E402


class CountingCentre(Centre):
    """Counts instead of keeping messages, so the subscriber's own memory stays flat."""

    count = 0

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        self.count += 1


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--top", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pole-heap-") as d:
        folder = Path(d)
        broker = LocalBroker(folder / "broker").start()
        centre = CountingCentre(broker.port)
        camera = {"id": "cam1", "source": "sample", "loop": True, "fps": 5}
        site = write_site(
            folder / "unit", broker.port, cameras=[camera],
            extra={"bell": {"policy": {"lockout_s": 0}}, "health": {"heartbeat_s": 10},
                   "detection": {"process_priority": "idle"}},  # the default, not the tests'
        )  # fmt: skip
        runner = Runner(site, notifier=Notifier({}))
        thread = threading.Thread(target=runner.run, name="runner", daemon=True)
        thread.start()
        time.sleep(60)
        tracemalloc.start(8)
        before, rss0 = tracemalloc.take_snapshot(), rss_kb()
        end = time.monotonic() + args.minutes * 60
        while time.monotonic() < end:
            time.sleep(15)
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(folder / "unit" / "bell.sock"))
                s.sendall(b"press 0.2\n")
                s.recv(100)
        after, rss1 = tracemalloc.take_snapshot(), rss_kb()
        runner.request_stop()
        thread.join(20)
        centre.close()
        broker.stop()
    print(
        f"RSS {rss0 / 1024:.1f} MB -> {rss1 / 1024:.1f} MB over {args.minutes:g} min; "
        f"{centre.count} messages received"
    )
    for stat in after.compare_to(before, "traceback")[: args.top]:
        frame = stat.traceback[0]
        print(
            f"{stat.size_diff / 1024:+9.1f} KiB  {stat.count_diff:+6d} blocks  "
            f"{frame.filename}:{frame.lineno}"
        )


if __name__ == "__main__":
    main()
