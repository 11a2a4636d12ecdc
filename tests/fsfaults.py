"""A worn SD card for tests: an ext4 image on a loop device, mounted ``errors=remount-ro``.

Root only; the fixture ``card`` skips with the reason when a loop device cannot be had.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


class LoopExt4:
    """An ext4 image in a file, on a loop device, mounted ``errors=remount-ro``."""

    def __init__(self, folder: Path) -> None:
        self.image = folder / "card.img"
        self.mnt = folder / "card"
        self.loops: list[str] = []  # every loop device attached, for teardown
        self.fallback = ""

    def attach_and_mount(self) -> None:
        done = run("losetup", "--find", "--show", str(self.image))
        if done.returncode != 0:
            pytest.skip(f"losetup cannot attach a loop device here: {done.stderr.strip()}")
        self.loops.append(done.stdout.strip())
        done = run("mount", "-o", "errors=remount-ro", self.loops[-1], str(self.mnt))
        if done.returncode != 0:
            pytest.skip(f"cannot mount a loop-mounted ext4 here: {done.stderr.strip()}")

    @property
    def dev(self) -> str:
        return Path(self.loops[-1]).name

    def fail(self) -> None:
        """Force an ext4 error (what a worn card does); the kernel remounts read-only."""
        trigger = Path(f"/sys/fs/ext4/{self.dev}/trigger_fs_error")
        if trigger.exists():
            trigger.write_text("1")
        else:  # an older kernel: a plain read-only remount is the closest we can get
            self.fallback = f"{trigger} does not exist; used mount -o remount,ro instead"
            assert run("mount", "-o", "remount,ro", str(self.mnt)).returncode == 0
        assert "ro" in self.options() or "emergency_ro" in self.options()

    def options(self) -> list[str]:
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if parts[1] == str(self.mnt):
                return parts[3].split(",")
        return []

    def repair(self) -> None:
        """What a technician (or a reboot) does: unmount, e2fsck, mount again.

        After an ext4 error the journal is aborted and ``remount,rw`` does not bring it back,
        so: a lazy unmount (the spool still holds its old descriptors), e2fsck on the image,
        and a fresh loop device mounted on the same path.
        """
        assert run("umount", "-l", str(self.mnt)).returncode == 0
        run("losetup", "-d", self.loops[-1])  # detaches once the last descriptor closes
        fsck = run("e2fsck", "-fy", str(self.image))
        assert fsck.returncode in (0, 1, 2), fsck.stdout + fsck.stderr
        self.attach_and_mount()

    def teardown(self) -> None:
        with contextlib.suppress(OSError):
            while os.path.ismount(self.mnt):
                if run("umount", "-l", str(self.mnt)).returncode != 0:
                    break
        for dev in self.loops:
            if str(self.image) in run("losetup", dev).stdout:
                run("losetup", "-d", dev)


@pytest.fixture
def card(tmp_path: Path) -> Iterator[LoopExt4]:
    if os.geteuid() != 0:
        pytest.skip("needs root for a loop-mounted ext4")
    for tool in ("losetup", "mkfs.ext4", "e2fsck"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} for a loop-mounted ext4")
    fs = LoopExt4(tmp_path)
    fs.mnt.mkdir()
    with fs.image.open("wb") as f:
        f.truncate(24 * 1024 * 1024)
    done = run("mkfs.ext4", "-q", "-F", str(fs.image))
    if done.returncode != 0:
        pytest.skip(f"mkfs.ext4 failed: {done.stderr.strip()}")
    try:
        fs.attach_and_mount()
        yield fs
    finally:
        fs.teardown()
