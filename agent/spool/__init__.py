"""Durable outbox on SQLite: every message is on disk before anyone tries to send it.

* ``put`` returns only after the row is committed with ``synchronous=FULL`` in WAL mode,
  so a crash or a power cut after ``put`` returns loses nothing.
* ``next_batch`` hands out rows by priority (alarms first), oldest first within a priority.
* ``ack`` deletes a row once the broker acknowledged it.  A lost ack means a duplicate
  later, never a loss: delivery is at least once.
* Bounds in rows and bytes: when full, the oldest rows of the lowest priority go first and
  are counted; alarms are never dropped and never expire.  A retained message replaces the
  unsent retained messages of its topic.
* A full file system is met with a ballast file released to make room, then eviction.
* A disk that refuses writes puts the spool in degraded mode: alarms wait in memory and
  are still sent, the rest is refused, the disk is retried (:mod:`agent.spool.core`).
* A damaged file is salvaged at open: readable rows are kept, alarms first, the rest is
  counted as lost (:mod:`agent.spool.salvage`).
* A row the broker will never take is moved by ``set_aside`` to a bounded dead-letter
  table in the same file, for a technician (:mod:`agent.spool.dead`, ``pole-agent spool
  dead``).

One connection, one lock: SQLite serialises writers anyway, and a lock held for one
commit (one fsync) is the bound on how long the bell thread can wait here.
"""

from agent.errors import SpoolError
from agent.spool.core import Spool
from agent.spool.rows import SpoolRow
from agent.spool.salvage import SalvageReport

__all__ = ["SalvageReport", "Spool", "SpoolError", "SpoolRow"]
