"""A local MJPEG camera over HTTP (what many pole cameras serve) that can drop and refuse.

Each connection gets ``frames`` changing pictures at ``fps`` and is then closed, as a stream
whose network drops every so often; while ``up`` is false it answers 503, so opening fails.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np

__all__ = ["MjpegCamera"]


class MjpegCamera:
    def __init__(self, frames: int = 4, fps: float = 20.0) -> None:
        self.frames, self.fps = frames, fps
        self.up = True
        self.connections = 0
        self._base = np.random.default_rng(5).integers(0, 255, (120, 160, 3), dtype=np.uint8)
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:  # the name http.server calls
                camera.serve(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/cam.mjpg"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> MjpegCamera:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def serve(self, h: BaseHTTPRequestHandler) -> None:
        if not self.up:
            h.send_error(503)
            return
        self.connections += 1
        h.send_response(200)
        h.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        h.end_headers()
        for i in range(self.frames):
            img = self._base.copy()  # one scene, a square moving: not frozen, not tampered
            x = (self.connections * self.frames + i) * 7 % 120
            img[40:80, x : x + 40] = 255
            jpg = cv2.imencode(".jpg", img)[1].tobytes()
            head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg)
            try:
                h.wfile.write(head + jpg + b"\r\n")
                h.wfile.flush()
            except OSError:
                return
            time.sleep(1 / self.fps)
        h.close_connection = True
