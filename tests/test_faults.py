"""Faults with real components: a camera that dies mid-run must not touch the bell."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from agent import assets
from agent.dev.broker import LocalBroker
from agent.events import CameraEvent, decode_event
from tests.agentproc import AgentProcess, write_site
from tests.centre.observer import Centre


def test_camera_file_destroyed_mid_run_reports_and_bells_work(
    tmp_path: Path, broker: LocalBroker, centre: Centre
) -> None:
    video = tmp_path / "cam.avi"
    shutil.copyfile(assets.verify("video"), video)
    camera = {
        "id": "cam1",
        "source": str(video),
        "loop": True,
        "fps": 5,
        "stall_s": 3,
        "reconnect_min_s": 0.5,
        "reconnect_max_s": 2,
    }
    agent = AgentProcess(write_site(tmp_path / "unit", broker.port, cameras=[camera]))
    try:
        centre.wait_for(lambda m: m.topic.endswith("/event/object"), timeout=60)
        # The camera's storage fails: the file is cut to nothing under the open reader.
        with video.open("r+b") as f:
            os.ftruncate(f.fileno(), 0)
        lost = centre.wait_for(
            lambda m: m.topic.endswith("/event/camera") and b'"lost"' in m.payload, timeout=60
        )
        event = decode_event(lost[0].payload)
        assert isinstance(event, CameraEvent)
        assert event.cam == "cam1"
        agent.press()
        centre.wait_for(
            lambda m: m.topic.endswith("/event/bell") and b'"activated"' in m.payload, timeout=20
        )
        # The camera comes back: restored is reported after reconnect attempts.
        shutil.copyfile(assets.verify("video"), video)
        centre.wait_for(
            lambda m: m.topic.endswith("/event/camera") and b'"restored"' in m.payload, timeout=60
        )
        # The heartbeat tells the centre about the camera and the vision process.
        beat = centre.wait_for(
            lambda m: m.topic.endswith("/heartbeat") and b'"proc"' in m.payload, timeout=30
        )[0].json()
        assert beat["det"]["proc"]["running"] is True
        assert "cam1" in beat["cams"]
        assert beat["bell"]["state"] == "idle"
    finally:
        assert agent.stop() == 0
    assert "Traceback" not in agent.output()
