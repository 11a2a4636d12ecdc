"""The console's Lookout page: describe, send, watch the answers and candidates, cancel.

The form works without JavaScript: **Parse** posts it to ``/lookout/parse``, which runs the
description parser (:mod:`agent.centre.lookout.describe`) and renders the page again with the
slots filled in, as chips, and the words not understood; **Send** posts it to
``/lookout/send``.  Sending, cancelling and find-similar are for operators and admins, need
the session's CSRF token and are audited with the operator's name; the command is signed and
broadcast by :meth:`~agent.centre.console.commands.Commander.broadcast`, in a thread, and each
pole's answer reaches the browsers on the live feed (``answer``; ``sent`` when the collection
is over) and the audit row.  A wrong field renders the form again, as it was, with one
paragraph naming the field (400); scripts (no ``text/html`` in Accept) get JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from agent.centre.console import lookoutdb
from agent.centre.console.auth import BadInput, form_lists
from agent.centre.console.commands import answer_facts
from agent.centre.console.lookoutform import (
    CHOICES,
    TEXT_MAX,
    LookoutForm,
    chips,
    described,
    read_form,
    to_args,
)
from agent.centre.lookout.cli import new_id, wire_args
from agent.centre.lookout.describe import describe
from agent.control.lookout import LookoutCancelArgs
from agent.events import CommandResultEvent

if TYPE_CHECKING:
    from agent.centre.console.app import Console
    from agent.centre.console.users import User

__all__ = ["LookoutPages"]

log = logging.getLogger(__name__)

BROADCASTS = 4  # lookout commands collecting answers at once; more wait their turn


@dataclass(frozen=True)
class _Send:
    """One command of the page: the audit's action, what is sent, where."""

    action: str  # lookout-send, lookout-similar, lookout-cancel
    command: str  # lookout, lookout-cancel
    look: str
    site: str
    dev: str | None  # one pole (its own key), else the whole site (the site key)
    args: dict[str, Any]


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


