"""The console against the real ingest, a real mosquitto, a real agent and real Chromium."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("starlette", reason="the centre extra (starlette) is not installed")

from agent.centre.console.live import Hub  # noqa: E402
from agent.centre.console.users import UsersFile, add_user  # noqa: E402
from agent.centre.console.views import how_pressed, local_time, map_svg, pole_view  # noqa: E402
from agent.dev.broker import LocalBroker  # noqa: E402
from agent.errors import UserError  # noqa: E402
from agent.events import EventStamper, StatusMessage, Topics, encode, now_ms  # noqa: E402
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
from tests.centre.observer import Centre  # noqa: E402
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
    # A pole that beats every 120 s is silent only after three periods, as the ingest says.
    slow = {**row, "heartbeat_period_s": 120.0}
    assert pole_view(slow, silent_after_s=90).status == "online"
    assert pole_view({**slow, "quiet_s": 361.0}, silent_after_s=90).why == "silent"
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


@contextmanager
def running(
    db: str, folder: Path, *extra: str
) -> Iterator[tuple[ConsoleProcess, LocalBroker, str, Path]]:
    """Broker, ingest (a thread), console (a process) with an operator and a viewer."""
    broker = LocalBroker(folder / "broker").start()
    users = folder / "users.txt"
    add_user_cli(users, "ana", "operator", PASSWORD)
    add_user_cli(users, "vic", "viewer", PASSWORD)
    (folder / "device.key").write_text(KEY.hex() + "\n")
    try:
        with worker_thread(db, broker):
            console = ConsoleProcess(db, broker.port, users, "--key-file",
                                     str(folder / "device.key"), *extra)  # fmt: skip
            try:
                yield console, broker, db, folder
            finally:
                console.stop()
    finally:
        broker.stop()


@pytest.fixture
def stack(tmp_path: Path, db: str) -> Iterator[tuple[ConsoleProcess, LocalBroker, str, Path]]:
    with running(db, tmp_path) as s:
        yield s


@dataclass(frozen=True)
class Sent:
    """One event a pole sent, as the events page lists it; ``how`` for an activation."""

    dev: str
    kind: str
    ev: str
    ts: datetime
    how: str = ""
    id: str = ""

    def row(self) -> tuple[str, str, str, str]:
        return (local_time(self.ts), POLES[self.dev], self.kind, self.ev)


POLES = {"test-0001": "T-1", "test-0002": "T-2"}


@dataclass(frozen=True)
class Seeded:
    console: ConsoleProcess
    t0: datetime  # a whole minute, two hours ago
    sent: list[Sent]


def _plan(t0: datetime) -> list[Sent]:
    """Camera events 10 min apart, then bells pressed each way the board tells apart."""
    at = lambda s: t0 + timedelta(seconds=s)  # noqa: E731
    return [
        Sent("test-0001", "camera", "lost", at(0)),
        Sent("test-0002", "camera", "lost", at(600)),
        Sent("test-0001", "camera", "restored", at(1200)),
        Sent("test-0002", "camera", "restored", at(1800)),
        # a press: T-2's press a second before is another pole's
        Sent("test-0002", "bell", "pressed", at(2399)),
        Sent("test-0001", "bell", "pressed", at(2400)),
        Sent("test-0001", "bell", "activated", at(2400), how="press"),
        # a hold: activated 3 s after the press
        Sent("test-0002", "bell", "pressed", at(2997)),
        Sent("test-0002", "bell", "activated", at(3000), how="hold"),
        # a double: a second press 1.5 s after the first
        Sent("test-0001", "bell", "pressed", at(3598.5)),
        Sent("test-0001", "bell", "pressed", at(3600)),
        Sent("test-0001", "bell", "activated", at(3600), how="double"),
        # two single presses 4 s apart (immediate mode, short lockout): each a press
        Sent("test-0002", "bell", "pressed", at(4196)),
        Sent("test-0002", "bell", "activated", at(4196), how="press"),
        Sent("test-0002", "bell", "pressed", at(4200)),
        Sent("test-0002", "bell", "activated", at(4200), how="press"),
        # a long hold (hold_s may be up to 60 s): pressed 45 s before its activation
        Sent("test-0001", "bell", "pressed", at(4755)),
        Sent("test-0001", "bell", "activated", at(4800), how="hold"),
    ]


@pytest.fixture(scope="module")
def seeded(pg_server: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """A console over events two poles sent through the broker and the real ingest."""
    from agent.centre.ingest.localdb import LocalPostgres
    from agent.centre.ingest.migrate import migrate

    assert isinstance(pg_server, LocalPostgres)
    db = pg_server.create_database("console_seeded")
    migrate(db)
    with running(db, tmp_path_factory.mktemp("seeded")) as (console, broker, _, _):
        centre = Centre(broker.port, "pole/#")
        try:
            stampers = {dev: EventStamper(dev) for dev in POLES}
            for dev, st in stampers.items():
                birth = StatusMessage(dev=dev, state="online", why="birth", boot=st.boot_id,
                                      ts=now_ms(), site="test-site", pole=POLES[dev],
                                      place="시험용 폴", ver="0.1.0")  # fmt: skip
                centre.publish(Topics("pole", "test-site", dev).status, encode(birth))
            t0 = datetime.now().astimezone().replace(second=0, microsecond=0) - timedelta(hours=2)
            sent = []
            for e in _plan(t0):
                st, ms = stampers[e.dev], int(e.ts.timestamp() * 1000)
                event = (st.bell(ev=e.ev, ts=ms) if e.kind == "bell"
                         else st.camera(ev=e.ev, cam="cam1", ts=ms))  # fmt: skip
                centre.publish(Topics("pole", "test-site", e.dev).event(e.kind), encode(event))
                sent.append(replace(e, id=event.id))
            wait_until(lambda: query(db, "SELECT count(*) FROM events")[0][0] == len(sent))
            wait_until(lambda: query(db, "SELECT count(*) FROM poles")[0][0] == len(POLES))
            yield Seeded(console, t0, sent)
        finally:
            centre.close()


def _event_rows(html: str) -> list[tuple[str, ...]]:
    """The events table's rows as (time, pole, kind, what)."""
    return re.findall(r'<tr class="[^"]*"><td>([^<]*)</td><td>([^<]*)</td><td>[^<]*</td>'
                      r"<td>([^<]*)</td>\s*<td>([^<]*)", html)  # fmt: skip


