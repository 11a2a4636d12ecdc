"""`pole-agent provision`: a valid site file, a key + CSR openssl accepts, modes, safe re-runs."""

from __future__ import annotations

import grp
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from agent.cli import main
from agent.config import load
from agent.control.auth import load_key
from tests.tls import make_pki

IDENTITY = [
    "--profile", "dev-sim", "--device-id", "gn-0042", "--site", "gangnam", "--pole", "GN-042",
    "--location", "역삼초 정문 앞", "--lat", "37.5", "--lon", "127.03",
    "--broker-host", "127.0.0.1", "--broker-port", "8883",
]  # fmt: skip


def run(root: Path, *args: str) -> int:
    return main(["provision", "--root", str(root), "--no-input", *args])


def etc(root: Path) -> Path:
    return root / "etc/pole-agent"


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)


def sign_csr(csr: Path, pki_dir: Path, out: Path) -> Path:
    done = openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(pki_dir / "centre-ca.crt"),
        "-CAkey", str(pki_dir / "centre-ca.key"), "-CAcreateserial", "-days", "2",
        "-out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


def test_first_run_writes_a_valid_unit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    assert run(tmp_path, *IDENTITY, "--password-file", str(pw)) == 0
    out = capsys.readouterr().out
    d = etc(tmp_path)
    site = d / "site.yaml"
    cfg = load(site)
    assert cfg.device.id == "gn-0042"
    assert cfg.device.location == "역삼초 정문 앞"
    assert cfg.mqtt.port == 8883
    assert cfg.mqtt.username == "gn-0042"
    assert cfg.mqtt.password_file == "mqtt-password"  # the LoadCredential= name
    assert cfg.commands.key_file == "command-key"
    assert cfg.mqtt.tls is None  # no CA brought yet
    # Modes: the secrets are for root only; the CSR may be read by anyone.
    assert mode(site) == 0o600
    assert mode(d / "credentials") == 0o700
    for name in ("device.key", "mqtt-password", "command-key"):
        assert mode(d / "credentials" / name) == 0o600, name
    assert (d / "credentials/mqtt-password").read_text().strip() == "s3cret"
    assert len(load_key(str(d / "credentials/command-key"))) == 32
    # openssl accepts the CSR (self-signature) and it is for this device's key.
    csr = d / "tls/device.csr"
    assert str(csr) in out
    verify = openssl("req", "-verify", "-in", str(csr), "-noout", "-subject")
    assert verify.returncode == 0, verify.stderr
    assert "CN = gn-0042" in verify.stdout
    key_pub = openssl("pkey", "-in", str(d / "credentials/device.key"), "-pubout").stdout
    csr_pub = openssl("req", "-in", str(csr), "-noout", "-pubkey").stdout
    assert key_pub == csr_pub
    assert "prime256v1" in openssl("pkey", "-in", str(d / "credentials/device.key"), "-text").stdout


def test_rerun_keeps_keys_and_hand_edits(tmp_path: Path) -> None:
    assert run(tmp_path, *IDENTITY) == 0
    d = etc(tmp_path)
    key = (d / "credentials/device.key").read_bytes()
    cmdkey = (d / "credentials/command-key").read_bytes()
    site = yaml.safe_load((d / "site.yaml").read_text())
    site["cameras"] = []  # the technician's own change
    (d / "site.yaml").write_text(yaml.safe_dump(site))
    # Re-run with one change only: everything else comes from the existing file.
    assert run(tmp_path, "--pole", "GN-043") == 0
    assert (d / "credentials/device.key").read_bytes() == key
    assert (d / "credentials/command-key").read_bytes() == cmdkey
    cfg = load(d / "site.yaml")
    assert cfg.device.pole == "GN-043"
    assert cfg.device.id == "gn-0042"
    assert cfg.cameras == []
    assert mode(d / "site.yaml") == 0o600
    assert not list(d.glob(".*.new"))  # no temporary left behind
    # Rotation on request.
    assert run(tmp_path, "--rotate-key", "--rotate-command-key") == 0
    assert (d / "credentials/device.key").read_bytes() != key
    assert (d / "credentials/command-key").read_bytes() != cmdkey


def test_invalid_identity_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [a if a != "gn-0042" else "GN 42!" for a in IDENTITY]
    assert run(tmp_path, *args) == 2
    err = capsys.readouterr().err
    assert "device.id: must match" in err
    assert not (etc(tmp_path) / "site.yaml").exists()
    assert not (etc(tmp_path) / "credentials/device.key").exists()  # no key for a bad id


def test_missing_values_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, "--profile", "dev-sim", "--device-id", "x-1") == 2
    assert "missing: site, pole, latitude, longitude, host" in capsys.readouterr().err