class LookoutPages:
    """The page's handlers, with the broadcasts still collecting answers (by audit id)."""

    def __init__(self, console: Console) -> None:
        self.c = console
        self.inflight: dict[int, dict[str, Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._pool = ThreadPoolExecutor(max_workers=BROADCASTS, thread_name_prefix="lookout")
        console.on_close.append(self.close)

    async def close(self) -> None:
        """At shutdown: give the broadcasts their answer window, then end the rest as
        ``unknown`` so that no audit row stays "collecting answers" for ever."""
        pending = set(self._tasks)
        if pending:
            await asyncio.wait(pending, timeout=self.c.s.commander.timeout_s + 2)
        for task in pending:
            task.cancel()
        for audit_id in list(self.inflight):
            with contextlib.suppress(Exception):
                await self.c.db.finish(audit_id, "unknown", {"why": "the console stopped"})
        self._pool.shutdown(wait=False, cancel_futures=True)

    def routes(self) -> list[Route]:
        return [
            Route("/lookout", self.page),
            Route("/lookout/candidates", self.grid),
            Route("/lookout/status", self.status),
            Route("/lookout/parse", self.parse, methods=["POST"]),
            Route("/lookout/send", self.send, methods=["POST"]),
            Route("/lookout/cancel", self.cancel, methods=["POST"]),
            Route("/lookout/similar/{cid}", self.similar, methods=["POST"]),
        ]

    # ------------------------------------------------------------------ reading
    def _look(self, request: Request) -> str | None:
        look = request.query_params.get("look", "").strip()
        return look[:40] or None

    async def _status_ctx(self) -> dict[str, Any]:
        active, actions = await asyncio.gather(
            lookoutdb.active(self.c.db), lookoutdb.actions(self.c.db)
        )
        for row in actions:  # answers of a broadcast still collecting them
            if row["result"] is None and row["id"] in self.inflight:
                row["detail"] = {**row["detail"], "answers": dict(self.inflight[row["id"]])}
        return {"active": active, "actions": actions}

    async def _render(self, request: Request, form: LookoutForm, status: int = 200,
                      **ctx: Any) -> Response:  # fmt: skip
        look = self._look(request)
        rows, looks, places, state = await asyncio.gather(
            lookoutdb.candidates(self.c.db, look), lookoutdb.lookout_ids(self.c.db),
            lookoutdb.places(self.c.db), self._status_ctx(),
        )  # fmt: skip
        sites = sorted({p["site"] for p in places})
        if not form.site and len(sites) == 1:
            form = LookoutForm(**{**form.__dict__, "site": sites[0]})
        return self.c.page(request, "lookout", status=status, form=form, rows=rows, look=look,
                           looks=looks, places=places, sites=sites, choices=CHOICES,
                           text_max=TEXT_MAX, sent=request.query_params.get("sent", "")[:40],
                           act=request.query_params.get("act", ""),
                           **state, **ctx)  # fmt: skip

    async def page(self, request: Request) -> Response:
        if isinstance(user := self.c.viewer(request), Response):
            return user
        return await self._render(request, LookoutForm())

    async def grid(self, request: Request) -> Response:
        self.c.auth.require(request)
        rows = await lookoutdb.candidates(self.c.db, self._look(request))
        return self.c.page(request, "lookout_grid", rows=rows, look=self._look(request))

    async def status(self, request: Request) -> Response:
        self.c.auth.require(request)
        return self.c.page(request, "lookout_status", **await self._status_ctx())

    # ------------------------------------------------------------------ acting
    async def _fields(self, request: Request, *, act: bool) -> tuple[User, dict[str, list[str]]]:
        raw = await form_lists(request)
        user = self.c.auth.require(request, act=act)
        self.c.auth.check_csrf(request, {k: v[0] for k, v in raw.items()})
        return user, raw

    async def _refuse(self, request: Request, form: LookoutForm, exc: BadInput) -> Response:
        """The form again as it was, with the message naming the field (or JSON)."""
        if not _wants_html(request):
            raise exc
        return await self._render(request, form, status=400, error=exc.detail,
                                  error_field=exc.field)  # fmt: skip

    async def parse(self, request: Request) -> Response:
        user, raw = await self._fields(request, act=False)
        form = read_form(raw)
        try:
            if not form.text:
                raise BadInput("text", "write a description to parse, e.g. 빨간 상의에 청바지")
            if len(form.text) > TEXT_MAX:
                raise BadInput("text", f"at most {TEXT_MAX} characters, got {len(form.text)}")
        except BadInput as exc:
            return await self._refuse(request, form, exc)
        found = describe(form.text)
        await self.c.db.audit(user.name, user.role, "lookout-parse", detail={
            "text": form.text, "slots": found.slots, "unknown": found.unknown})  # fmt: skip
        parsed = {"slots": found.slots, "chips": chips(found.slots), "unknown": found.unknown,
                  "notes": found.notes}  # fmt: skip
        if not _wants_html(request):
            return JSONResponse(parsed)
        return await self._render(request, described(form, found), parsed=parsed)

    async def _where(self, form: LookoutForm) -> tuple[str, str | None]:
        """The form's site, and the device of its pole when one is named."""
        places = await lookoutdb.places(self.c.db)
        sites = sorted({p["site"] for p in places})
        site = form.site or (sites[0] if len(sites) == 1 else "")
        if site not in sites:
            why = f"no pole of site {site[:40]!r} has reported" if site else "choose a site"
            raise BadInput("site", f"{why}; known: {', '.join(sites) or 'none yet'}")
        if not form.pole:
            return site, None
        for p in places:
            if p["site"] == site and form.pole in (p["dev"], p["pole"]):
                return site, p["dev"]
        raise BadInput("pole", f"no pole {form.pole[:40]!r} in site {site}")

    async def send(self, request: Request) -> Response:
        user, raw = await self._fields(request, act=True)
        form = read_form(raw)
        try:
            site, dev = await self._where(form)
            spec = to_args(form, new_id())
        except BadInput as exc:
            return await self._refuse(request, form, exc)
        args = wire_args(spec)
        detail = {"site": site, "args": args, "text": form.text}
        return await self._act(request, user, _Send("lookout-send", "lookout", spec.id, site,
                                                     dev, args), detail)  # fmt: skip

    async def similar(self, request: Request) -> Response:
        user, _raw = await self._fields(request, act=True)
        cid = request.path_params["cid"]
        row = (
            await lookoutdb.candidate(self.c.db, int(cid))
            if cid.isascii() and cid.isdecimal()
            else None
        )
        if row is None:
            raise BadInput("candidate", f"no candidate {cid[:20]!r}")
        if not row["hist"]:
            raise BadInput("candidate", f"candidate {cid} carries no colour histogram")
        cls = "vehicle" if row["vehicle"] else "person"  # like with like
        spec = to_args(LookoutForm(site=row["site"]), new_id(), hist=row["hist"], cls=cls)
        args = wire_args(spec)
        detail = {"site": row["site"], "args": args, "from": {
            "candidate": row["id"], "event": row["event_id"], "look": row["look"],
            "dev": row["dev"]}}  # fmt: skip
        return await self._act(request, user, _Send("lookout-similar", "lookout", spec.id,
                                                     row["site"], None, args), detail)  # fmt: skip

    async def cancel(self, request: Request) -> Response:
        user, raw = await self._fields(request, act=True)
        look = (raw.get("id") or [""])[0].strip()
        form = read_form({"site": raw.get("site", []), "pole": raw.get("dev", [])})
        try:
            try:
                LookoutCancelArgs(id=look)
            except ValidationError:
                raise BadInput("id", f"{look[:40]!r} is not a lookout id") from None
            site, dev = await self._where(form)
        except BadInput as exc:
            return await self._refuse(request, LookoutForm(), exc)
        send = _Send("lookout-cancel", "lookout-cancel", look, site, dev, {"id": look})
        return await self._act(request, user, send, {"site": site})

    async def _act(self, request: Request, user: User, send: _Send,
                   detail: dict[str, Any]) -> Response:  # fmt: skip
        """Audit, then broadcast in the background; the page follows the answers live."""
        audit_id = await self.c.db.audit(user.name, user.role, send.action, dev=send.dev,
                                         target=send.look, detail=detail)  # fmt: skip
        self.inflight[audit_id] = {}
        task = asyncio.create_task(self._broadcast(audit_id, send))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if _wants_html(request):
            return RedirectResponse(f"/lookout?sent={send.look}&act={send.command}#status",
                                    status_code=303)  # fmt: skip
        return JSONResponse({"id": send.look, "action": send.action, "site": send.site,
                             "dev": send.dev, "by": user.name, "audit": audit_id},
                            status_code=202)  # fmt: skip

    async def _broadcast(self, audit_id: int, send: _Send) -> None:
        loop = asyncio.get_running_loop()

        def on_answer(event: CommandResultEvent) -> None:  # on paho's thread
            loop.call_soon_threadsafe(self._answer, audit_id, send, event)

        out: dict[str, Any] = {"res": "not sent"}
        try:
            # A broadcast holds its thread for the whole answer window: its own small pool,
            # so that lookouts never queue an operator's bell-ack behind them.
            out = await loop.run_in_executor(self._pool, partial(
                self.c.s.commander.broadcast, send.site, send.command, send.args,
                dev=send.dev, on_answer=on_answer))  # fmt: skip
        except Exception as exc:
            log.error("console: %s %s failed", send.action, send.look, exc_info=exc)
            out = {"res": "not sent", "why": f"internal error: {exc}"}
        try:
            await self.c.db.finish(audit_id, out["res"], {k: v for k, v in out.items()
                                                          if k != "res"})  # fmt: skip
        except Exception as exc:
            log.error("console: audit of %s %s not finished", send.action, send.look,
                      exc_info=exc)  # fmt: skip
        finally:
            self.inflight.pop(audit_id, None)
            self.c.hub.publish("sent", json.dumps({"look": send.look, "action": send.action,
                                                   "res": out["res"]}))  # fmt: skip

    def _answer(self, audit_id: int, send: _Send, event: CommandResultEvent) -> None:
        facts = answer_facts(event)
        if audit_id in self.inflight:
            self.inflight[audit_id][event.dev] = facts
        self.c.hub.publish("answer", json.dumps({"look": send.look, "action": send.action,
                                                 "dev": event.dev, **facts}))  # fmt: skip
