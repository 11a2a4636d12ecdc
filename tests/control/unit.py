"""A running agent for command tests: a real broker, `python -m agent run`, a centre client.

The site uses the dev-sim profile with ``cameras: []`` (light), the bell simulator's socket
and the spool in a temporary folder, and device and site command keys.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from agent.bell.cli import send_command as bell_send
from agent.control.auth import make_request
from agent.dev.broker import LocalBroker
from agent.events import CommandResultEvent, Topics, decode_event
from tests.agentproc import AgentProcess
from tests.centre.observer import Centre, Received

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs/contract/cmd_result.schema.json").read_text())
DEVICE_KEY = bytes(range(32))
SITE_KEY = bytes(range(100, 132))
SECRET = "hunter2-not-for-the-centre"
TOPICS = Topics("pole", "lab", "dev-1")


def site_config(folder: Path, port: int, **commands: Any) -> dict[str, Any]:
    (folder / "device.key").write_text(DEVICE_KEY.hex() + "\n")
    (folder / "site.key").write_text(SITE_KEY.hex() + "\n")
    return {
        "profile": "dev-sim",
        "device": {"id": "dev-1", "site": "lab", "pole": "L-1", "latitude": 37.5, "longitude": 127},
        "cameras": [],
        "bell": {
            "simulator": {"socket": str(folder / "bell.sock")},
            "policy": {"lockout_s": 0},
        },
        "mqtt": {"host": "127.0.0.1", "port": port, "username": "dev-1", "password": SECRET},
        "spool": {"path": str(folder / "spool.db")},
        "health": {"heartbeat_s": 600},
        "commands": {
            "key_file": str(folder / "device.key"),
            "site_key_file": str(folder / "site.key"),
            "rate_per_min": 1000,
            "max_bytes": 1024,
            **commands,
        },
    }


class Unit:
    """Broker + agent + centre; ``close()`` stops all three."""

    def __init__(
        self,
        folder: Path,
        *,
        broker: dict[str, Any] | None = None,
        centre: tuple[str, str] | None = None,
        site: dict[str, Any] | None = None,
        **commands: Any,
    ) -> None:
        self.folder = folder
        self.broker = LocalBroker(folder / "broker", persistence=False, **(broker or {})).start()
        self.site = folder / "site.yaml"
        self.config = {**site_config(folder, self.broker.port, **commands), **(site or {})}
        self.write_site(self.config)
        user, password = centre or (None, None)
        self.centre = Centre(self.broker.port, username=user, password=password)
        self.agent = AgentProcess(self.site)
        self.proc = self.agent.proc
        self.log = self.agent.log
        self.centre.wait_for(lambda m: m.topic == TOPICS.status and b"online" in m.payload)
        time.sleep(0.3)  # the link subscribes to cmd/+ right after its birth message

    def write_site(self, data: dict[str, Any]) -> None:
        self.site.write_text(yaml.safe_dump(data, allow_unicode=True))

    def publish(self, name: str, payload: bytes, *, site: bool = False) -> None:
        topic = f"pole/lab/_site/cmd/{name}" if site else TOPICS.cmd(name)
        self.centre.publish(topic, payload)

    def request(
        self, name: str, args: dict[str, Any] | None = None, *, site: bool = False, **over: Any
    ) -> tuple[str, bytes]:
        """A signed payload (device or site key); ``over`` replaces fields after signing."""
        topic = f"pole/lab/_site/cmd/{name}" if site else TOPICS.cmd(name)
        req, payload = make_request(SITE_KEY if site else DEVICE_KEY, topic, args)
        if over:
            body = {**json.loads(payload), **over}
            payload = json.dumps(body).encode()
        return req, payload

    def result(self, req: str, timeout: float = 10.0) -> CommandResultEvent:
        """The cmd_result for ``req``, checked against the JSON Schema and the model."""
        msg = self.centre.wait_for(lambda m: _is_result(m, req), timeout=timeout)[0]
        jsonschema.validate(json.loads(msg.payload), SCHEMA)
        event = decode_event(msg.payload)
        assert isinstance(event, CommandResultEvent)
        return event

    def send(self, name: str, args: dict[str, Any] | None = None, **kw: Any) -> CommandResultEvent:
        site = kw.pop("site", False)
        req, payload = self.request(name, args, site=site, **kw)
        self.publish(name, payload, site=site)
        return self.result(req)

    def press(self, hold_s: float = 0.2) -> None:
        bell_send(str(self.folder / "bell.sock"), f"press {hold_s}")

    def bell_events(self, ev: str, since: float = 0.0) -> list[dict[str, Any]]:
        return [
            m.json()
            for m in self.centre.messages
            if m.topic == TOPICS.event("bell") and m.at >= since and m.json()["ev"] == ev
        ]

    def wait_bell(self, ev: str, since: float, timeout: float = 10.0) -> dict[str, Any]:
        def match(m: Received) -> bool:
            return m.topic == TOPICS.event("bell") and m.at >= since and m.json()["ev"] == ev

        msg: dict[str, Any] = self.centre.wait_for(match, timeout=timeout)[0].json()
        return msg

    def output(self) -> str:
        return self.agent.output()

    def close(self) -> None:
        try:
            self.agent.stop()  # SIGTERM; fails the test if the agent does not stop in time
        finally:
            self.centre.close()
            self.broker.stop()


def _is_result(m: Received, req: str) -> bool:
    if m.topic != TOPICS.cmd_result:
        return False
    try:
        return bool(m.json().get("req") == req)
    except ValueError:
        return False
