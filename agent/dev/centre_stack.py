"""The control centre's side of `pole-agent demo`: PostgreSQL, the ingest and the console.

What a city runs between the poles and the operators, on this machine and private to one
demo run: a PostgreSQL server on a free port with a fresh, migrated database (its data in a
temporary folder, removed at the stop), ``pole-agent centre ingest`` consuming the demo's
broker into it, and ``pole-agent centre console`` on a free port of 127.0.0.1 with one
operator, ``demo``, whose password is made for this run.

Why a password per run rather than a fixed, documented one: the console is a real one.  It
sends signed ``bell-ack`` commands and lookouts to the demo pole, and 127.0.0.1 is open to
every user and process of the machine; a password printed in a README would open it to all
of them, and would teach a habit that must not reach a control room.  The demo prints it
when the console answers, next to the address.

The ingest and the console are children in sessions of their own (a terminal's Ctrl-C
reaches the demo only, which stops them in its order); PostgreSQL's ``pg_ctl`` detaches the
server likewise.  Everything written here stays under the demo's folder (``var/demo``):
the command keys, the operators file, the ingest's and the console's logs.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pwd
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.control.auth import generate_key
from agent.dev.broker import free_port

if TYPE_CHECKING:
    from agent.centre.ingest.localdb import LocalPostgres

__all__ = ["CENTRE_MODULES", "DEMO_USER", "CentreStack", "DemoKeys", "why_no_centre", "write_keys"]

# The `centre` extra's modules (pyproject.toml): the ingest, the console and its users file.
CENTRE_MODULES = ("psycopg", "psycopg_pool", "starlette", "uvicorn", "jinja2", "itsdangerous",
                  "argon2")  # fmt: skip
DEMO_USER = "demo"
# No 0/o, 1/l/i: read off a terminal and typed into a login form.
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def why_no_centre(modules: tuple[str, ...] = CENTRE_MODULES) -> str | None:
    """Why the centre's side cannot run on this machine, in one sentence; None when it can."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        return (
            f"the centre extra is not installed ({', '.join(missing)} missing); "
            "scripts/setup.sh installs it, or pip install -e '.[centre]'"
        )
    from agent.centre.ingest.localdb import PostgresMissingError, pg_bindir

    try:
        pg_bindir()
    except PostgresMissingError as exc:
        return str(exc)
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return (
                "PostgreSQL refuses to run as root and there is no 'postgres' user to run it "
                "(Debian's postgresql package makes one)"
            )
    return None


def demo_password() -> str:
    """Twelve random characters in three groups, e.g. ``k7qd-x3mv-p9ta`` (about 59 bits)."""
    chars = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return "-".join(chars[i : i + 4] for i in range(0, 12, 4))


@dataclass(frozen=True)
class DemoKeys:
    """The demo pole's command key and its site's key: the agent's and the console's."""

    device: Path
    site: Path


def write_keys(folder: Path) -> DemoKeys:
    """Fresh command keys for this run (0600), as `pole-agent provision` makes for a unit."""
    keys = DemoKeys(folder / "command-key", folder / "site-key")
    for path in (keys.device, keys.site):
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(generate_key() + "\n")
    return keys


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__


class CentreStack:
    """PostgreSQL, the ingest and the console of one demo run; ``stop`` in that reverse order."""

    def __init__(self, folder: Path, broker_port: int, keys: DemoKeys) -> None:
        self.folder = folder
        self.broker_port = broker_port
        self.keys = keys
        self.password = demo_password()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.users = folder / "console-users.txt"
        self.pg: LocalPostgres | None = None
        self.db_url = ""
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._reported: set[str] = set()

    @property
    def login_line(self) -> str:
        return f"console: {self.url}  (log in as {DEMO_USER} / {self.password})"

    def log(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def start(self, timeout: float = 30.0) -> None:
        """Database (migrated), ingest (subscribed), console (started; see :meth:`ready`).

        RuntimeError (or the database's own error) when a part does not come up; what did
        come up is left for :meth:`stop`.
        """
        from agent.centre.console.users import add_user
        from agent.centre.ingest.localdb import LocalPostgres
        from agent.centre.ingest.migrate import migrate

        self.users.unlink(missing_ok=True)  # only this run's operator
        add_user(self.users, DEMO_USER, "operator", self.password)
        self.pg = LocalPostgres()
        self.pg.start()
        self.db_url = self.pg.create_database("poles")
        migrate(self.db_url)
        broker = f"127.0.0.1:{self.broker_port}"
        self._spawn("ingest", "ingest", "--db", self.db_url, "--broker", broker)
        # Subscribed before the pole starts, so that the database has its first message too.
        self._wait_for_log("ingest", "subscribed to", timeout)
        self._spawn("console", "console", "--db", self.db_url, "--broker", broker,
                    "--listen", f"127.0.0.1:{self.port}", "--users", str(self.users),
                    "--key-file", str(self.keys.device),
                    "--site-key-file", str(self.keys.site))  # fmt: skip

    def _spawn(self, name: str, *argv: str) -> None:
        with self.log(name).open("wb") as out:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "agent", "centre", *argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,  # a terminal's Ctrl-C reaches the demo, not them
            )

    def _wait_for_log(self, name: str, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log(name).read_text(errors="replace"):
            if self.procs[name].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {name} did not start: {self.tail(name)}")
            time.sleep(0.1)

    def tail(self, name: str) -> str:
        """The last line of a child's log, for a one-line report."""
        try:
            lines = self.log(name).read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return f"{lines[-1] if lines else 'no output'} (log: {self.log(name)})"

    def ready(self) -> bool:
        """True once the console answers ``/healthz`` live (listening to the database)."""
        try:
            with urllib.request.urlopen(self.url + "healthz", timeout=1) as r:  # noqa: S310
                return bool(json.loads(r.read()).get("live"))
        except (OSError, ValueError):
            return False

    def trouble(self) -> list[str]:
        """A sentence for each child (ingest, console) that has exited on its own since the
        last call: each is said once."""
        out = []
        for name, proc in self.procs.items():
            if proc.poll() is not None and name not in self._reported:
                self._reported.add(name)
                out.append(f"the {name} exited with {proc.returncode}: {self.tail(name)}")
        return out

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until the database has no pole online: the stopped agent's last word, stored
        by the ingest and pushed to the console's open pages, before they stop in turn."""
        if self.pg is None or "ingest" not in self.procs or not self.db_url:
            return
        import psycopg

        deadline = time.monotonic() + timeout
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(self.db_url, connect_timeout=2, autocommit=True) as conn,
        ):
            while time.monotonic() < deadline:
                row = conn.execute("SELECT count(*) FROM poles WHERE status = 'online'")
                found = row.fetchone()
                if found is not None and found[0] == 0:
                    time.sleep(0.3)  # the console forwards the notice to its browsers
                    return
                time.sleep(0.1)

    def stop(self) -> list[str]:
        """Console, then ingest, then PostgreSQL; what went wrong, one sentence each."""
        problems = []
        for name in ("console", "ingest"):
            proc = self.procs.pop(name, None)
            if proc is not None and not _stop_child(proc):
                problems.append(f"the {name} did not stop within 10 s: killed")
        if self.pg is not None:
            try:
                self.pg.stop()
            except (OSError, RuntimeError) as exc:
                problems.append(f"PostgreSQL did not stop cleanly: {_first_line(exc)}")
            self.pg = None
        return problems


def _stop_child(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL to its whole session after ``timeout``; True when it went itself."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return False
    return True
