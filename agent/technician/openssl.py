"""The device's TLS identity through the ``openssl`` command (no Python crypto dependency).

The private key is made on the box and never leaves it; the centre's CA signs the CSR.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from agent.errors import AgentError

__all__ = ["OpenSSLError", "cert_matches_key", "make_csr", "make_key", "verify_chain"]


class OpenSSLError(AgentError):
    """openssl is missing or refused; the message says which step and why."""


def _openssl(*args: str, what: str) -> str:
    exe = shutil.which("openssl")
    if exe is None:
        raise OpenSSLError("the openssl command is not installed (apt-get install openssl)")
    proc = subprocess.run([exe, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise OpenSSLError(
            f"{what} failed: {detail[0] if detail else 'openssl exit ' + str(proc.returncode)}"
        )
    return proc.stdout


def make_key(path: Path) -> None:
    """A new EC P-256 private key at ``path`` (mode 0600), replacing it atomically."""
    tmp = path.with_name(f".{path.name}.new")
    tmp.unlink(missing_ok=True)
    old = os.umask(0o077)  # the key is never readable by others, not even for an instant
    try:
        _openssl(
            "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", str(tmp), what="generating the device key",
        )  # fmt: skip
    finally:
        os.umask(old)
    tmp.chmod(0o600)
    os.replace(tmp, path)


def make_csr(key: Path, csr: Path, *, device: str, site: str) -> None:
    """A CSR for ``key`` with CN=<device> (the broker's user name with use_identity_as_username)."""
    subject = f"/CN={device}/OU={site}/O=pole-agent"
    tmp = csr.with_name(f".{csr.name}.new")
    _openssl(
        "req", "-new", "-key", str(key), "-subj", subject, "-sha256", "-out", str(tmp),
        what="making the certificate signing request",
    )  # fmt: skip
    tmp.chmod(0o644)
    os.replace(tmp, csr)


def _public_key(*args: str, what: str) -> str:
    return "".join(_openssl(*args, what=what).split())


def cert_matches_key(cert: Path, key: Path) -> bool:
    """True when the certificate was issued for this private key."""
    from_cert = _public_key("x509", "-in", str(cert), "-noout", "-pubkey", what=f"reading {cert}")
    from_key = _public_key("pkey", "-in", str(key), "-pubout", what=f"reading {key}")
    return from_cert == from_key


def verify_chain(cert: Path, ca: Path) -> None:
    """OpenSSLError unless ``cert`` is signed by ``ca``."""
    _openssl("verify", "-CAfile", str(ca), str(cert), what=f"checking {cert} against {ca}")
