"""The operators' console: a web app over the ingest's PostgreSQL (``pole-agent centre console``).

Modules: ``users`` (the operators file, argon2 hashes), ``auth`` (sessions, CSRF, roles),
``db`` (one query per view), ``live`` (LISTEN/NOTIFY to server-sent events), ``commands``
(signed ``bell-ack``), ``views`` (rows into what operators read, the map), ``app`` (Starlette
routes), ``cli``.  Nothing is imported here: Starlette, uvicorn and argon2 are in the
``centre`` extra only, and ``pole-agent --help`` must work on a pole without them.
"""

__all__: list[str] = []
