"""The doctor's checks: each returns a :class:`Check` with what it saw and what to do.

They use the agent's own parts (the detector, ``open_source``, the bell backends and
outputs, the MQTT probe), so a pass means the agent will manage too.  Each is bounded in
time; none needs the agent to be running.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from agent.config import AgentConfig, CameraConfig

__all__ = [
    "Check",
    "check_bell",
    "check_broker",
    "check_camera",
    "check_clock",
    "check_disk",
    "check_model",
    "check_outputs",
]

Status = Literal["pass", "fail", "warn", "skip"]
Frame = npt.NDArray[np.uint8]
CAMERA_WINDOW_S = 2.0
CAMERA_TIMEOUT_S = 12.0
BELL_WINDOW_S = 1.0
TIME_ERROR = 5  # adjtimex(2): the kernel clock is not synchronised
SANE_YEAR = 2024
SPOOL_MARGIN = 64 * 1024 * 1024


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def check_model(cfg: AgentConfig, frame: Frame | None) -> Check:
    """The detector loads and runs once; latency of that run."""
    if not cfg.detection.enabled or not cfg.cameras:
        return Check("model", "skip", "detection is off or there is no camera")
    from agent.detect.detector import Detector
    from agent.detect.errors import ModelError

    t0 = time.perf_counter()
    try:
        det = Detector(cfg.detection)
    except ModelError as exc:
        fix = "fix detection.model (a path to an ONNX file, or 'default' after "
        return Check("model", "fail", str(exc), fix + "`pole-agent assets fetch`)")
    load_s = time.perf_counter() - t0
    image = frame if frame is not None else np.zeros((480, 640, 3), np.uint8)
    t1 = time.perf_counter()
    found = len(det(image))
    ms = (time.perf_counter() - t1) * 1000
    what = "a camera frame" if frame is not None else "a blank frame (no camera frame)"
    return Check(
        "model",
        "pass",
        f"{det.path.name} loaded in {load_s:.1f} s; one run on {what}: {ms:.0f} ms, "
        f"{found} detection(s)",
        data={"latency_ms": round(ms, 1), "load_s": round(load_s, 2), "layout": det.layout},
    )


def _read_camera(cam: CameraConfig, out: dict[str, Any]) -> None:
    from agent.video.capture import open_source

    try:
        kind, cap = open_source(cam.source, read_timeout_s=cam.stall_s)
    except OSError as exc:
        out["error"] = str(exc)
        return
    try:
        t0, frames = time.monotonic(), 0
        while time.monotonic() - t0 < CAMERA_WINDOW_S and frames < max(5, 2 * cam.fps):
            ok, img = cap.read()
            if not ok:
                break
            frames += 1
            out["frame"] = img
        out.update(kind=kind, frames=frames, elapsed=time.monotonic() - t0)
    finally:
        cap.release()


def check_camera(cam: CameraConfig) -> tuple[Check, Frame | None]:
    """The camera opens and gives frames at least at the analysed rate; a frame for the model."""
    name = f"camera {cam.id}"
    out: dict[str, Any] = {}
    t = threading.Thread(target=_read_camera, args=(cam, out), name="doctor-camera", daemon=True)
    t.start()
    t.join(CAMERA_TIMEOUT_S)
    fix = f"check cameras[{cam.id}].source, the cable or network, and the camera's power"
    if t.is_alive():
        return Check(
            name, "fail", f"{cam.source}: no answer within {CAMERA_TIMEOUT_S:g} s", fix
        ), None
    if "error" in out:
        return Check(name, "fail", f"cannot open: {out['error']}", fix), None
    frames, elapsed, frame = out["frames"], max(out["elapsed"], 1e-3), out.get("frame")
    if frames == 0 or frame is None:
        return Check(name, "fail", f"{cam.source}: opened, but no frame came", fix), None
    fps = frames / elapsed
    h, w = frame.shape[:2]
    data = {"fps": round(fps, 1), "width": w, "height": h, "kind": out["kind"]}
    detail = f"{out['kind']} {w}x{h}, {frames} frames at {fps:.1f} fps (analysed: {cam.fps:g})"
    if frames < 2 or fps < 0.8 * cam.fps:
        return Check(name, "fail", detail, f"lower cameras[{cam.id}].fps or {fix}", data), frame
    return Check(name, "pass", detail, data=data), frame


def check_bell(cfg: AgentConfig) -> Check:
    """The bell input opens and shows its level (the simulator: its socket can be made)."""
    bell = cfg.bell
    if not bell.enabled:
        return Check("bell input", "skip", "bell disabled in the config")
    if bell.backend == "simulator":
        return _simulator_socket(Path(bell.simulator.socket))
    from agent.bell.inputs import BellInputError, Waker, make_backend

    waker = Waker()
    backend = make_backend(bell, waker)
    try:
        backend.open()
    except BellInputError as exc:
        waker.close()
        fix = "check the wiring and the bell section; stop the agent first if it holds the input"
        return Check("bell input", "fail", str(exc), fix)
    try:
        levels, fault = _watch(backend, BELL_WINDOW_S)
        facts = backend.facts()
    finally:
        backend.close()
        waker.close()
    if fault is not None:
        fix = "check the RS-485 wiring, the module's address and power, and bell.modbus"
        return Check("bell input", "fail", f"{backend.name} opened, but {fault}", fix, facts)
    shown = ", ".join(f"{k}={v:g}" for k, v in levels.items()) or "no reading in 1 s"
    return Check(
        "bell input", "pass", f"{backend.name} open; {shown}", data={"levels": levels, **facts}
    )


def _watch(backend: Any, window: float) -> tuple[dict[str, float], str | None]:
    """Levels seen within ``window`` seconds, or the first communication fault."""
    from agent.bell.inputs import CommChange, Sample

    levels: dict[str, float] = {}
    end = time.monotonic() + window
    while time.monotonic() < end:
        for r in backend.poll(0.1):
            if isinstance(r, CommChange) and not r.ok:
                return levels, r.why
            if isinstance(r, Sample):
                levels[r.inp] = r.value
    return levels, None


def _simulator_socket(path: Path) -> Check:
    if path.exists():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            try:
                s.connect(str(path))
                return Check("bell input", "pass", f"simulator: an agent listens on {path}")
            except OSError:
                pass  # a stale socket file: the agent removes it at start
    parent = path.parent
    if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
        return Check("bell input", "pass", f"simulator: socket {path} can be created")
    return Check(
        "bell input", "fail", f"simulator: cannot create a socket in {parent}",
        "set bell.simulator.socket to a writable folder",
    )  # fmt: skip


def check_outputs(cfg: AgentConfig, pulse: bool) -> Check:
    """Strobe and siren switched on for half a second (only when asked)."""
    if not pulse:
        return Check("outputs", "skip", "not pulsed (add --outputs; strobe and siren will run)")
    from agent.bell.inputs import BellInputError
    from agent.bell.outputs import OutputError, make_outputs

    driver = make_outputs(cfg.bell)
    try:
        driver.open()
        driver.set(True)
        time.sleep(0.5)
        driver.set(False)
    except (OutputError, BellInputError, OSError) as exc:
        fix = "check bell.outputs and the relay wiring; stop the agent first if it holds them"
        return Check("outputs", "fail", f"{driver.name}: {exc}", fix)
    finally:
        driver.close()
    return Check("outputs", "pass", f"{driver.name}: strobe and siren pulsed for 0.5 s")


def check_broker(cfg: AgentConfig) -> Check:
    """TLS, login and ACL, with a round trip through the unit's own command topic."""
    from agent.events import Topics
    from agent.mqtt.probe import probe

    topics = Topics(cfg.mqtt.topic_prefix, cfg.device.site, cfg.device.id)
    tls = " (TLS)" if cfg.mqtt.tls else ""
    # Every broker of mqtt.hosts: the unit fails over between them, so each must work.
    results = [
        (f"{b}{tls}", probe(cfg.mqtt, topics, client_id=f"{cfg.device.id}-doctor", broker=b))
        for b in cfg.mqtt.brokers()
    ]
    failed = [(where, res) for where, res in results if not res.ok]
    if not failed:
        rtts = [res.rtt_ms or 0.0 for _, res in results]
        said = "; ".join(
            f"{w}: round trip {r:.0f} ms" for (w, _), r in zip(results, rtts, strict=True)
        )
        return Check(
            "broker", "pass", f"login ok, command topic round trip: {said}",
            data={"rtt_ms": round(max(rtts), 1)},
        )  # fmt: skip
    where, res = failed[0]
    if len(results) > 1:
        ok = len(results) - len(failed)
        where = f"{where} ({ok} of {len(results)} brokers answered)"
    fixes = {
        "credentials": "store the password again: pole-agent provision --password-file FILE",
        "connect": "check mqtt.host and mqtt.port, the network and the firewall",
        "tls": "check mqtt.tls (CA, certificate and key) and the clock",
        "login": "check mqtt.username and the password; ask the centre to register them",
        "subscribe": "the broker ACL must let the device read its cmd/+ topics",
        "publish": "the broker ACL must let the device write under its own subtree",
        "round_trip": "the broker ACL must let the device write and read its cmd/ topics",
    }
    return Check("broker", "fail", f"{where}: {res.detail}", fixes.get(res.step, ""))


