"""ONVIF GotoPreset against a small real HTTP server playing the camera."""

from __future__ import annotations

import base64
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agent.bell import BellService
from agent.bell.preset import PresetMover, password_digest
from agent.config import BellConfig, DeviceConfig, PresetConfig
from agent.events import BellEvent, EventStamper, Topics, decode_event
from agent.outbox import Outbox
from agent.spool import Spool

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "ptz": "http://www.onvif.org/ver20/ptz/wsdl",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
}


class Camera:
    """Records GotoPreset requests; answers 200, or 500 when told to fail."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.fail = False
        cam = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                cam.bodies.append(body)
                cam.headers.append(dict(self.headers))
                self.send_response(500 if cam.fail else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/onvif/ptz_service"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, n: int) -> None:
        deadline = time.monotonic() + 10
        while len(self.bodies) < n:
            assert time.monotonic() < deadline, "no GotoPreset arrived"
            time.sleep(0.01)


@pytest.fixture
def camera() -> Iterator[Camera]:
    c = Camera()
    yield c
    c.server.shutdown()
    c.server.server_close()


def preset_cfg(camera: Camera, tmp_path: Path) -> PresetConfig:
    (tmp_path / "onvif-pass").write_text("s3cret<&>\n")
    return PresetConfig(
        camera="cam1",
        onvif_url=camera.url,
        preset="7",
        username="operator",
        password_file=str(tmp_path / "onvif-pass"),
    )


def test_goto_preset_is_a_valid_signed_soap_call(camera: Camera, tmp_path: Path) -> None:
    mover = PresetMover(preset_cfg(camera, tmp_path))
    mover.start()
    try:
        assert mover.request("ev-1")
        camera.wait(1)
    finally:
        mover.stop(5)
    root = ET.fromstring(camera.bodies[0])  # noqa: S314 - our own request
    goto = root.find("s:Body/ptz:GotoPreset", NS)
    assert goto is not None
    assert goto.findtext("ptz:ProfileToken", namespaces=NS) == "Profile_1"
    assert goto.findtext("ptz:PresetToken", namespaces=NS) == "7"
    token = root.find("s:Header/wsse:Security/wsse:UsernameToken", NS)
    assert token is not None
    assert token.findtext("wsse:Username", namespaces=NS) == "operator"
    nonce = base64.b64decode(token.findtext("wsse:Nonce", namespaces=NS) or "")
    created = token.findtext("wsu:Created", namespaces=NS) or ""
    digest = password_digest(nonce, created, "s3cret<&>")
    assert token.findtext("wsse:Password", namespaces=NS) == digest
    assert (
        'action="http://www.onvif.org/ver20/ptz/wsdl/GotoPreset"'
        in camera.headers[0]["Content-Type"]
    )
    assert mover.facts() == {"moves": 1, "failures": 0, "error": None}


def test_a_failing_camera_is_counted_not_fatal(camera: Camera, tmp_path: Path) -> None:
    camera.fail = True
    mover = PresetMover(preset_cfg(camera, tmp_path))
    mover.start()
    try:
        mover.request("ev-1")
        camera.wait(1)
        deadline = time.monotonic() + 5
        while mover.failures == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        mover.stop(5)
    assert mover.failures == 1
    assert "500" in (mover.last_error or "")


def test_activation_asks_for_the_preset_and_says_so(camera: Camera, tmp_path: Path) -> None:
    device = DeviceConfig(id="pole-1", site="s", pole="P-1", latitude=1.0, longitude=2.0)
    spool = Spool(tmp_path / "spool.db")
    topics = Topics("pole", "s", "pole-1")
    cfg = BellConfig(
        backend="simulator",
        simulator={"socket": str(tmp_path / "b.sock")},
        preset=preset_cfg(camera, tmp_path),
    )
    bell = BellService(cfg, device, Outbox(spool, topics, EventStamper("pole-1")))
    bell.start()
    try:
        assert [t.name for t in bell.threads()] == ["bell", "bell-report", "bell-preset"]
        bell.simulate_press(0.05)
        camera.wait(1)
    finally:
        bell.stop(5)
    events = [decode_event(r.payload) for r in spool.next_batch(100) if "/event/" in r.topic]
    activated = [e for e in events if isinstance(e, BellEvent) and e.ev == "activated"]
    assert [e.preset for e in activated] == ["7"]
    spool.close()
