"""Camera capture: one thread per camera keeps only the newest frame, and watches the stream.

Sources: ``rtsp://``/``http://`` URLs (FFmpeg, with open and read timeouts), V4L2 devices
(``/dev/videoN`` or an index), video files (paced at their own fps so a file behaves like
a camera; ``loop`` restarts at the end) and ``sample``, the verified demo video.

A frame is put in a one-frame slot; a frame that was overwritten before the vision thread
took it is counted as dropped, never queued.  Loss is reported once per episode through
``report(kind, why)``: ``open_failed`` (cannot open or decode), ``read_failed`` (a live
stream broke), ``stall`` (no frame for ``stall_s``; checked from outside by :meth:`check`
because a read can hang), ``frozen`` (the same picture for ``frozen_s``), ``ended`` (a file
without ``loop``; final).  The thread then reconnects with jittered exponential backoff
and reports ``restored`` when frames (changing ones, after ``frozen``) come back; the backoff
starts again from ``reconnect_min_s`` only once frames have come for ``stable_s``, so a
stream that drops right after each reconnect is retried ever more slowly.

A camera that comes and goes (``flap_changes`` lost/restored within ``flap_window_s``) is
reported once as ``flapping``; its changes are then counted, not sent, until it has been
quiet for the window (longer when it flaps again soon): ``flapping_cleared`` with the count,
then ``lost`` or ``restored`` if the centre was last told otherwise (:mod:`agent.flap`).
"""

from __future__ import annotations

import logging
import random
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from agent.config import CameraConfig
from agent.flap import FlapFilter, FlapGuard, Told, show_told
from agent.video.motion import small_grey
from agent.video.tamper import TamperDetector
from agent.worker import Worker

__all__ = ["Capture", "Frame", "FrameSlot", "open_source"]

log = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]
Report = Callable[[str, str | None], None]
OPEN_TIMEOUT_MS = 5000
TAMPER_PERIOD_S = 1.0
FALLBACK_FPS = 25.0


@dataclass(frozen=True)
class Frame:
    image: U8
    t: float  # monotonic seconds when it was read
    wall_ms: int  # UTC ms, for events
    seq: int


