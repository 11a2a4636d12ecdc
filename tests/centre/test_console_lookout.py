"""The console's Lookout page against a real PostgreSQL, ingest, mosquitto, agent and Chromium.

The pole that answers is the real agent (``pole-agent run`` on the sample video, lookout on,
with a device key and a site key): it checks each command's signature with
:mod:`agent.control.auth` through its gate, and the tests check the messages seen on the
broker with :func:`agent.control.auth.verify` too.  Candidates reach the database through
the real ingest (a pole's ``event/lookout`` and its thumbnail on ``snapshot/<id>``).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("starlette", reason="the centre extra (starlette) is not installed")

from agent.control.auth import verify  # noqa: E402
from agent.dev.broker import LocalBroker  # noqa: E402
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
from tests.centre.observer import Centre, Received  # noqa: E402
from tests.centre.test_ingest import query, wait_until, worker_thread  # noqa: E402

DEVICE_KEY = bytes(range(32))
SITE_KEY = bytes(range(100, 132))
PASSWORD = "correct horse battery"
HTML = {"Accept": "text/html"}
HIST = base64.b64encode(bytes((i * 7) % 256 for i in range(128))).decode()


class Stack:
    def __init__(self, console: ConsoleProcess, broker: LocalBroker, db: str, folder: Path,
                 centre: Centre) -> None:  # fmt: skip
        self.console, self.broker, self.db, self.folder, self.centre = (
            console, broker, db, folder, centre)  # fmt: skip

    def login(self, name: str) -> Http:
        http = Http(self.console.url)
        assert http.login(name, PASSWORD) == 200
        return http

    def commands(self, name: str) -> list[Received]:
        """Commands seen on the broker (``cmd/<name>``), oldest first."""
        return [m for m in list(self.centre.messages) if m.topic.endswith(f"/cmd/{name}")]

    def audit(self, action: str) -> list[tuple[Any, ...]]:
        return query(self.db, "SELECT operator, role, target, result, detail FROM audit "
                              "WHERE action = %s ORDER BY id", action)  # fmt: skip


@pytest.fixture
def stack(tmp_path: Path, db: str) -> Iterator[Stack]:
    """Broker, ingest (a thread), console (a process); an operator, a viewer; the keys."""
    broker = LocalBroker(tmp_path / "broker").start()
    users = tmp_path / "users.txt"
    add_user_cli(users, "ana", "operator", PASSWORD)
    add_user_cli(users, "vic", "viewer", PASSWORD)
    (tmp_path / "device.key").write_text(DEVICE_KEY.hex() + "\n")
    (tmp_path / "site.key").write_text(SITE_KEY.hex() + "\n")
    centre = Centre(broker.port, "pole/#")
    try:
        with worker_thread(db, broker):
            console = ConsoleProcess(
                db, broker.port, users, "--key-file", str(tmp_path / "device.key"),
                "--site-key-file", str(tmp_path / "site.key"), "--command-timeout", "15",
            )  # fmt: skip
            try:
                yield Stack(console, broker, db, tmp_path, centre)
            finally:
                console.stop()
    finally:
        centre.close()
        broker.stop()


def birth(centre: Centre, dev: str, pole: str) -> EventStamper:
    """A pole's birth through the broker and the ingest: the page then knows its site."""
    st = EventStamper(dev)
    msg = StatusMessage(dev=dev, state="online", why="birth", boot=st.boot_id, ts=now_ms(),
                        site="test-site", pole=pole, place="시험용 폴 2", ver="0.1.0")  # fmt: skip
    centre.publish(Topics("pole", "test-site", dev).status, encode(msg))
    return st


def thumbnail() -> bytes:
    import cv2
    import numpy as np

    img = np.zeros((192, 96, 3), np.uint8)
    img[:96] = (40, 40, 40)  # a dark top
    img[96:] = (160, 90, 30)  # blue trousers
    return bytes(cv2.imencode(".jpg", img)[1].tobytes())


