"""The console's web application (Starlette): pages, the live feed, acknowledgements.

The Lookout page's handlers are :mod:`agent.centre.console.lookoutpage`.

Server-rendered HTML with autoescaping Jinja2 templates and one small script; nothing is
loaded from outside the console (no CDN: a control room may have no internet).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import math
import socket
import struct
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from agent.centre.console import views
from agent.centre.console.auth import Auth, BadInput, form
from agent.centre.console.commands import Commander
from agent.centre.console.db import Db, EventFilter
from agent.centre.console.live import Hub
from agent.centre.console.lookoutpage import LookoutPages
from agent.centre.console.users import UsersFile

__all__ = ["ConsoleServer", "ConsoleSettings", "create_app"]

log = logging.getLogger(__name__)
HERE = Path(__file__).parent


@dataclass(frozen=True)
class ConsoleSettings:
    db: str
    users: Path
    commander: Commander
    secret: str
    tiles: str | None = None
    silent_after_s: float = 90.0
    secure_cookies: bool = False
    idle_s: float = 8 * 3600
    absolute_s: float = 12 * 3600


def _alarm_wav() -> bytes:
    """Two short tones (880/660 Hz), generated: no sound file to ship or fetch."""
    rate, out = 16000, bytearray()
    for freq in (880, 660, 880):
        for i in range(int(rate * 0.18)):
            fade = min(1.0, i / 200, (rate * 0.18 - i) / 200)
            out += struct.pack("<h", int(12000 * fade * math.sin(2 * math.pi * freq * i / rate)))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(out))
    return buf.getvalue()


def _time_field(name: str, text: str) -> datetime | None:
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(name, f"expected a time like 2025-05-01T14:30, got {text[:40]!r}") from None
    return t if t.tzinfo else t.astimezone()


class Console:
    """The handlers, with the app's database, live hub, users and command sender."""

    def __init__(self, s: ConsoleSettings) -> None:
        self.s = s
        self.db = Db(s.db)
        self.hub = Hub(s.db)
        self.auth = Auth(UsersFile(s.users), idle_s=s.idle_s, absolute_s=s.absolute_s)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.globals["local_time"] = views.local_time
        self.templates.env.globals["span"] = views.span
        self.wav = _alarm_wav()
        # awaited at shutdown, before the database closes (the lookout page's broadcasts)
        self.on_close: list[Callable[[], Awaitable[None]]] = []

    # ------------------------------------------------------------------ plumbing
    def page(self, request: Request, name: str, status: int = 200, **ctx: Any) -> Response:
        user = self.auth.user(request)
        ctx = {"user": user, "csrf": self.auth.csrf_token(request), "nav": name, **ctx}
        return self.templates.TemplateResponse(request, f"{name}.html", ctx, status_code=status)

    def viewer(self, request: Request) -> Any:
        """The operator, or a redirect to the login page."""
        user = self.auth.user(request)
        if user is None:
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        return user

    async def error(self, request: Request, exc: Exception) -> Response:
        code = exc.status_code if isinstance(exc, HTTPException) else 500
        why = exc.detail if isinstance(exc, HTTPException) else "internal error (logged)"
        if code == 500:
            log.error("console: %s %s failed", request.method, request.url.path, exc_info=exc)
        field = getattr(exc, "field", None) or str(why).split(":")[0]
        wants_json = (
            request.method != "GET" and "text/html" not in request.headers.get("accept", "")
        ) or request.url.path.startswith("/api")
        if wants_json:
            return JSONResponse({"error": why, "field": field}, status_code=code)
        return self.page(request, "error", status=code, code=code, why=why)

    # ------------------------------------------------------------------ login
    async def login_form(self, request: Request) -> Response:
        return self.page(request, "login", next=request.query_params.get("next", "/alarms"))

    async def login(self, request: Request) -> Response:
        fields = await form(request)
        self.auth.check_csrf(request, fields)
        name, nxt = fields.get("name", "").strip(), fields.get("next", "/alarms")
        user = self.auth.users.check(name, fields.get("password", ""))
        if user is None:
            await self.db.audit(name[:64] or "?", None, "login-refused")
            return self.page(request, "login", status=401, next=nxt,
                             failed="name or password: not accepted")  # fmt: skip
        self.auth.login(request, user)
        await self.db.audit(user.name, user.role, "login")
        target = nxt if nxt.startswith("/") and not nxt.startswith("//") else "/alarms"
        return RedirectResponse(target, status_code=303)

    async def logout(self, request: Request) -> Response:
        fields = await form(request)
        user = self.auth.require(request)
        self.auth.check_csrf(request, fields)
        await self.db.audit(user.name, user.role, "logout")
        self.auth.logout(request)
        return RedirectResponse("/login", status_code=303)

    # ------------------------------------------------------------------ alarms
    async def _alarm_rows(self) -> list[dict[str, Any]]:
        return [{**r, "how": views.how_pressed(r)} for r in await self.db.alarms()]

    async def alarms(self, request: Request) -> Response:
        if isinstance(user := self.viewer(request), Response):
            return user
        rows, acks = await asyncio.gather(self._alarm_rows(), self.db.recent_acks())
        return self.page(request, "alarms", alarms=rows, acks=acks)

    async def alarm_rows(self, request: Request) -> Response:
        self.auth.require(request)
        rows, acks = await asyncio.gather(self._alarm_rows(), self.db.recent_acks())
        return self.page(request, "alarm_rows", alarms=rows, acks=acks)

    async def ack(self, request: Request) -> Response:
        fields = await form(request)
        user = self.auth.require(request, act=True)
        self.auth.check_csrf(request, fields)
        event_id = request.path_params["event_id"]
        alarm = await self.db.alarm(event_id)
        if alarm is None:
            raise BadInput("event_id", f"no bell event {event_id[:80]!r}")
        audit = await self.db.audit(user.name, user.role, "bell-ack", dev=alarm["dev"],
                                    target=event_id)  # fmt: skip
        out = await asyncio.to_thread(self.s.commander.ack, alarm["site"], alarm["dev"])
        await self.db.finish(audit, out["res"], out)
        return JSONResponse({**out, "by": user.name})

    # ------------------------------------------------------------------ other pages
    async def poles(self, request: Request) -> Response:
        if isinstance(user := self.viewer(request), Response):
            return user
        poles = [views.pole_view(r, self.s.silent_after_s) for r in await self.db.poles()]
        poles.sort(key=lambda p: ({"offline": 0, "fault": 1, "ok": 2}[p.level], p.site, p.label))
        counts = {lv: sum(p.level == lv for p in poles) for lv in ("ok", "fault", "offline")}
        return self.page(request, "poles", poles=poles, counts=counts,
                         svg=views.map_svg(poles, self.s.tiles))  # fmt: skip

    async def events(self, request: Request) -> Response:
        if isinstance(user := self.viewer(request), Response):
            return user
        q = request.query_params
        kinds = await self.db.kinds()
        kind = q.get("kind") or None
        if kind is not None and kind not in kinds:
            raise BadInput("kind", f"expected one of {', '.join(sorted(kinds))}, got {kind[:40]!r}")
        f = EventFilter(dev=(q.get("pole") or "").strip() or None, kind=kind,
                        since=_time_field("since", q.get("since", "")),
                        until=_time_field("until", q.get("until", "")))  # fmt: skip
        rows = await self.db.events(f)
        return self.page(request, "events", rows=rows, kinds=sorted(kinds), q=q)

    async def snapshot(self, request: Request) -> Response:
        self.auth.require(request)
        jpeg = await self.db.snapshot(request.path_params["event_id"])
        if jpeg is None:
            raise HTTPException(404, "snapshot: none for this event")
        return Response(jpeg, media_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=86400"})  # fmt: skip

    async def live(self, request: Request) -> Response:
        self.auth.require(request)
        until = self.auth.expires(request)
        return StreamingResponse(self.hub.stream(until), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store",
                                          "X-Accel-Buffering": "no"})  # fmt: skip

    async def sound(self, _request: Request) -> Response:
        return Response(self.wav, media_type="audio/wav",
                        headers={"Cache-Control": "max-age=86400"})  # fmt: skip

    async def health(self, _request: Request) -> Response:
        listening = self.hub.listening.is_set()
        return JSONResponse({"live": listening, "browsers": self.hub.browsers},
                            status_code=200 if listening else 503)  # fmt: skip

    async def root(self, _request: Request) -> Response:
        return RedirectResponse("/alarms", status_code=303)

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        await self.db.open()
        task = asyncio.create_task(self.hub.run(), name="console-live")
        try:
            yield
        finally:
            for close in self.on_close:
                await close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.db.close()


