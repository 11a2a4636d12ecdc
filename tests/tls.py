"""Certificates for TLS tests, made with the ``openssl`` command (no Python crypto needed).

``make_pki(folder)`` writes a CA, a server certificate for 127.0.0.1/localhost signed by
it, a client certificate signed by it, and a client certificate signed by another CA
(the "wrong" one a broker with ``require_certificate`` must refuse).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Pki", "make_pki"]

_DAYS = "2"


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_ca: Path
    rogue_cert: Path
    rogue_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {done.stderr.strip()}")


def _ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}.key", folder / f"{name}.crt"
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key.name, cwd=folder)
    _openssl(
        "req", "-x509", "-new", "-key", key.name, "-out", cert.name, "-days", _DAYS,
        "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip
    return cert, key


def _leaf(folder: Path, name: str, ca: tuple[Path, Path], ext: str) -> tuple[Path, Path]:
    key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.crt"
    extfile = folder / f"{name}.ext"
    extfile.write_text(ext + "\n")
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key.name, cwd=folder)
    _openssl("req", "-new", "-key", key.name, "-out", csr.name, "-subj", f"/CN={name}", cwd=folder)
    _openssl(
        "x509", "-req", "-in", csr.name, "-CA", ca[0].name, "-CAkey", ca[1].name,
        "-CAcreateserial", "-out", cert.name, "-days", _DAYS, "-extfile", extfile.name,
        cwd=folder,
    )  # fmt: skip
    return cert, key


def make_pki(folder: Path, client_name: str = "pole-1") -> Pki:
    """Write every certificate and key into ``folder`` and return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = _ca(folder, "centre-ca")
    server = _leaf(
        folder,
        "broker",
        ca,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth",
    )
    client = _leaf(folder, client_name, ca, "extendedKeyUsage=clientAuth")
    rogue_ca = _ca(folder, "rogue-ca")
    rogue = _leaf(folder, f"{client_name}-rogue", rogue_ca, "extendedKeyUsage=clientAuth")
    return Pki(
        ca=ca[0],
        server_cert=server[0],
        server_key=server[1],
        client_cert=client[0],
        client_key=client[1],
        rogue_ca=rogue_ca[0],
        rogue_cert=rogue[0],
        rogue_key=rogue[1],
    )
