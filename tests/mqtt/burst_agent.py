"""A tiny agent process for kill -9 tests: Spool + Outbox + Link, then a burst of events.

    python -m tests.mqtt.burst_agent SPOOL PORT COUNT

Prints ``boot <boot_id>`` first, then ``<seq>`` for every event after ``emit`` returned
(so the event is durable), flushing each line.  COUNT < 0 means forever (the test kills
it).  After COUNT events it waits for the spool to drain, stops the link cleanly (offline,
why=stopped) and exits 0.  Two of every three events are object events, one a bell alarm.
"""

from __future__ import annotations

import sys
import time

from agent.config import DeviceConfig, MqttConfig
from agent.events import EventStamper, Topics
from agent.mqtt.link import Link, StatusInfo
from agent.outbox import Outbox
from agent.spool import Spool

DEVICE = DeviceConfig(id="pole-1", site="s1", pole="P-1", latitude=37.5, longitude=127.0)
TOPICS = Topics("pole", "s1", "pole-1")


def main(argv: list[str]) -> int:
    spool_path, port, count = argv[0], int(argv[1]), int(argv[2])
    spool = Spool(spool_path)
    stamper = EventStamper(DEVICE.id)
    outbox = Outbox(spool, TOPICS, stamper)
    cfg = MqttConfig(port=port, backoff_min_s=0.05, backoff_max_s=0.5, keepalive_s=5)
    link = Link(cfg, spool, TOPICS, StatusInfo(DEVICE, stamper.boot_id, "test", "cfg0"))
    link.start()
    print(f"boot {stamper.boot_id}", flush=True)
    i = 0
    while count < 0 or i < count:
        if i % 3 == 0:
            event = stamper.bell(ev="pressed", inp="button")
        else:
            event = stamper.object(
                ev="update", cam="cam0", tid=i, cls="person", sc=0.9, box=(0.1, 0.2, 0.3, 0.4)
            )
        if not outbox.emit(event):
            return 2
        sys.stdout.write(f"{event.seq}\n")
        sys.stdout.flush()
        i += 1
    deadline = time.monotonic() + 30
    while len(spool) and time.monotonic() < deadline:
        time.sleep(0.02)
    left = len(spool)
    link.stop(5.0)
    spool.close()
    return 0 if not left else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