def check_clock() -> Check:
    """NTP synchronisation (timedatectl, else the kernel's adjtimex), and a sane year."""
    year = time.gmtime().tm_year
    if year < SANE_YEAR:
        return Check(
            "clock", "fail", f"the clock says {year}: TLS and event times will be wrong",
            "set the time and enable NTP (timedatectl set-ntp true)",
        )  # fmt: skip
    fix = "enable NTP (timedatectl set-ntp true) and make sure the NTP server is reachable"
    answer, why = _timedatectl()
    if answer == "yes":
        return Check("clock", "pass", "synchronised (timedatectl NTPSynchronized=yes)")
    if answer == "no":
        return Check("clock", "fail", "not synchronised (timedatectl NTPSynchronized=no)", fix)
    state = _adjtimex()
    if state is not None and state != TIME_ERROR:
        return Check("clock", "pass", f"synchronised (kernel clock state {state}; {why})")
    seen = "the kernel reports it unsynchronised" if state == TIME_ERROR else "adjtimex failed"
    return Check("clock", "warn", f"cannot confirm NTP: {why}; {seen}", fix)


def _timedatectl() -> tuple[str | None, str]:
    exe = shutil.which("timedatectl")
    if exe is None:
        return None, "timedatectl is not installed"
    try:
        done = subprocess.run(
            [exe, "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True, text=True, timeout=5, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"timedatectl failed: {exc}"
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["no output"])[0]
        return None, f"timedatectl failed: {first}"
    return done.stdout.strip(), ""


def _adjtimex() -> int | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(512)  # struct timex, zeroed: modes=0 reads only
        return int(libc.adjtimex(buf))
    except (OSError, AttributeError):
        return None


def check_disk(cfg: AgentConfig) -> Check:
    """The spool's file system has room for the whole spool, and the folder is writable."""
    path = Path(cfg.spool.path).absolute()
    base = path.parent
    while not base.exists():
        base = base.parent
    free = shutil.disk_usage(base).free
    need = cfg.spool.max_bytes + SPOOL_MARGIN
    mb = 1024 * 1024
    data = {"free_mb": free // mb, "spool_max_mb": cfg.spool.max_bytes // mb, "path": str(path)}
    detail = f"{free // mb} MB free at {path}; the spool may use {cfg.spool.max_bytes // mb} MB"
    if not os.access(base, os.W_OK):
        return Check("disk", "fail", f"{base} is not writable; {detail}", "fix spool.path", data)
    if free < need:
        return Check("disk", "fail", detail, "free space or lower spool.max_bytes", data)
    return Check("disk", "pass", detail, data=data)