class FrameSlot:
    """The newest frame only. ``put`` overwrites; ``take`` returns a frame newer than asked."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self._taken = True
        self.dropped = 0
        self.frames = 0

    def put(self, image: U8, t: float, wall_ms: int) -> None:
        with self._lock:
            if not self._taken:
                self.dropped += 1
            self.frames += 1
            self._frame = Frame(image, t, wall_ms, self.frames)
            self._taken = False

    def take(self, after_seq: int = 0) -> Frame | None:
        with self._lock:
            f = self._frame
            if f is None or f.seq <= after_seq:
                return None
            self._taken = True
            return f

    def peek(self) -> Frame | None:
        with self._lock:
            return self._frame


def _describe(source: str) -> tuple[str, Any, int]:
    """(kind, what to open, backend) of a configured source."""
    if source == "sample":
        from agent import assets

        return "file", str(assets.verify("video")), cv2.CAP_ANY
    if "://" in source:
        return "stream", source, cv2.CAP_FFMPEG
    if source.isdigit():
        return "device", int(source), cv2.CAP_V4L2
    if source.startswith("/dev/video"):
        return "device", source, cv2.CAP_V4L2
    return "file", source, cv2.CAP_ANY


def _readable_file(path: Path) -> bool:
    # A named pipe is a file source too (an encoder writing into a FIFO).
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) or stat.S_ISFIFO(mode)


def open_source(source: str, read_timeout_s: float) -> tuple[str, Any]:
    """(kind, opened cv2.VideoCapture); raises OSError with a clear reason."""
    try:
        kind, target, backend = _describe(source)
    except Exception as exc:  # noqa: BLE001 - AssetError and friends: say it, do not crash
        raise OSError(str(exc)) from None
    if kind == "file" and not _readable_file(Path(target)):
        raise OSError(f"{target}: no such file")
    params: list[int] = []
    if kind == "stream":
        ms = int(min(read_timeout_s, 30.0) * 1000)
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            OPEN_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            ms,
        ]
    cap = cv2.VideoCapture(target, backend, params)
    if not cap.isOpened():
        cap.release()
        what = "not a video OpenCV can decode" if kind == "file" else "cannot connect"
        raise OSError(f"{target}: {what}")
    return kind, cap


class Capture(Worker):
    """The capture thread of one camera ("capture-<id>")."""

    def __init__(
        self,
        cam: CameraConfig,
        report: Report,
        *,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(f"capture-{cam.id}")
        self.cam = cam
        self.report = report
        self.slot = FrameSlot()
        self.state = "starting"  # ok, lost, ended, stopped, failed
        self.why: str | None = None
        self.reconnects = 0
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._reopen = threading.Event()
        self._started = time.monotonic()
        self._last_frame_t: float | None = None
        self._attempt = 0
        self._thumb: npt.NDArray[np.int16] | None = None
        self._frozen_thumb: npt.NDArray[np.int16] | None = None
        self._same_since = 0.0
        self._unlike = 0
        self._tamper = TamperDetector()
        self._tamper_t = -1e18
        self._native_since: float | None = None  # inside open or read (native code) since
        self._up_since: float | None = None  # frames since (after the last restore)
        self._flap = FlapFilter(FlapGuard(cam.flap_changes, cam.flap_window_s), "ok", show_told)
        self._told = threading.Lock()  # reports leave in the order the filter decided them

    def stuck_for(self, now: float) -> float:
        """Seconds spent in one native open or read so far; 0 when not in one."""
        since = self._native_since
        return 0.0 if since is None else now - since

    def hang_bound(self) -> float:
        """How long one open or read may take before the thread counts as hung.

        OpenCV's FFmpeg backend is given open and read timeouts, so a healthy stream returns
        within them; longer means a call that ignores its timeout (a pipe with no writer, a
        driver stuck in the kernel).  Nothing inside this process can end such a call.
        """
        return OPEN_TIMEOUT_MS / 1000 + 2 * self.cam.stall_s + 5.0

    # ------------------------------------------------------------------ service
    def facts(self, now: float | None = None) -> dict[str, Any]:
        now = time.monotonic() if now is None else now
        age = None if self._last_frame_t is None else round(now - self._last_frame_t, 2)
        return {
            "state": self.state,
            "why": self.why,
            "frames": self.slot.frames,
            "dropped": self.slot.dropped,
            "frame_age_s": age,
            "reconnects": self.reconnects,
            "tampered": self._tamper.why if self._tamper.tampered else None,
            "flapping": self._flap.guard.flapping,
        }

    def check(self, now: float) -> None:
        """Stall watch, called by another thread: a hung read cannot report itself.

        It also ends a flapping episode whose quiet time is over.
        """
        with self._told:
            self._send(self._flap.tick(now))
        stuck = self.stuck_for(now)
        if stuck > self.hang_bound() and self.why != "capture_hung":
            self._lost("capture_hung", f"one open or read has not returned for {stuck:.0f} s")
            self.state, self.why = "lost", "capture_hung"
            return
        since = self._last_frame_t if self._last_frame_t is not None else self._started
        if self.state in ("ok", "starting") and now - since > self.cam.stall_s:
            self._lost("stall", f"no frame for {now - since:.1f} s")
            self._reopen.set()

    # ------------------------------------------------------------------ state
    def _lost(self, why: str, detail: str) -> None:
        with self._lock:
            if self.state in ("lost", "ended", "stopped"):
                return
            self.state, self.why = ("ended" if why == "ended" else "lost"), why
        log.warning("camera %s lost (%s): %s", self.cam.id, why, detail)
        self._say("lost", why)

    def _restored(self) -> None:
        with self._lock:
            previous, self.state, self.why = self.state, "ok", None
        self._up_since = time.monotonic()
        if previous == "lost":
            log.info("camera %s restored", self.cam.id)
            self._say("restored", None)

    def _say(self, kind: str, why: str | None) -> None:
        """``lost`` or ``restored``, unless the camera flaps (then one episode)."""
        with self._told:
            state = "lost" if kind == "lost" else "ok"
            self._send(self._flap.change(state, Told(kind, why, time.monotonic())))

    def _send(self, told: list[Told]) -> None:
        for t in told:
            if t.ev.startswith("flapping"):
                log.warning("camera %s %s: %s", self.cam.id, t.ev, t.why)
            self.report(t.ev, t.why)

    # ------------------------------------------------------------------ thread
    def _turn(self) -> None:
        """Open the source, read it until it breaks, back off."""
        try:
            self._native_since = time.monotonic()
            kind, cap = open_source(self.cam.source, self.cam.stall_s)
        except OSError as exc:
            self._native_since = None
            self._lost("open_failed", str(exc))
            self._backoff()
            return
        self._native_since = None
        try:
            self._read_loop(kind, cap)
        finally:
            cap.release()
        if self.state == "ended":
            self._stop.wait()  # a file that ended stays ended; nothing to reconnect
        elif not self._stop.is_set():
            self._backoff()

    def _crashed(self, exc: Exception) -> None:
        self.state = "failed"
        log.error(
            "capture-%s crashed; this camera is no longer read: %s", self.cam.id, exc, exc_info=exc
        )
        self._say("lost", "crashed")

    def _finish(self) -> None:
        if self.state != "failed":
            self.state = "stopped"

    def _backoff(self) -> None:
        cam = self.cam
        up, self._up_since = self._up_since, None
        if up is not None and time.monotonic() - up >= cam.stable_s:
            self._attempt = 0  # it was up long enough: this outage starts at the first delay
        delay = min(cam.reconnect_max_s, cam.reconnect_min_s * 2**self._attempt)
        delay = min(cam.reconnect_max_s, delay * (0.75 + 0.5 * self._rng.random()))
        self._attempt = min(self._attempt + 1, 30)
        self.reconnects += 1
        self._stop.wait(delay)

    def _read_loop(self, kind: str, cap: Any) -> None:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        period = 1.0 / fps if kind == "file" and 0 < fps <= 240 else 0.0
        if kind == "file" and period == 0.0:
            period = 1.0 / FALLBACK_FPS
        got, next_t = 0, time.monotonic()
        while not self._stop.is_set() and not self._reopen.is_set():
            self._native_since = time.monotonic()
            ok, img = cap.read()
            self._native_since = None
            now = time.monotonic()
            self.progress(now)
            if not ok or not isinstance(img, np.ndarray) or img.ndim != 3 or img.size == 0:
                if kind != "file":
                    self._lost("read_failed", "the stream returned no frame")
                elif got == 0:
                    self._lost("open_failed", "the file has no decodable frame")
                elif self.cam.loop and cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
                    got = 0
                    continue
                else:
                    self._lost("ended", f"end of file after {got} frames")
                return
            got += 1
            if not self._on_frame(np.ascontiguousarray(img, dtype=np.uint8), now):
                return
            if period:
                next_t = max(next_t + period, now - period)  # no catch-up burst after a hiccup
                self._stop.wait(max(0.0, next_t - time.monotonic()))
        self._reopen.clear()

    def _on_frame(self, img: U8, now: float) -> bool:
        """Slot the frame and watch it; False asks for a reconnect (frozen)."""
        self.slot.put(img, now, time.time_ns() // 1_000_000)
        self._last_frame_t = now
        grey = small_grey(img)
        thumb = cv2.resize(grey, (32, 24), interpolation=cv2.INTER_AREA).astype(np.int16)
        changed = self._thumb is None or int(np.abs(thumb - self._thumb).max()) > 1
        self._thumb = thumb
        if changed:
            self._same_since = now
        frozen_thumb = self._frozen_thumb
        if self.state == "lost" and self.why == "frozen" and frozen_thumb is not None:
            # Two pictures in a row unlike the frozen one: one odd first frame after a
            # reconnect (decoders do that) is not a live stream yet.
            unlike = int(np.abs(thumb - frozen_thumb).max()) > 1
            self._unlike = self._unlike + 1 if unlike else 0
            if self._unlike >= 2:
                self._frozen_thumb = None
                self._restored()
        elif self.state != "ok":
            self._restored()
        if self.state == "ok" and now - self._same_since >= self.cam.frozen_s:
            self._frozen_thumb, self._unlike = thumb, 0
            self._lost("frozen", f"the same picture for {now - self._same_since:.1f} s")
            return False
        if now - self._tamper_t >= TAMPER_PERIOD_S:
            self._tamper_t = now
            change = self._tamper.feed(grey, now)
            if change is not None:
                log.warning("camera %s %s (%s)", self.cam.id, change, self._tamper.why)
                self.report(change, self._tamper.why)
        return True
