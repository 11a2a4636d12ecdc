"""The spool's file system goes read-only under it: a real loop-mounted ext4 with
``errors=remount-ro`` and a real file-system error forced through sysfs (root only)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.events import EventStamper, Topics
from agent.outbox import Outbox
from agent.spool import Spool, SpoolError
from tests.spool.common import P, on_disk


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


def test_a_read_only_card_keeps_alarms_in_memory_sends_them_and_writes_them_back(
    card: LoopExt4,
) -> None:
    clock = [0.0]
    path = card.mnt / "spool.db"
    spool = Spool(path, mono=lambda: clock[0])
    try:
        outbox = Outbox(spool, Topics("pole", "s", "d"), EventStamper("d"))
        before = [spool.put("a", b"alarm-0", P.ALARM), spool.put("o", b"object-0", P.OBJECT)]
        card.fail()

        # The disk refuses: an alarm is accepted into memory, a lower priority refused.
        held = spool.put("a", b"alarm-1", P.ALARM)
        assert held < 0
        facts = spool.facts()
        assert (facts["state"], facts["mem"]) == ("degraded", 1)
        assert "I/O" in facts["error"] or "readonly" in facts["error"]
        with pytest.raises(SpoolError, match="degraded"):
            spool.put("o", b"object-1", P.OBJECT)
        assert outbox.emit(outbox.stamper.bell(ev="pressed")) is True
        assert outbox.emit(outbox.stamper.camera(ev="lost", cam="c0", why="stall")) is False
        assert spool.facts()["refused"] == {"object": 1, "rule": 1}  # camera events are rules
        assert spool.purge_expired() == 0  # no exception on the main thread either

        # Still published: alarms on disk, alarms in memory, then the rest, in order.
        rows = spool.next_batch(10)
        assert [r.payload[:7] for r in rows[:2]] == [b"alarm-0", b"alarm-1"]
        assert rows[0].id == before[0]
        assert rows[-1].payload == b"object-0"
        bell_id = rows[2].id
        spool.ack_many([held, before[0]])  # the broker has them: no exception
        assert [r.payload[:8] for r in spool.next_batch(10)][-1] == b"object-0"
        assert spool.facts()["mem"] == 1
        spool.put("a", b"alarm-2", P.ALARM)

        clock[0] += 5.0
        assert spool.recover() is False  # still read-only: stays degraded, no exception
        card.repair()
        clock[0] += 5.0
        assert spool.recover() is True
        facts = spool.facts()
        assert (facts["state"], facts["mem"]) == ("ok", 0)
        # The acked disk alarm is gone, the memory alarms landed on disk in order.
        rows = spool.next_batch(10)
        assert [r.payload[:7] for r in rows[1:]] == [b"alarm-2", b"object-"]
        assert b'"pressed"' in rows[0].payload
        spool.ack(bell_id)  # a late ack of a moved memory row still finds it
        assert len(spool) == 2
        assert len(on_disk(path)) == 2
        if card.fallback:
            warnings.warn(card.fallback, stacklevel=1)
    finally:
        spool.close()