def test_install_cert_and_ca(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pki = tmp_path / "pki"
    make_pki(pki)
    root = tmp_path / "root"
    assert run(root, *IDENTITY) == 0
    d = etc(root)
    cert = sign_csr(d / "tls/device.csr", pki, tmp_path / "device.crt")
    assert run(root, "--cert", str(cert), "--ca", str(pki / "centre-ca.crt")) == 0
    cfg = load(d / "site.yaml")
    assert cfg.mqtt.tls is not None
    assert cfg.mqtt.tls.ca == "/etc/pole-agent/tls/ca.pem"  # the path on the unit
    assert cfg.mqtt.tls.key == "device.key"
    assert (d / "tls/device.crt").read_bytes() == cert.read_bytes()
    # A certificate for another key is refused, and says what to do.
    capsys.readouterr()
    other = pki / "pole-1.crt"
    assert run(root, "--cert", str(other)) == 2
    assert "was not issued for this unit's key" in capsys.readouterr().err
    assert (d / "tls/device.crt").read_bytes() == cert.read_bytes()
    # Rotating the key moves the old certificate aside and drops it from the config.
    assert run(root, "--rotate-key") == 0
    assert load(d / "site.yaml").mqtt.tls.cert is None  # type: ignore[union-attr]
    assert (d / "tls/device.crt.old").exists()


def test_prompts_in_a_terminal(tmp_path: Path) -> None:
    """With a terminal on stdin, missing values are asked for (a real pty)."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "provision", "--root", str(tmp_path),
         "--profile", "dev-sim", "--site", "gangnam", "--lat", "37.5", "--lon", "127.0",
         "--broker-host", "10.0.0.1"],
        stdin=slave, stdout=slave, stderr=slave,
    )  # fmt: skip
    os.close(slave)
    answers = [(b"device id:", b"gn-7\n"), (b"pole number:", b"P-7\n"), (b"location", b"\n")]
    answers += [(b"address", b"\n"), (b"MQTT password", b"pw-typed\n")]
    seen = b""
    deadline = time.monotonic() + 30
    while answers and time.monotonic() < deadline:
        if not select.select([master], [], [], 1.0)[0]:
            continue
        try:
            seen += os.read(master, 4096)
        except OSError:
            break
        while answers and answers[0][0] in seen:
            os.write(master, answers.pop(0)[1])
    assert proc.wait(30) == 0, seen.decode(errors="replace")
    os.close(master)
    cfg = load(etc(tmp_path) / "site.yaml")
    assert (cfg.device.id, cfg.device.pole) == ("gn-7", "P-7")
    assert (etc(tmp_path) / "credentials/mqtt-password").read_text().strip() == "pw-typed"


@pytest.fixture
def service_user() -> Iterator[str]:
    """A real system user and group, as the unit's ``User=pole-agent`` (removed afterwards)."""
    if os.geteuid() != 0 or shutil.which("useradd") is None or shutil.which("runuser") is None:
        pytest.skip("needs root with useradd and runuser to run as a service user")
    name = f"pa-svc-{os.getpid() % 100000}"
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False)
        subprocess.run(["groupdel", name], check=False, capture_output=True)


def test_the_service_user_reads_the_site_file_but_no_secret(service_user: str) -> None:
    """As deployed: the service user can read site.yaml (and the TLS certs), not the keys."""
    top = Path(tempfile.mkdtemp(prefix="pa-provision-"))
    try:
        top.chmod(0o755)  # as / is: the service user may walk down to /etc/pole-agent
        assert run(top, *IDENTITY, "--service-group", service_user) == 0
        d = etc(top)
        site = d / "site.yaml"
        assert mode(site) == 0o640
        assert site.stat().st_uid == 0
        assert grp.getgrgid(site.stat().st_gid).gr_name == service_user
        as_service = ["runuser", "-u", service_user, "--", "cat"]
        read = subprocess.run([*as_service, str(site)], check=False, capture_output=True, text=True)
        assert read.returncode == 0, read.stderr
        assert "gn-0042" in read.stdout
        csr = subprocess.run(
            [*as_service, str(d / "tls/device.csr")], check=False, capture_output=True
        )
        assert csr.returncode == 0
        for secret in ("device.key", "mqtt-password", "command-key"):
            denied = subprocess.run(
                [*as_service, str(d / "credentials" / secret)],
                check=False,
                capture_output=True,
                text=True,
            )
            assert denied.returncode != 0, f"{secret} must be for root only (LoadCredential=)"
            assert "Permission denied" in denied.stderr
    finally:
        shutil.rmtree(top)


def test_without_the_service_group_provision_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, *IDENTITY, "--service-group", "no-such-group-here") == 0
    out = capsys.readouterr().out
    assert "group 'no-such-group-here' does not exist" in out
    assert mode(etc(tmp_path) / "site.yaml") == 0o600
