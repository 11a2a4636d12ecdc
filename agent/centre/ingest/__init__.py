"""The centre's ingest: every pole's messages into PostgreSQL, shared by several workers.

Modules: ``records`` (what a message means, pure), ``store`` (one batch, one transaction),
``worker`` (MQTT shared subscription, acks after commit), ``sweeper`` (sequence gaps, silent
poles), ``migrate`` (versioned SQL), ``localdb`` (a private server for tests and benchmarks),
``cli``.  Nothing is imported here: the database driver is in the ``centre`` extra only, and
``pole-agent --help`` must work on a pole without it.
"""

__all__: list[str] = []
