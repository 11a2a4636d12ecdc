"""A private PostgreSQL for the tests and the fleet benchmark: initdb, pg_ctl, a free port.

Never the system's server on 5432.  PostgreSQL refuses to run as root, so as root the data
folder is made under /tmp (pytest's own folders are root-only) for the ``postgres`` system
user, and initdb and pg_ctl run as that user through ``runuser``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from agent.dev.broker import free_port
from agent.errors import AgentError

__all__ = ["LocalPostgres", "PostgresMissingError", "pg_bindir"]


class PostgresMissingError(AgentError):
    """No PostgreSQL server binaries (initdb, pg_ctl) on this machine."""


def pg_bindir() -> Path:
    """The folder of initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/N/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(cand, "initdb").exists() and Path(cand, "pg_ctl").exists():
            return Path(cand)
    raise PostgresMissingError(
        "PostgreSQL server binaries not found; scripts/setup.sh installs them"
    )


class LocalPostgres:
    """One postgres on 127.0.0.1:port, trust authentication, data in a private folder."""

    def __init__(self, port: int | None = None, *, fsync: bool = False) -> None:
        self.bindir = pg_bindir()
        self.port = port or free_port()
        self.fsync = fsync  # off for tests; the benchmark turns it on to measure honestly
        self.root = Path(tempfile.mkdtemp(prefix="pole-pg-"))
        self.data = self.root / "data"
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres"
            ids = pwd.getpwnam(self.user)
            os.chown(self.root, ids.pw_uid, ids.pw_gid)
        self.superuser = self.user or pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, *argv: str) -> None:
        cmd = [str(self.bindir / argv[0]), *argv[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        # A session of its own: a terminal's Ctrl-C to the demo's group must not kill pg_ctl
        # half-way (the demo stops the server itself, in its order).
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=self.root,
                              start_new_session=True)  # fmt: skip
        if done.returncode != 0:
            log = self.root / "postgres.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{argv[0]} failed: {done.stderr.strip()}\n{tail}")

    def start(self) -> LocalPostgres:
        if not self.data.exists():
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-E", "UTF8", "--no-sync")
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=100 "
            "-c shared_buffers=128MB"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "postgres.log"),
                  "-o", opts, "-w", "-t", "30", "start")  # fmt: skip
        return self

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.superuser}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """A fresh database; its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
