"""The console against the real ingest, a real mosquitto, a real agent and real Chromium."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("starlette", reason="the centre extra (starlette) is not installed")

from agent.centre.console.live import Hub  # noqa: E402
from agent.centre.console.users import UsersFile, add_user  # noqa: E402
from agent.centre.console.views import how_pressed, map_svg, pole_view  # noqa: E402
from agent.dev.broker import LocalBroker  # noqa: E402
from agent.errors import UserError  # noqa: E402
from tests.agentproc import AgentProcess, write_site  # noqa: E402
from tests.centre.consolekit import (  # noqa: E402
    ConsoleProcess,
    Http,
    browser_login,
    chromium,
    chromium_missing,
    wait_css,
)
from tests.centre.consolekit import add_user as add_user_cli  # noqa: E402
from tests.centre.test_ingest import query, wait_until, worker_thread  # noqa: E402

KEY = bytes(range(32))
PASSWORD = "correct horse battery"


def test_users_file_hashes_checks_and_refuses(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    assert add_user(path, "kim", "operator", PASSWORD)
    assert not add_user(path, "kim", "viewer", PASSWORD)
    text = path.read_text()
    assert "kim:viewer:$argon2id$" in text
    assert PASSWORD not in text
    users = UsersFile(path)
    assert users.check("kim", PASSWORD) == users.get("kim")
    assert users.check("kim", "wrong") is None
    assert users.check("lee", PASSWORD) is None
    assert users.get("kim") is not None
    assert not users.get("kim").can_act
    with pytest.raises(UserError, match="role"):
        add_user(path, "lee", "boss", PASSWORD)
    path.write_text("kim:operator:plaintext\n")
    with pytest.raises(UserError, match=r"users\.txt:1"):
        UsersFile(path)


def test_views_infer_the_press_and_judge_silence() -> None:
    t = datetime(2025, 5, 1, tzinfo=UTC)
    assert how_pressed({"ts": t, "presses": 1, "last_press": t}) == "press"
    assert how_pressed({"ts": t, "presses": 1, "last_press": t - timedelta(seconds=3)}) == "hold"
    assert how_pressed({"ts": t, "presses": 2, "last_press": t}) == "double"
    row = {"dev": "d1", "site": "s", "status": "online", "quiet_s": 200.0, "lat": 37.5,
           "lon": 127.0, "spool_state": "degraded", "bell_faults": ["comm", "tamper"]}  # fmt: skip
    view = pole_view(row, silent_after_s=90)
    assert (view.status, view.why, view.level) == ("offline", "silent", "offline")
    assert view.faults == ["comm fault", "tamper", "spool degraded"]
    svg = map_svg([view], tiles="http://tiles/{z}/{x}/{y}.png")
    assert 'id="dot-d1"' in svg
    assert "http://tiles/" in svg


def test_live_feeds_end_when_the_console_stops() -> None:
    """An open page's feed must not hold the server's stop (uvicorn waits for responses)."""

    async def main() -> None:
        hub = Hub("postgresql://unused")
        feed = hub.stream()
        assert await anext(feed) == "retry: 3000\n\n"
        hub.publish("alarm", "{}")
        hub.close()
        assert [x async for x in feed] == ["event: alarm\ndata: {}\n\n"]
        assert [x async for x in hub.stream()] == []  # a reconnect while stopping: at once
        assert hub.browsers == 0

    asyncio.run(asyncio.wait_for(main(), 5))


@pytest.fixture
def stack(tmp_path: Path, db: str) -> Iterator[tuple[ConsoleProcess, LocalBroker, str, Path]]:
    """Broker, ingest (a thread), console (a process) with an operator and a viewer."""
    broker = LocalBroker(tmp_path / "broker").start()
    users = tmp_path / "users.txt"
    add_user_cli(users, "ana", "operator", PASSWORD)
    add_user_cli(users, "vic", "viewer", PASSWORD)
    (tmp_path / "device.key").write_text(KEY.hex() + "\n")
    try:
        with worker_thread(db, broker):
            console = ConsoleProcess(db, broker.port, users, "--key-file",
                                     str(tmp_path / "device.key"))  # fmt: skip
            try:
                yield console, broker, db, tmp_path
            finally:
                console.stop()
    finally:
        broker.stop()


def test_actions_need_a_session_a_csrf_token_and_a_role(
    stack: tuple[ConsoleProcess, LocalBroker, str, Path],
) -> None:
    console, _, db, _ = stack
    anon = Http(console.url)
    code, body = anon.request("/alarms/x/ack", {})
    assert code == 401
    assert "session" in body
    assert anon.request("/alarms")[0] == 200  # redirected to the login page
    assert "Log in" in anon.request("/alarms")[1]
    assert anon.login("ana", "wrong password") == 401
    ana = Http(console.url)
    assert ana.login("ana", PASSWORD) == 200
    code, body = ana.request("/alarms/x/ack", {"csrf": "forged"})
    assert code == 403
    assert "csrf" in body
    code, body = ana.request("/alarms/x/ack", {}, {"X-CSRF-Token": ana.csrf("/alarms")})
    assert code == 400
    assert '"field":"event_id"' in body.replace(" ", "")
    code, body = ana.request("/events?since=yesterday-ish")
    assert code == 400
    assert "since: expected a time" in body
    assert "Traceback" not in body
    vic = Http(console.url)
    assert vic.login("vic", PASSWORD) == 200
    code, body = vic.request("/alarms/x/ack", {}, {"X-CSRF-Token": vic.csrf("/alarms")})
    assert code == 403
    assert "role" in body
    actions = {r[0] for r in query(db, "SELECT action FROM audit")}
    assert actions == {"login", "login-refused"}


def test_bell_to_board_to_ack_and_a_pole_going_offline_in_chromium(
    stack: tuple[ConsoleProcess, LocalBroker, str, Path],
) -> None:
    why = chromium_missing()
    if why:
        print(f"SKIP browser test: {why}")
        pytest.skip(why)
    from selenium.webdriver.common.by import By

    console, broker, db, folder = stack
    site = write_site(folder / "pole", broker.port, extra={
        "commands": {"key_file": str(folder / "device.key")},
        "bell": {"policy": {"lockout_s": 0}},
    })  # fmt: skip
    agent = AgentProcess(site)
    driver = chromium()
    try:
        wait_until(lambda: bool(query(db, "SELECT 1 FROM poles WHERE status = 'online'")))
        browser_login(driver, console.url, "ana", PASSWORD)
        assert driver.find_elements(By.ID, "no-alarms")
        agent.press()
        card = wait_css(driver, ".alarm:not(.test)")
        assert "T-1" in card.text
        assert "시험용 폴" in card.text
        assert "press" in card.text
        assert driver.execute_script("return window.lastAlarm") == card.get_attribute("data-id")
        card.find_element(By.CSS_SELECTOR, "button.ack").click()
        wait_css(driver, "#ack-status.ok")
        assert "bell-ack pole answered: ok" in driver.find_element(By.ID, "ack-status").text
        wait_until(lambda: not driver.find_elements(By.CSS_SELECTOR, ".alarm:not(.test)"))
        wait_until(lambda: "ok" in driver.find_element(By.ID, "acks").text)
        assert query(db, "SELECT operator, result FROM audit WHERE action = 'bell-ack'") == [
            ("ana", "ok")
        ]

        driver.get(console.url + "/poles")
        wait_css(driver, "#live.on")
        row = driver.find_element(By.ID, "pole-test-0001")
        assert row.get_attribute("class") == "ok"
        assert "online" in row.text
        agent.signal(signal.SIGTERM)
        wait_css(driver, "#pole-test-0001.offline")
        assert "offline (stopped)" in driver.find_element(By.ID, "pole-test-0001").text
    finally:
        driver.quit()
        agent.stop()