def publish_candidate(centre: Centre, st: EventStamper, look: str, tid: int, score: float) -> str:
    """A candidate as a pole sends it: the event, then its thumbnail; the event id."""
    now = now_ms()
    event = st.lookout(
        look=look, cam="cam1", tid=tid, t0=now - 8000, t1=now - 1000, sc=score, live=True,
        m={"upper": {"m": 1.0, "how": "black"}, "lower": {"m": 0.7, "how": "blue~navy"}},
        seen={"upper": [["black", 0.7]], "lower": [["navy", 0.6]], "size": "adult"},
        hist=HIST, snap=True,
    )  # fmt: skip
    topics = Topics("pole", "test-site", event.dev)
    centre.publish(topics.event("lookout"), encode(event))
    centre.publish(topics.snapshot(event.id), thumbnail())
    return event.id


def signed_by(msg: Received, key: bytes) -> bool:
    body = msg.json()
    return verify(key, msg.topic, body["req"], body["ts"], body["args"], mac=body["mac"])


def sent_id(driver: Any, before: str = "", timeout: float = 20.0) -> str:
    """The lookout id the page says was sent, once it is not ``before`` (a new page)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = str(driver.find_element(By.ID, "sent-id").text)
            if text and text != before:
                return text
        except (NoSuchElementException, StaleElementReferenceException):
            pass
        time.sleep(0.1)
    raise AssertionError(f"the page never said a lookout other than {before!r} was sent")


def error_paragraph(html: str) -> str:
    found = re.search(r'<p class="error" id="lookout-error" role="alert">(.*?)</p>', html, re.S)
    assert found, html[:2000]
    return found.group(1)


def test_the_form_into_arguments_and_a_description_into_the_form() -> None:
    from agent.centre.console.auth import BadInput
    from agent.centre.console.lookoutform import chips, described, read_form, to_args
    from agent.centre.lookout.describe import describe

    text = "빨간 상의에 청바지, 초등학생, 노란 가방"
    form = read_form({"upper": ["Red,navy"], "since": ["90m"], "min_score": ["0.6"],
                      "site": ["Test-Site"], "text": [text]})  # fmt: skip
    spec = to_args(form, "lk-1")
    assert (spec.upper, spec.since_s, spec.min_score) == (["red", "navy"], 5400.0, 0.6)
    found = describe(form.text)
    filled = described(form, found)
    assert (filled.upper, filled.lower, filled.size, filled.items) == (
        ("red",), ("blue",), "child", ("backpack",))  # fmt: skip
    assert (filled.since, filled.min_score, filled.site) == ("90m", "0.6", "Test-Site")
    assert chips(found.slots) == [("upper", "red"), ("lower", "blue"), ("size", "child"),
                                  ("items", "backpack")]  # fmt: skip
    car = to_args(read_form({"vehicle_colour": ["white"], "vehicle_type": ["bus"]}), "lk-2")
    assert (car.cls, car.vehicle_colour, car.vehicle_type) == ("vehicle", ["white"], "bus")
    with pytest.raises(BadInput, match=r"^400: slots: none chosen.*press Parse"):
        to_args(read_form({"text": ["검은 상의"]}), "lk-3")
    with pytest.raises(BadInput, match=r"^400: slots: .*need cls 'person'"):
        to_args(read_form({"vehicle_type": ["bus"], "upper": ["red"]}), "lk-4")
    similar = to_args(read_form({"upper": ["red"]}), "lk-5", hist=HIST)
    assert (similar.hist, similar.upper) == (HIST, [])


def test_the_grid_ranks_by_score_per_lookout_and_filters_by_lookout(stack: Stack) -> None:
    st = birth(stack.centre, "test-0002", "T-2")
    ids = {(look, sc): publish_candidate(stack.centre, st, look, tid, sc)
           for tid, (look, sc) in enumerate([("lk-a", 0.61), ("lk-b", 0.99), ("lk-a", 0.87),
                                             ("lk-a", 0.74)])}  # fmt: skip
    wait_until(lambda: len(query(stack.db, "SELECT 1 FROM snapshots")) == 4)
    vic = stack.login("vic")  # a viewer sees the candidates, without find-similar
    code, html = vic.request("/lookout/candidates?look=lk-a")
    assert code == 200
    shown = re.findall(r'data-event="([^"]+)"', html)
    assert shown == [ids["lk-a", 0.87], ids["lk-a", 0.74], ids["lk-a", 0.61]]
    assert ids["lk-b", 0.99] not in html
    assert "Find similar" not in html
    html = vic.request("/lookout")[1]
    assert re.findall(r'<section class="look" data-look="([^"]+)"', html) == ["lk-a", "lk-b"]
    assert html.count("/snapshots/") == 8  # each thumbnail, linked and shown
    ana = stack.login("ana")
    assert ana.request("/lookout/candidates?look=lk-b")[1].count("Find similar") == 1


def test_a_poles_odd_heartbeat_does_not_break_the_page(stack: Stack) -> None:
    """``det.lookouts`` is the pole's own JSON: a value of the wrong type is skipped by the
    page's query, not cast (which failed the page for every operator)."""
    st = birth(stack.centre, "test-0003", "T-3")
    lookouts = [
        {"id": "lk-good", "left_s": 600, "sent": 2},
        {"id": "lk-odd", "left_s": "soon", "sent": 1.5},
        "not an object",
        {"left_s": 5},
    ]
    beat = st.health(up=5, ver="0.1.0", cfg="c", det={"lookouts": lookouts})
    stack.centre.publish(Topics("pole", "test-site", "test-0003").heartbeat, encode(beat))
    wait_until(lambda: query(stack.db, "SELECT 1 FROM poles WHERE dev = 'test-0003' "
                                       "AND heartbeat IS NOT NULL"))  # fmt: skip
    code, html = stack.login("vic").request("/lookout")
    assert code == 200
    assert 'id="active-lk-good"' in html
    assert 'id="active-lk-odd"' in html  # held by the pole; its odd values left out


