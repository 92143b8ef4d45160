"""ASGI middleware (Starlette, FastAPI, any ASGI app): the session id from a cookie into
the business context, as the WSGI middleware does.

A pure ASGI middleware, so it wraps any application and adds nothing to the request path
but a header lookup::

    app.add_middleware(BusinessContextASGIMiddleware, session_cookie="sid")   # Starlette
    app = BusinessContextASGIMiddleware(app, session_cookie="sid")            # any ASGI

Add it outside OpenTelemetry's ASGI middleware (FastAPI's instrumentation adds that one
innermost), so the session is known when the request span starts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ._cookies import mint, set_cookie_header, sets_cookie
from ._request import request_values
from .context import business_context

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _cookie_header(scope: Scope) -> str | None:
    """Every ``cookie`` header of the request as one (HTTP/2 may send several)."""
    values = [bytes(value).decode("latin-1") for name, value in scope.get("headers") or ()
              if name == b"cookie"]
    return "; ".join(values) if values else None


class BusinessContextASGIMiddleware:
    """Runs each HTTP request inside ``business_context(session_id=<cookie>)``; with
    ``mint_session=True`` a request without the cookie gets a new id, set on the
    response."""

    def __init__(self, app: ASGIApp, session_cookie: str = "session",
                 mint_session: bool = False) -> None:
        self.app = app
        self._session_cookie = session_cookie
        self._mint = mint_session

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        query = bytes(scope.get("query_string") or b"").decode("latin-1")
        values = request_values(_cookie_header(scope), self._session_cookie, query)
        if "session_id" not in values and self._mint:
            session = values["session_id"] = mint()
            cookie = set_cookie_header(self._session_cookie, session,
                                       secure=scope.get("scheme") == "https").encode()
            inner = send

            async def send_with_cookie(message: Message) -> None:
                if message.get("type") == "http.response.start":
                    headers = list(message.get("headers", ()))
                    own = [(bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
                           for k, v in headers]
                    if not sets_cookie(own, self._session_cookie):
                        message["headers"] = [*headers, (b"set-cookie", cookie)]
                await inner(message)

            send = send_with_cookie
        if not values:
            await self.app(scope, receive, send)
            return
        with business_context(**values):
            await self.app(scope, receive, send)
