"""Secret files: where a credential name points, its contents, and a digest of them.

A credential is named in the config by a file name.  A relative name is looked up in
systemd's ``$CREDENTIALS_DIRECTORY`` (``LoadCredential=``) when that is set, else taken
relative to the working directory; an absolute name is used as it is.  The digest lets a
reload notice a rotated key or password whose file name did not change.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from agent.errors import CredentialError

__all__ = ["CredentialError", "digest", "read_bytes", "read_text", "resolve"]

MAX_BYTES = 1024 * 1024  # a credential is a key or a password, never a large file


def resolve(name: str) -> Path:
    """The path a credential name points to (not checked for existence)."""
    path = Path(name)
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if not path.is_absolute() and creds:
        return Path(creds) / path
    return path


def read_bytes(name: str, what: str = "credential") -> bytes:
    """The file's bytes; CredentialError naming ``what`` and the path when it cannot be read."""
    path = resolve(name)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise CredentialError(f"{what} file {path} does not exist", str(path)) from None
    except OSError as exc:
        raise CredentialError(
            f"{what} file {path} cannot be read: {exc.strerror or exc}", str(path)
        ) from None
    if len(data) > MAX_BYTES:
        raise CredentialError(f"{what} file {path} is larger than {MAX_BYTES} bytes", str(path))
    return data


def read_text(name: str, what: str = "credential") -> str:
    """The file's text, stripped of surrounding white space (a trailing newline)."""
    data = read_bytes(name, what)
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        path = resolve(name)
        raise CredentialError(
            f"{what} file {path} is not UTF-8 text (byte {exc.start} is 0x{data[exc.start]:02x})",
            str(path),
        ) from None


def digest(name: str) -> str:
    """sha256 of the file's contents (hex, 16 digits), or ``missing``/``unreadable``."""
    try:
        data = read_bytes(name)
    except CredentialError as exc:
        return "missing" if not Path(exc.path or "").exists() else "unreadable"
    return hashlib.sha256(data).hexdigest()[:16]