def test_a_send_the_console_never_finished_is_not_active_for_ever(stack: Stack) -> None:
    """A console that stopped while collecting answers leaves its audit row without a
    result: such a row is "active" for the answer window only, not for the lookout's 6 h."""
    for look, age in (("lk-fresh", "10 seconds"), ("lk-stale", "3 minutes")):
        query(stack.db, "INSERT INTO audit (at, operator, role, action, target, detail) "
                        "VALUES (now() - %s::interval, 'ana', 'operator', 'lookout-send', %s, "
                        "'{\"site\": \"test-site\", \"args\": {\"for_s\": 21600}}') "
                        "RETURNING id", age, look)  # fmt: skip
    html = stack.login("vic").request("/lookout")[1]
    assert 'id="active-lk-fresh"' in html
    assert 'id="active-lk-stale"' not in html


def test_sending_needs_a_role_a_csrf_token_and_good_fields(stack: Stack) -> None:
    birth(stack.centre, "test-0002", "T-2")
    wait_until(lambda: bool(query(stack.db, "SELECT 1 FROM poles WHERE dev = 'test-0002'")))
    good = {"upper": "black", "site": "test-site", "since": "1h"}

    anon = Http(stack.console.url)
    assert anon.request("/lookout/send", good)[0] == 401
    vic = stack.login("vic")
    page = vic.request("/lookout")[1]
    assert "viewers cannot send lookouts" in page
    assert 'id="send"' not in page
    code, body = vic.request("/lookout/send", {**good, "csrf": vic.csrf("/lookout")})
    assert (code, json.loads(body)["field"]) == (403, "role")
    code, body = vic.request("/lookout/cancel", {"id": "lk-x", "csrf": vic.csrf("/lookout")})
    assert code == 403

    ana = stack.login("ana")
    code, body = ana.request("/lookout/send", good)  # no token
    assert code == 403
    assert "csrf" in body
    code, _ = ana.request("/lookout/send", {**good, "csrf": "forged"})
    assert code == 403
    token = ana.csrf("/lookout")

    # Bad fields: one paragraph naming the field, what was typed kept, nothing sent.
    typed = {**good, "csrf": token, "text": "검은 상의", "min_score": "0.7", "lower": "navy"}
    for fields, name, says in [
        ({"upper": "magenta"}, "upper", "'magenta' is not a colour the poles know"),
        ({"min_score": "lots"}, "min_score", "expected a number from 0 to 1, got 'lots'"),
        ({"min_score": "1.5"}, "min_score", "less than or equal to 1"),
        ({"max_candidates": "3.5"}, "max_candidates", "expected a whole number"),
        ({"since": "yesterday"}, "since", "expected a duration such as 2h"),
        ({"text": "빨간 상의 " * 60}, "text", "at most 300 characters"),
        ({"pole": "T-99"}, "pole", "no pole 'T-99' in site test-site"),
        ({"site": "elsewhere"}, "site", "no pole of site 'elsewhere'"),
    ]:
        code, html = ana.request("/lookout/send", {**typed, **fields}, HTML)
        assert code == 400, (name, html[:500])
        para = error_paragraph(html)
        assert para.startswith(f"{name}: "), para
        assert says in para.replace("&#39;", "'"), para
        assert "Traceback" not in html
        assert 'value="navy" selected' in html  # the operator's choices are still there
        assert 'name="min_score" id="f-min_score" value="' in html
        code, body = ana.request("/lookout/send", {**typed, **fields})  # a script: JSON
        assert (code, json.loads(body)["field"]) == (400, name)
    code, body = ana.request("/lookout/send", {"csrf": token, "site": "test-site"})
    assert (code, json.loads(body)["field"]) == (400, "slots")
    code, body = ana.request("/lookout/parse", {"csrf": token, "text": "x" * 301})
    assert (code, json.loads(body)["field"]) == (400, "text")
    code, body = ana.request("/lookout/similar/999", {"csrf": token})
    assert (code, json.loads(body)["field"]) == (400, "candidate")

    # The operator's lookout is sent; before it, nothing reached the broker.
    code, body = ana.request("/lookout/send", {**good, "csrf": token})
    assert code == 202, body
    sent = json.loads(body)
    assert sent["by"] == "ana"
    stack.centre.on_topic("/_site/cmd/lookout")
    [msg] = stack.commands("lookout")
    assert msg.topic == "pole/test-site/_site/cmd/lookout"
    assert signed_by(msg, SITE_KEY)
    assert msg.json()["args"] == {"id": sent["id"], "upper": ["black"], "since_s": 3600.0}
    assert not stack.commands("lookout-cancel")
    # No pole holds the site key here: nobody answers; the audit says so.
    wait_until(lambda: stack.audit("lookout-send")[0][3] is not None, timeout=15)
    [(who, role, target, result, detail)] = stack.audit("lookout-send")
    assert (who, role, target, result) == ("ana", "operator", sent["id"], "no answer")
    assert detail["site"] == "test-site"

    # One pole only: its own topic, signed with its device key.
    code, body = ana.request("/lookout/send", {**good, "pole": "T-2", "csrf": token})
    assert code == 202, body
    one = json.loads(body)
    assert one["dev"] == "test-0002"
    msg = stack.centre.on_topic("pole/test-site/test-0002/cmd/lookout")[0]
    assert signed_by(msg, DEVICE_KEY)
    assert not signed_by(msg, SITE_KEY)
    assert msg.json()["args"]["id"] == one["id"]


