"""Sessions, CSRF and roles for the console's requests.

The session is Starlette's signed cookie (itsdangerous, HttpOnly, SameSite=Strict, Secure
behind TLS): it expires after ``idle_s`` without a request, and after ``absolute_s`` from the
login whatever happens.  The cookie's signature carries the time it was signed, which the
middleware checks against ``idle_s``; a request of a logged-in operator re-signs it (at most
once a second), so the limit counts from the last request, not from the login.  It holds the
operator's name, a CSRF token and a session id; logging out revokes the id in this process
(a copied cookie is refused too, until its absolute limit), and the role is read from the
users file on every request, so removing an operator ends their sessions.  Every POST must
carry the session's token, in the form field ``csrf`` or the header ``X-CSRF-Token``.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from starlette.exceptions import HTTPException
from starlette.requests import Request

from agent.centre.console.users import User, UsersFile

__all__ = ["Auth", "BadInput", "form", "form_lists"]

FORM_MAX = 64 * 1024


class BadInput(HTTPException):
    """A request's field is wrong: 400 naming the field."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(400, f"{field}: {why}")
        self.field = field


async def form(request: Request) -> dict[str, str]:
    """A urlencoded body's fields (first value of each); an empty body is no fields."""
    return {k: v[0] for k, v in (await form_lists(request)).items()}


async def form_lists(request: Request) -> dict[str, list[str]]:
    """A urlencoded body's fields, every value of each (a multi-select repeats its name)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    body = await request.body()
    if len(body) > FORM_MAX:
        raise HTTPException(413, f"body: at most {FORM_MAX} bytes")
    if body and kind != "application/x-www-form-urlencoded":
        raise BadInput("content-type", f"expected application/x-www-form-urlencoded, got {kind!r}")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise BadInput("body", "not UTF-8") from None
    return fields


@dataclass
class Auth:
    users: UsersFile
    idle_s: float = 8 * 3600
    absolute_s: float = 12 * 3600
    # session ids logged out: when each would have reached its absolute limit anyway
    revoked: dict[str, float] = field(default_factory=dict)

    def login(self, request: Request, user: User) -> None:
        now = int(time.time())
        request.session.clear()
        request.session.update({"user": user.name, "csrf": secrets.token_urlsafe(32),
                                "sid": secrets.token_urlsafe(16), "iat": now,
                                "seen": now})  # fmt: skip

    def logout(self, request: Request) -> None:
        """End the session: the cookie is cleared and its id refused from now on."""
        now, s = time.time(), request.session
        self.revoked = {k: until for k, until in self.revoked.items() if until > now}
        if isinstance(sid := s.get("sid"), str):
            self.revoked[sid] = float(s.get("iat", now)) + self.absolute_s
        s.clear()

    def user(self, request: Request) -> User | None:
        """The session's operator, or None (no session, expired, logged out, or removed from
        the file).  A valid session's cookie is re-signed: its idle limit starts again."""
        s, now = request.session, time.time()
        name, iat = s.get("user"), s.get("iat", 0)
        if not isinstance(name, str) or now - float(iat) > self.absolute_s:
            return None
        if s.get("sid") in self.revoked:
            return None
        user = self.users.get(name)
        if user is not None and s.get("seen") != int(now):
            s["seen"] = int(now)  # modified: the middleware signs the cookie again, now
        return user

    def expires(self, request: Request) -> float:
        """When the session ends if nothing else is asked (``time.time()``): its idle limit
        from the last request, or its absolute limit, whichever is first."""
        s = request.session
        # "seen" is whole seconds: the cookie was signed up to a second after it.
        idle_end = float(s.get("seen", 0)) + 1 + self.idle_s
        return min(idle_end, float(s.get("iat", 0)) + self.absolute_s)

    @staticmethod
    def csrf_token(request: Request) -> str:
        """The session's token; a pre-login one for the login form itself."""
        token = request.session.get("csrf")
        if not isinstance(token, str):
            token = secrets.token_urlsafe(32)
            request.session["csrf"] = token
        return token

    @staticmethod
    def check_csrf(request: Request, fields: dict[str, str]) -> None:
        want = request.session.get("csrf")
        got = request.headers.get("x-csrf-token") or fields.get("csrf", "")
        if not isinstance(want, str) or not hmac.compare_digest(want.encode(), got.encode()):
            raise HTTPException(403, "csrf: missing or wrong token (reload the page)")

    def require(self, request: Request, *, act: bool = False) -> User:
        """The operator, or 401 (no session) / 403 (a viewer trying to act)."""
        user = self.user(request)
        if user is None:
            raise HTTPException(401, "session: not logged in, or the session expired")
        if act and not user.can_act:
            raise HTTPException(403, f"role: {user.role} may not do this (operator or admin)")
        return user
