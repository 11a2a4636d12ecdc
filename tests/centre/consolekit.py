"""A running console for tests and screenshots: the real ``pole-agent centre console``
process, an HTTP client with a cookie jar, and headless Chromium through chromium-driver."""

from __future__ import annotations

import http.cookiejar
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from agent.dev.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMEDRIVER = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")


def add_user(users: Path, name: str, role: str, password: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "agent", "centre", "users", "add", name, "--role", role,
         "--users", str(users)],
        input=password + "\n", text=True, check=True, capture_output=True, cwd=ROOT,
    )  # fmt: skip


class ConsoleProcess:
    """``pole-agent centre console`` on a free port; ``url`` once it answers /healthz."""

    def __init__(self, db: str, broker_port: int, users: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = users.parent / f"console-{self.port}.log"
        self._out = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "centre", "console", "--db", db,
             "--broker", f"127.0.0.1:{broker_port}", "--listen", f"127.0.0.1:{self.port}",
             "--users", str(users), *extra],
            cwd=ROOT, stdout=self._out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:  # noqa: S310
                    if json.loads(r.read())["live"]:
                        break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"console did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._out.close()


class Http:
    """Plain HTTP with a cookie jar: what a script (or an attacker) does without a browser."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def request(self, path: str, data: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, str]:  # fmt: skip
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(self.base + path, data=body, headers=headers or {})  # noqa: S310
        try:
            with self.opener.open(req, timeout=20) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def cookie(self, name: str = "pole_console") -> str:
        """The session cookie's value as the jar holds it now (a copy to replay later)."""
        found = [c.value for c in self.jar if c.name == name]
        assert found, f"no {name} cookie in the jar"
        return str(found[0])

    def replay(self, path: str, cookie: str, name: str = "pole_console") -> int:
        """``path`` with a copied cookie, as a script that ignores Max-Age and logouts would."""
        return Http(self.base).request(path, headers={"Cookie": f"{name}={cookie}"})[0]

    def csrf(self, path: str = "/login") -> str:
        found = re.search(r'name="csrf-token" content="([^"]+)"', self.request(path)[1])
        assert found
        return found.group(1)

    def login(self, name: str, password: str) -> int:
        return self.request(
            "/login", {"csrf": self.csrf(), "name": name, "password": password, "next": "/"}
        )[0]


def chromium_missing() -> str | None:
    """Why no browser test can run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the dev extra)"
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        return "Debian's chromium is not installed (scripts/setup.sh installs it)"
    if not any(Path(p).exists() for p in CHROMEDRIVER) and not shutil.which("chromedriver"):
        return "chromium-driver is not installed (scripts/setup.sh installs it)"
    return None


def chromium(width: int = 1500, height: int = 950) -> Any:
    """Headless Chromium through Debian's chromium-driver (never a downloaded driver)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--autoplay-policy=no-user-gesture-required",
                "--lang=ko-KR"):  # fmt: skip
        opts.add_argument(arg)
    opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser") or ""
    driver_path = next((p for p in CHROMEDRIVER if Path(p).exists()), None)
    service = Service(executable_path=driver_path or shutil.which("chromedriver"))
    return webdriver.Chrome(options=opts, service=service)


def browser_login(driver: Any, base: str, name: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(base + "/login")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login").click()
    wait_css(driver, "#live.on")


def wait_css(driver: Any, css: str, timeout: float = 20.0) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, css))
    )
