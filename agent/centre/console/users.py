"""The console's operators: a local file of names, roles and argon2id password hashes.

One line per operator, ``NAME:ROLE:HASH`` (an argon2 hash has no colon), ``#`` comments.
The file is read again when it changes, so removing a line or changing a role takes effect
on the operator's next request, without restarting the console.  Hashing is argon2-cffi's
(argon2id with its default, OWASP-level parameters); nothing here is home-made crypto.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from agent.errors import UserError

__all__ = ["ROLES", "Role", "User", "UsersFile", "add_user"]

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_hasher = PasswordHasher()
# Verified when the name is unknown, so that a wrong name costs as long as a wrong password.
_DUMMY = _hasher.hash("no such operator")


@dataclass(frozen=True)
class User:
    name: str
    role: Role

    @property
    def can_act(self) -> bool:
        """Operators and admins acknowledge alarms (and send lookouts); viewers only look."""
        return self.role in ("operator", "admin")


def _parse(path: Path) -> dict[str, tuple[Role, str]]:
    out: dict[str, tuple[Role, str]] = {}
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, role, hashed = [*line.split(":", 2), "", ""][:3]
        if not _NAME.match(name) or role not in ROLES or not hashed.startswith("$argon2"):
            raise UserError(f"{path}:{n}: expected NAME:ROLE:ARGON2-HASH with ROLE one of "
                            f"{', '.join(ROLES)}")  # fmt: skip
        out[name] = (role, hashed)
    return out


class UsersFile:
    """The operators of one file; ``check`` a login, ``get`` a session's user."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, tuple[Role, str]] = {}
        self._load()

    def _load(self) -> dict[str, tuple[Role, str]]:
        with self._lock:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                self._users, self._stamp = {}, None
                return self._users
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                self._users, self._stamp = _parse(self.path), stamp
            return self._users

    def __len__(self) -> int:
        return len(self._load())

    def names(self) -> list[str]:
        return sorted(self._load())

    def get(self, name: str) -> User | None:
        """The operator as the file says now (None once removed)."""
        found = self._load().get(name)
        return User(name, found[0]) if found else None

    def check(self, name: str, password: str) -> User | None:
        """The operator when ``password`` is theirs, else None (same cost either way)."""
        found = self._load().get(name)
        try:
            _hasher.verify(found[1] if found else _DUMMY, password)
        except (VerificationError, InvalidHashError):
            return None
        return User(name, found[0]) if found else None


def add_user(path: Path, name: str, role: str, password: str) -> bool:
    """Add ``name`` or replace its role and password; True when it was new."""
    if not _NAME.match(name):
        raise UserError(f"user name {name!r}: use letters, digits and _ . @ - (at most 64)")
    if role not in ROLES:
        raise UserError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise UserError("password: at least 8 characters")
    users = _parse(path) if path.exists() else {}
    new = name not in users
    users[name] = (role, _hasher.hash(password))
    lines = ["# pole-agent centre console operators: NAME:ROLE:ARGON2-HASH"]
    lines += [f"{n}:{r}:{h}" for n, (r, h) in sorted(users.items())]
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return new