def test_the_events_page_filters_by_pole_kind_and_time(seeded: Seeded) -> None:
    vic = Http(seeded.console.url)
    assert vic.login("vic", PASSWORD) == 200

    def shown(**q: str) -> list[tuple[str, ...]]:
        code, html = vic.request("/events?" + urlencode(q))
        assert code == 200, html[:2000]
        return _event_rows(html)

    def sent(pred: Callable[[Sent], bool] = lambda e: True) -> list[tuple[str, ...]]:
        return [e.row() for e in sorted(seeded.sent, key=lambda e: e.ts, reverse=True) if pred(e)]

    everything = shown()
    assert sorted(everything) == sorted(sent())  # newest first; a press and its activation
    assert [r[0] for r in everything] == sorted((r[0] for r in everything), reverse=True)
    assert sorted(shown(pole="T-1")) == sorted(sent(lambda e: e.dev == "test-0001"))
    assert sorted(shown(pole=" test-0002 ")) == sorted(sent(lambda e: e.dev == "test-0002"))
    assert sorted(shown(kind="camera")) == sorted(sent(lambda e: e.kind == "camera"))
    assert sorted(shown(pole="T-2", kind="bell")) == sorted(
        sent(lambda e: e.dev == "test-0002" and e.kind == "bell"))  # fmt: skip
    # the form's local minutes (the browser's datetime-local), or a script's ISO time with its
    # offset; from is inclusive, to is exclusive
    since = (seeded.t0 + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M")
    until = (seeded.t0 + timedelta(minutes=30)).isoformat()
    window = sent(lambda e: seeded.t0 + timedelta(minutes=10) <= e.ts
                  < seeded.t0 + timedelta(minutes=30))  # fmt: skip
    assert len(window) == 2
    assert sorted(shown(since=since, until=until)) == sorted(window)
    assert sorted(shown(since=since, until=until, pole="T-1")) == [
        sent(lambda e: e.ts == seeded.t0 + timedelta(minutes=20))[0]]  # fmt: skip
    late = sent(lambda e: e.ts >= seeded.t0 + timedelta(minutes=65))
    assert sorted(shown(since=(seeded.t0 + timedelta(minutes=65)).isoformat())) == sorted(late)
    assert shown(pole="T-9") == []
    code, body = vic.request("/events?kind=nonsense")
    assert code == 400
    assert "kind: expected one of bell, camera" in body


def test_the_board_says_how_each_bell_was_pressed(seeded: Seeded) -> None:
    """The board's query counts the pole's own presses since its previous activation."""
    vic = Http(seeded.console.url)
    assert vic.login("vic", PASSWORD) == 200
    code, html = vic.request("/alarms/rows")
    assert code == 200
    board = dict(re.findall(r'<article class="alarm" id="alarm-([^"]+)".*?class="tag how">'
                            r"([^<]*)</span>", html, re.S))  # fmt: skip
    assert board == {e.id: e.how for e in seeded.sent if e.how}


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


@pytest.mark.slow
def test_a_session_ends_at_logout_when_idle_and_at_its_absolute_limit(
    tmp_path: Path, db: str
) -> None:
    """A copied cookie is replayed too: a script ignores the cookie's Max-Age and a logout's
    deletion, so the console itself must refuse it.  Idle limit 2 s, absolute limit 6 s."""
    idle_s, absolute_s = 2, 6
    with running(db, tmp_path, "--session-hours", str(idle_s / 3600),
                 "--session-max-hours", str(absolute_s / 3600)) as (console, *_):  # fmt: skip
        gone = Http(console.url)
        assert gone.login("ana", PASSWORD) == 200
        assert gone.request("/alarms/rows")[0] == 200
        copied = gone.cookie()
        assert gone.request("/logout", {"csrf": gone.csrf("/alarms")})[0] == 200
        assert gone.request("/alarms/rows")[0] == 401
        assert "Log in" in gone.request("/alarms")[1]
        assert gone.replay("/alarms/rows", copied) == 401
        assert [r[0] for r in query(db, "SELECT action FROM audit ORDER BY id")] == [
            "login", "logout"]  # fmt: skip

        # The live feed of a session ends when the session would (idle here), and says so:
        # a wall board must not go on chiming at alarms it can no longer fetch.
        feed = Http(console.url)
        assert feed.login("vic", PASSWORD) == 200
        opened = time.time()
        code, events = feed.request("/live")  # read until the console ends the feed
        assert code == 200
        assert events.endswith("event: session\ndata: ended\n\n"), events[-200:]
        assert time.time() - opened < idle_s + 2

        idle = Http(console.url)  # logs in, then does nothing
        assert idle.login("vic", PASSWORD) == 200
        idle_cookie, idle_since = idle.cookie(), time.time()
        busy = Http(console.url)  # logs in, then asks every 0.3 s
        busy_login = time.time()
        assert busy.login("ana", PASSWORD) == 200
        while time.time() < idle_since + idle_s + 1:  # past the idle limit, whole seconds
            assert busy.request("/alarms/rows")[0] == 200, "refused while in use"
            time.sleep(0.3)
        # idle for 3 s, 2 s under its absolute limit (busy's, logged in after, still works)
        assert idle.replay("/alarms/rows", idle_cookie) == 401
        assert idle.request("/alarms/rows")[0] == 401
        assert "Log in" in idle.request("/alarms")[1]
        while (code := busy.request("/alarms/rows")[0]) == 200:
            assert time.time() < busy_login + absolute_s + 2, "never refused"
            time.sleep(0.3)
        assert code == 401
        assert time.time() > busy_login + absolute_s - 1  # iat is whole seconds
        assert busy.replay("/alarms/rows", busy.cookie()) == 401  # not just the jar

        # In the browser: a board left open goes to the login page, saying why.
        if (why := chromium_missing()) is not None:
            pytest.skip(f"the browser part: {why}")
        from selenium.webdriver.support.ui import WebDriverWait

        driver = chromium()
        try:
            browser_login(driver, console.url, "vic", PASSWORD)
            driver.get(console.url + "/alarms")
            wait_css(driver, "#live.on")
            wait_css(driver, "#session-ended", timeout=idle_s + 10)
            WebDriverWait(driver, 10).until(lambda d: "/login" in d.current_url)
            assert "next=%2Falarms" in driver.current_url
        finally:
            driver.quit()


# Records each play() of an audio element (the board's chime) and whether it started.
CHIME_SPY = """
window.chimes = [];
const play = HTMLMediaElement.prototype.play;
HTMLMediaElement.prototype.play = function () {
  const c = { src: this.currentSrc || this.src, ok: null };
  window.chimes.push(c);
  const started = play.call(this);
  started.then(() => { c.ok = true; }, e => { c.ok = String(e); });
  return started;
};
"""


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
        driver.execute_script(CHIME_SPY)
        flash = driver.find_element(By.ID, "flash")
        assert not flash.is_displayed()
        agent.press()
        wait_until(flash.is_displayed)  # for 3 s from the alarm's notice
        card = wait_css(driver, ".alarm:not(.test)")
        assert "T-1" in card.text
        assert "시험용 폴" in card.text
        # how it was pressed: test_the_board_says_how_each_bell_was_pressed
        assert driver.execute_script("return window.lastAlarm") == card.get_attribute("data-id")
        assert driver.title.startswith("● ALARM")
        wait_until(lambda: driver.execute_script("return window.chimes.every(c => c.ok !== null)"))
        assert driver.execute_script("return window.chimes") == [
            {"src": console.url + "/alarm.wav", "ok": True}]  # fmt: skip
        assert driver.find_element(By.ID, "sound").text == "sound: on"  # not "click to allow"
        card.find_element(By.CSS_SELECTOR, "button.ack").click()
        wait_css(driver, "#ack-status.ok")
        assert "bell-ack pole answered: ok" in driver.find_element(By.ID, "ack-status").text
        wait_until(lambda: not driver.find_elements(By.CSS_SELECTOR, ".alarm:not(.test)"))
        wait_until(lambda: "ok" in driver.find_element(By.ID, "acks").text)
        wait_until(lambda: not flash.is_displayed(), timeout=5)
        assert len(driver.execute_script("return window.chimes")) == 1
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