def test_describe_send_watch_find_similar_and_cancel_in_chromium(stack: Stack) -> None:
    why = chromium_missing()
    if why:
        pytest.skip(why)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    folder = stack.folder
    site = write_site(folder / "pole", stack.broker.port, extra={
        "cameras": [{"id": "cam1", "source": "sample", "loop": True, "fps": 2}],
        "lookout": {"refresh_s": 5},
        "commands": {"key_file": str(folder / "device.key"),
                     "site_key_file": str(folder / "site.key")},
    })  # fmt: skip
    agent = AgentProcess(site)
    other = birth(stack.centre, "test-0002", "T-2")  # a second pole: its candidates by hand
    driver = chromium()
    try:
        wait_until(lambda: bool(query(stack.db, "SELECT 1 FROM poles WHERE dev = 'test-0001' "
                                                "AND status = 'online'")), timeout=60)  # fmt: skip
        browser_login(driver, stack.console.url, "ana", PASSWORD)
        driver.get(stack.console.url + "/lookout")
        wait_css(driver, "#live.on")

        # Describe in Korean, parse: chips, the form filled in, the words not understood.
        text = driver.find_element(By.ID, "f-text")
        text.send_keys("빨간 상의에 청바지, 초등학생, 노란 가방, 안경 쓴")
        driver.find_element(By.ID, "parse").click()
        chips = [c.text for c in wait_css(driver, "#chips").find_elements(By.CSS_SELECTOR, ".chip")]
        assert chips == ["upper red", "lower blue", "size child", "items backpack"]
        assert "안경" in driver.find_element(By.ID, "unknown").text
        assert "items have no colour slot" in driver.find_element(By.ID, "parsed").text
        upper = Select(driver.find_element(By.ID, "f-upper"))
        assert [o.text for o in upper.all_selected_options] == ["red"]
        assert driver.find_element(By.ID, "f-text").get_attribute("value").startswith("빨간")

        # The operator changes the slots to what the sample video shows, and sends.
        driver.find_element(By.ID, "f-text").clear()
        driver.find_element(By.ID, "f-text").send_keys("검은 상의")
        driver.find_element(By.ID, "parse").click()
        wait_css(driver, "#chips")
        since = driver.find_element(By.ID, "f-since")
        since.clear()
        since.send_keys("1h")
        driver.find_element(By.ID, "send").click()
        look = sent_id(driver)
        msg = stack.centre.on_topic("/_site/cmd/lookout")[0]
        assert signed_by(msg, SITE_KEY)
        assert msg.json()["args"] == {"id": look, "upper": ["black"], "since_s": 3600.0}
        answer = wait_css(driver, '#actions .answer.ok[data-dev="test-0001"]', timeout=30)
        assert answer.text == "test-0001: accepted"
        # shown as it came, while the console still collects the site's answers (the row
        # may be redrawn meanwhile: look it up again)
        result = driver.find_element(
            By.XPATH,
            '//*[@id="actions"]//*[@data-dev="test-0001"]/ancestor::tr//*[contains(@class,"res")]',
        )
        assert "collecting answers" in result.text

        # A candidate comes through the ingest: the grid shows it without a reload.
        driver.execute_script("window.notReloaded = true")
        event_id = publish_candidate(stack.centre, other, look, tid=7, score=0.93)
        card = wait_css(driver, f'.cand[data-event="{event_id}"]', timeout=20)
        assert driver.execute_script("return window.notReloaded") is True
        assert "0.93" in card.text
        assert "T-2" in card.text
        assert "시험용 폴 2" in card.text
        assert "upper black" in card.text
        assert "lower blue~navy" in card.text
        wait_css(driver, f'.cand[data-event="{event_id}"] img', timeout=20)  # its thumbnail
        section = card.find_element(By.XPATH, "ancestor::section")
        assert section.get_attribute("data-look") == look

        # Find similar: a new lookout carrying that candidate's histogram instead of slots.
        card.find_element(By.CSS_SELECTOR, "button.similar").click()
        similar = sent_id(driver, before=look)
        assert similar != look
        msg = stack.centre.wait_for(lambda m: m.topic.endswith("/_site/cmd/lookout")
                                    and m.json()["args"]["id"] == similar)[0]  # fmt: skip
        assert signed_by(msg, SITE_KEY)
        assert msg.json()["args"]["hist"] == HIST
        assert not {"upper", "lower"} & set(msg.json()["args"])
        wait_css(driver, '#actions tr:first-child .answer.ok[data-dev="test-0001"]', timeout=30)

        # Cancel the first lookout from the active list.
        wait_css(driver, f"#active-{look} button.cancel").click()
        assert sent_id(driver, before=similar) == look
        assert driver.find_element(By.ID, "sent-note").text.startswith("Cancel of lookout")
        msg = stack.centre.on_topic("/_site/cmd/lookout-cancel")[0]
        assert signed_by(msg, SITE_KEY)
        assert msg.json()["args"] == {"id": look}
        wait_css(driver, '#actions tr:first-child .answer.ok[data-dev="test-0001"]', timeout=30)
        wait_until(lambda: not driver.find_elements(By.ID, f"active-{look}"), timeout=20)
        assert driver.find_elements(By.ID, f"active-{similar}")

        # Every action is audited with the operator's name and what the pole answered.
        wait_until(lambda: all(r[3] is not None for r in stack.audit("lookout-cancel")), 15)
        rows = query(stack.db, "SELECT action, operator, target, result FROM audit "
                               "WHERE action LIKE 'lookout-%%' ORDER BY id")  # fmt: skip
        assert [(a, who) for a, who, _, _ in rows] == [
            ("lookout-parse", "ana"), ("lookout-parse", "ana"), ("lookout-send", "ana"),
            ("lookout-similar", "ana"), ("lookout-cancel", "ana"),
        ]  # fmt: skip
        assert [(t, r) for _, _, t, r in rows[2:]] == [(look, "ok"), (similar, "ok"),
                                                        (look, "ok")]  # fmt: skip
        [(_, _, _, _, detail)] = stack.audit("lookout-similar")
        assert detail["from"]["event"] == event_id
        assert detail["answers"]["test-0001"]["res"] == "ok"
    finally:
        driver.quit()
        agent.stop()
