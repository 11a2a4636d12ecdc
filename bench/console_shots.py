"""Screenshots of every console page into docs/console/, from a seeded database.

    python -m bench.console_shots [--out docs/console]

A private PostgreSQL is migrated and filled through the ingest's own parser and store (the
same rows a real fleet makes: births, heartbeats, states, alarms with snapshots from the
sample video, objects, lookout candidates); the real console serves it and headless Chromium
(Debian's chromium and chromium-driver) takes the pictures.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import psycopg

from agent.assets import path_of
from agent.centre.ingest.localdb import LocalPostgres
from agent.centre.ingest.migrate import migrate
from agent.centre.ingest.records import Record, Reject, parse
from agent.centre.ingest.store import Store
from agent.events import EventStamper, StateMessage, StatusMessage, Topics, encode, now_ms
from tests.centre.consolekit import ConsoleProcess, add_user, browser_login, chromium, wait_css

ROOT = Path(__file__).resolve().parent.parent
PLACES = [
    ("강남역 11번 출구", "서울특별시 강남구 강남대로 396"),
    ("역삼동 늘봄공원 입구", "서울특별시 강남구 역삼로 180"),
    ("선릉로 어린이공원", "서울특별시 강남구 선릉로 428"),
    ("논현초등학교 앞", "서울특별시 강남구 학동로 128"),
    ("대치동 은마사거리", "서울특별시 강남구 삼성로 212"),
    ("삼성동 봉은사역 2번 출구", "서울특별시 강남구 봉은사로 601"),
    ("개포동 달터공원 산책로", "서울특별시 강남구 개포로 310"),
    ("청담동 공영주차장", "서울특별시 강남구 압구정로 461"),
]


def sampled(step: int) -> Iterator[Any]:
    """Every ``step``-th frame of the sample video (OpenCV's pedestrians)."""
    cap = cv2.VideoCapture(str(path_of("video")))
    try:
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            i += 1
            if i % step == 0:
                yield frame
    finally:
        cap.release()


def frames(n: int) -> list[bytes]:
    """JPEGs from the sample video, as poles send with an alarm."""
    pics = (cv2.imencode(".jpg", cv2.resize(f, (640, 360)))[1].tobytes() for f in sampled(60))
    return list(itertools.islice(pics, n))


def seed(url: str, poles: int = 40) -> None:
    msgs: list[tuple[str, bytes]] = []
    pics = frames(8)
    now = now_ms()
    for i in range(poles):
        dev, site = f"gn-{i + 1:04d}", "gangnam"
        t, st = Topics("pole", site, dev), EventStamper(dev)
        place, addr = PLACES[i % len(PLACES)]
        lat, lon = 37.478 + (i % 8) * 0.0062 + (i // 8) * 0.0011, 127.02 + (i // 8) * 0.0105
        birth = StatusMessage(dev=dev, state="online", why="birth", boot=st.boot_id, ts=now - 9e5,
                              site=site, pole=f"GN-{i + 1:03d}", place=place, addr=addr, lat=lat,
                              lon=lon, ver="0.1.0", broker="mqtt-a.centre:1883")  # fmt: skip
        msgs.append((t.status, encode(birth)))
        faults = ["comm"] if i == 5 else ["tamper"] if i == 9 else []
        cams = {"cam1": {"state": "lost" if i == 12 else "ok",
                         "tampered": "covered" if i == 9 else None}}  # fmt: skip
        spool = {"state": "degraded" if i == 17 else "ok",
                 "depth": {"object": 42} if i == 17 else {}}  # fmt: skip
        det = {"lookouts": [{"id": "lk-missing-child", "left_s": 20400, "sent": i % 3}]}
        beat = st.health(up=86400, ver="0.1.0", cfg="3f2a9c", cams=cams, spool=spool, det=det,
                         bell={"state": "fault" if faults else "idle", "faults": faults},
                         link={"state": "up", "broker": "mqtt-a.centre:1883"})  # fmt: skip
        msgs.append((t.heartbeat, encode(beat)))
        state = StateMessage(dev=dev, ts=now, state="fault" if faults else "idle", since=now,
                             detail={"faults": faults})  # fmt: skip
        msgs.append((f"{t.base}/state/bell", encode(state)))
        for k in range(3):
            obj = st.object(ev="start", cam="cam1", tid=k, cls="person", sc=0.81,
                            box=(0.4, 0.2, 0.5, 0.6), zones=["walkway"])  # fmt: skip
            msgs.append((t.event("object"), encode(obj)))
        if i in (3, 7, 11, 20):
            loc = {"pole": f"GN-{i + 1:03d}", "lat": lat, "lon": lon}
            presses = 2 if i == 11 else 1
            msgs += [(t.event("bell"), encode(st.bell(ev="pressed", loc=loc)))
                     for _ in range(presses)]  # fmt: skip
            extra: dict[str, Any] = {"test": True} if i == 20 else {"preset": "crosswalk"}
            alarm = st.bell(ev="activated", loc=loc, snap=True, **extra)
            if i == 7:  # a duress hold: activated 3 s after the press
                alarm = alarm.model_copy(update={"ts": alarm.ts + 3000})
            msgs.append((t.event("bell"), encode(alarm)))
            msgs.append((t.snapshot(alarm.id), pics[i % len(pics)]))
        if i in (30, 31):
            off = StatusMessage(dev=dev, state="offline", why="lost" if i == 30 else "stopped",
                                boot=st.boot_id, ts=now)  # fmt: skip
            msgs.append((t.status, encode(off)))
    records: list[Record] = []
    for topic, payload in msgs + candidates(now):
        rec = parse("pole", topic, payload)
        assert not isinstance(rec, Reject), rec
        records.append(rec)
    store = Store(url)
    store.write(records)
    store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE poles SET last_seen = now() - interval '4 minutes' "
                     "WHERE dev = 'gn-0034'")  # fmt: skip
        conn.execute(
            "INSERT INTO audit (operator, role, action, target, result, detail, at, done_at) "
            "VALUES ('operator1', 'operator', 'lookout-send', 'lk-missing-child', 'ok', %s, "
            "now() - interval '20 minutes', now() - interval '20 minutes')",
            (json.dumps({"site": "gangnam", "args": {"id": "lk-missing-child",
                         "upper": ["black"], "lower": ["blue"], "for_s": 21600},
                         "answers": {f"gn-{i + 1:04d}": {"res": "ok"} for i in range(3)}}),),
        )  # fmt: skip


def people(n: int) -> list[tuple[bytes, str]]:
    """Body thumbnails (96 x 192) of people in the sample video, found by the agent's own
    detector, with the colour judge's histogram of each (base64 of 128 bytes), as a pole
    would send them."""
    from agent.config import DetectionConfig
    from agent.detect.detector import Detector
    from agent.lookout.colour import judge

    detector = Detector(DetectionConfig())
    out: list[tuple[bytes, str]] = []
    for frame in sampled(40):
        if len(out) >= n:
            break
        found = detector(frame)
        for box, cid in zip(found.xyxy.tolist(), found.class_ids.tolist(), strict=True):
            x1, y1, x2, y2 = box
            judged = judge(frame, (x1, y1, x2, y2))
            if detector.names[cid] != "person" or y2 - y1 < 80 or judged is None:
                continue
            crop = cv2.resize(frame[int(y1) : int(y2), int(x1) : int(x2)], (96, 192))
            jpeg = cv2.imencode(".jpg", crop)[1].tobytes()
            out.append((jpeg, base64.b64encode(judged.histogram.tobytes()).decode()))
            break
    return out


def candidates(now: int) -> list[tuple[str, bytes]]:
    """Two lookouts' candidates from eight poles, with thumbnails, as poles send them."""
    msgs: list[tuple[str, bytes]] = []
    asked = [("lk-missing-child", {"upper": "black", "lower": "blue"}),
             ("lk-20250501-1412-a3f0", {"histogram": "similar"})]  # fmt: skip
    for k, (jpeg, hist) in enumerate(people(10)):
        look, slots = asked[k % 2]
        dev = f"gn-{(k * 3) % 40 + 1:04d}"
        t, st = Topics("pole", "gangnam", dev), EventStamper(dev)
        score = round(0.95 - k * 0.045, 3)
        m = {s: {"m": round(min(1.0, score + 0.05), 2), "how": c if k % 3 or k % 2 else f"{c}~navy"}
             for s, c in slots.items()}  # fmt: skip
        event = st.lookout(look=look, cam="cam1", tid=10 + k, t0=now - 6e5 + k * 3e4,
                           t1=now - 5e5 + k * 3e4, sc=score, live=k > 3, m=m,
                           seen={"size": "adult"}, hist=hist, snap=True)  # fmt: skip
        msgs += [(t.event("lookout"), encode(event)), (t.snapshot(event.id), jpeg)]
    return msgs


def shoot(base: str, out: Path, pages: list[str]) -> None:
    from selenium.webdriver.common.by import By

    driver = chromium(1440, 900)
    try:
        driver.get(base + "/login")
        driver.save_screenshot(str(out / "login.png"))
        browser_login(driver, base, "operator1", "screenshot-pass")
        for page in pages:
            driver.get(f"{base}/{page}")
            wait_css(driver, "#live.on")
            if page == "lookout":  # a description parsed into chips, the candidates below
                driver.set_window_size(1440, 1700)
                driver.find_element(By.ID, "f-text").send_keys(
                    "빨간 상의에 청바지, 초등학생, 노란 가방, 안경 쓴"
                )
                driver.find_element(By.ID, "parse").click()
                wait_css(driver, "#chips")
            time.sleep(0.5)
            driver.save_screenshot(str(out / f"{page}.png"))
            print(f"wrote {out / (page + '.png')}")
    finally:
        driver.quit()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs/console")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="console-shots-"))
    pg = LocalPostgres().start()
    console: Any = None
    try:
        url = pg.create_database("shots")
        migrate(url)
        seed(url)
        add_user(work / "users.txt", "operator1", "operator", "screenshot-pass")
        console = ConsoleProcess(url, 1, work / "users.txt")
        shoot(console.url, args.out, ["alarms", "poles", "events", "lookout"])
    finally:
        if console is not None:
            console.stop()
        pg.stop()


if __name__ == "__main__":
    main()