def create_app(s: ConsoleSettings) -> Starlette:
    c = Console(s)
    routes = [
        Route("/", c.root),
        Route("/login", c.login_form, methods=["GET"]),
        Route("/login", c.login, methods=["POST"]),
        Route("/logout", c.logout, methods=["POST"]),
        Route("/alarms", c.alarms),
        Route("/alarms/rows", c.alarm_rows),
        Route("/alarms/{event_id}/ack", c.ack, methods=["POST"]),
        Route("/poles", c.poles),
        Route("/events", c.events),
        *LookoutPages(c).routes(),
        Route("/snapshots/{event_id}.jpg", c.snapshot),
        Route("/live", c.live),
        Route("/alarm.wav", c.sound),
        Route("/healthz", c.health),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [
        Middleware(SessionMiddleware, secret_key=s.secret, session_cookie="pole_console",
                   max_age=max(1, round(s.idle_s)), same_site="strict",
                   https_only=s.secure_cookies),
    ]  # fmt: skip
    app = Starlette(routes=routes, middleware=middleware, lifespan=c.lifespan,
                    exception_handlers={HTTPException: c.error, Exception: c.error})  # fmt: skip
    app.state.console = c
    return app


class ConsoleServer(uvicorn.Server):
    """uvicorn's server, whose stop first ends the open pages' live feeds.

    A server-sent events stream never ends by itself, and uvicorn waits for every response
    before it stops (by default for ever), so a console with a browser open would stop only
    at SIGKILL.  Requests in flight (an acknowledge waiting for the pole's answer) still
    finish; the browsers reconnect by themselves once the console is back.
    """

    def __init__(self, config: uvicorn.Config, hub: Hub) -> None:
        super().__init__(config)
        self.hub = hub

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.hub.close()
        await super().shutdown(sockets)
