"""Does the vision scheduler keep a camera's ``fps``?  Frame times of one sample camera.

    python bench/pacing.py [--fps 5] [--seconds 40]

The vision pipeline as a thread of this process (so its analysed frames' capture times can
be read directly, with no facts message in between), one sample camera paced as a live
10 fps camera, analysed at ``--fps`` with motion gating on: how many frames were analysed in
how long, the rate, and how the gaps between analysed frames fall (to 0.1 s).  The service
keeps the last 256 frame times: at 5 fps, runs up to 50 s are counted whole.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
for p in (str(BENCH.parent), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

import bell_latency as bl  # noqa: E402

from agent.events import EventStamper  # noqa: E402
from agent.spool import Spool  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--seconds", type=float, default=40.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pole-pacing-") as d:
        spool = Spool(Path(d) / "spool.db")
        outbox = bl.DiscardingOutbox(spool, bl.TOPICS, EventStamper(bl.DEVICE.id))
        vision = bl.start_vision(outbox, "thread", 1, fps=args.fps, motion=True)
        try:
            cam = next(iter(vision._cams.values()))
            cam.analysed.clear()
            time.sleep(args.seconds)
            times = list(cam.analysed)
        finally:
            vision.stop(5)
            spool.close()
    if len(times) < 2:
        print("fewer than two frames analysed")
        return 1
    span = times[-1] - times[0]
    gaps = collections.Counter(round(b - a, 1) for a, b in itertools.pairwise(times))
    print(f"{len(times)} frames in {span:.1f} s: {(len(times) - 1) / span:.4f} fps "
          f"(asked {args.fps:g})")  # fmt: skip
    print("gaps between analysed frames (s: count):", dict(sorted(gaps.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
