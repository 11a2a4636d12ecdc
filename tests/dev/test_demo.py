"""The README's first command, minus the set-up: the whole agent on this machine, and the
centre's side (PostgreSQL, ingest, console) wherever it can run here."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from agent.dev.centre_stack import why_no_centre
from tests.centre.consolekit import Http

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = re.compile(r"centre \| console: (http://127\.0\.0\.1:\d+/)  \(log in as (\S+) / (\S+)\)")
PG_DATA = re.compile(r"centre \| PostgreSQL on 127\.0\.0\.1:\d+ \(data in (\S+)\)")


def _no_centre() -> str | None:
    """Why this machine cannot run the centre's side (then only the agent's part is checked)."""
    why = why_no_centre()
    if why:
        print(f"SKIP the console checks: {why}")
    return why


def test_demo_shows_objects_a_rule_and_a_bell(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "demo", "--duration", "30", "--press-after", "6"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert "ONLINE" in out
    assert "BELL ACTIVATED button at pole DEV-1" in out
    assert "object start cam1#" in out
    assert "RULE intrusion walkway-intrusion" in out
    assert "snapshot for " in out
    assert "OFFLINE (stopped)" in out
    assert "0 invalid" in out
    assert "Traceback" not in out + proc.stderr
    why = _no_centre()
    if why:
        assert f"centre | the console is not started: {why}" in out
    else:
        assert CONSOLE.search(out), out[-3000:]
        assert "OFFLINE (stopped)" in out[out.index("centre | console: ") :]


def _processes_under(*folders: Path) -> list[str]:
    """Live processes of this demo: started with a path in ``folders`` on their command line,
    or working in one (the agent, the ingest, the console, the broker; PostgreSQL's server
    and its helpers work in their data folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if any(str(f) in cmd or cwd.startswith(str(f)) for f in folders):
            found.append(f"{entry.name} {cmd} (in {cwd})")
    return found


class LiveFeed(threading.Thread):
    """The console's server-sent events, read as an open browser page would, until it ends."""

    def __init__(self, web: Http) -> None:
        super().__init__(daemon=True)
        self.web = web
        self.text = ""
        self.opened = threading.Event()

    def run(self) -> None:
        try:
            with self.web.opener.open(self.web.base + "/live", timeout=60) as r:
                self.opened.set()
                for raw in r:
                    self.text += raw.decode()
        except OSError:
            pass
        finally:
            self.opened.set()

    def events(self, name: str) -> list[dict[str, object]]:
        out = []
        for block in self.text.split("\n\n"):
            lines = block.splitlines()
            if f"event: {name}" in lines:
                data = "".join(x[6:] for x in lines if x.startswith("data: "))
                out.append(json.loads(data))
        return out


def _use_the_console(match: re.Match[str], folder: Path) -> LiveFeed:
    """Health, log in with the printed login, acknowledge a real bell alarm; the live feed."""
    url, name, password = match.groups()
    with urllib.request.urlopen(url + "healthz", timeout=10) as r:  # noqa: S310
        assert r.status == 200
        assert json.loads(r.read())["live"] is True
    web = Http(url.rstrip("/"))
    assert web.login(name, "not the password") == 401
    assert web.login(name, password) == 200
    feed = LiveFeed(web)
    feed.start()
    assert feed.opened.wait(10)
    sock = str(folder / "var/demo/bell.sock")
    subprocess.run([sys.executable, "-m", "agent", "bell", "press", "--hold", "0.3",
                    "--socket", sock], check=True, capture_output=True)  # fmt: skip
    deadline, found = time.monotonic() + 30, None
    while found is None and time.monotonic() < deadline:
        found = re.search(r'<article class="alarm" id="alarm-[^"]+" data-id="([^"]+)"',
                          web.request("/alarms/rows")[1])  # fmt: skip
        time.sleep(0.3)
    assert found, "the bell press never reached the console's alarm board"
    code, body = web.request(f"/alarms/{found.group(1)}/ack", {},
                             {"X-CSRF-Token": web.csrf("/alarms")})  # fmt: skip
    assert code == 200, body
    answer = json.loads(body)
    assert (answer["res"], answer["by"]) == ("ok", name), answer  # the pole took the signed ack
    return feed


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "sighup"])
def test_every_stop_signal_stops_the_demo_cleanly(tmp_path: Path, how: str) -> None:
    """Ctrl-C at a terminal, systemd's SIGTERM, a closed terminal: the same clean stop."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "agent", "demo", "--press-after", "600"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    assert demo.stdout is not None
    centre = _no_centre() is None
    lines: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = demo.stdout.readline()
        lines.append(line)
        up = any("heartbeat up" in x for x in lines)
        if not line or (up and (not centre or any(CONSOLE.search(x) for x in lines))):
            break
    head = "".join(lines)
    assert any("centre | " in x and "ONLINE" in x for x in lines), head[-3000:]
    assert any(x.startswith("agent  | ") for x in lines), head[-3000:]
    feed, pg_data = None, []
    if centre:
        match, data = CONSOLE.search(head), PG_DATA.search(head)
        assert match, head[-3000:]
        assert data, head[-3000:]
        pg_data = [Path(data.group(1))]
        feed = _use_the_console(match, tmp_path)
    if how == "ctrl-c":
        os.killpg(demo.pid, signal.SIGINT)  # the terminal signals the whole foreground group
    else:
        demo.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGHUP)
    rest, _ = demo.communicate(timeout=60)
    out = "".join(lines) + rest
    assert demo.returncode == 0, out[-3000:]
    assert "OFFLINE (stopped)" in out, out[-3000:]  # the agent went first, the broker last
    assert "OFFLINE (lost)" not in out
    assert "Traceback" not in out
    assert "did not stop" not in out  # nothing needed SIGKILL, an open console page included
    assert "spool empty" in out or "waiting (" in out
    assert (tmp_path / "var/demo/agent.log").read_text().strip()
    assert _processes_under(tmp_path, *pg_data) == []
    if feed is not None:
        # The console was still up when the agent had gone: its page saw the pole stop.
        feed.join(10)
        assert {"dev": "dev-0001", "status": "offline", "why": "stopped"} in feed.events(
            "status"
        ), feed.text[-2000:]
        assert not pg_data[0].exists()


def test_without_the_centre_extra_the_demo_says_why_in_one_sentence() -> None:
    why = why_no_centre(("no_such_centre_module",))
    assert why is not None
    assert "no_such_centre_module missing" in why
    assert "scripts/setup.sh" in why
    assert "\n" not in why
