"""WSGI middleware that puts request-level business context in place: the session id
from a cookie, which HTTP instrumentations do not capture (and should not put on spans
as a raw header)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ._cookies import mint, set_cookie_header, sets_cookie
from ._request import request_values
from .context import business_context

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class BusinessContextMiddleware:
    """Runs each request inside ``business_context(session_id=<cookie>)``, with the
    campaign of a landing URL too (for servers whose spans carry no query).

    Wrap the application outside the OpenTelemetry WSGI middleware, so the session is
    known when the request span starts (inside works too: the span gets it on entry)::

        app.wsgi_app = BusinessContextMiddleware(app.wsgi_app, session_cookie="sid")

    With ``mint_session=True`` a request without the cookie gets a new random id, set on
    the response (see ``_cookies`` for why it need not be signed).
    """

    def __init__(self, app: WSGIApp, session_cookie: str = "session",
                 mint_session: bool = False) -> None:
        self._app = app
        self._session_cookie = session_cookie
        self._mint = mint_session

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        values = request_values(environ.get("HTTP_COOKIE"), self._session_cookie,
                                environ.get("QUERY_STRING"))
        if "session_id" not in values and self._mint:
            session = values["session_id"] = mint()
            cookie = set_cookie_header(self._session_cookie, session,
                                       secure=environ.get("wsgi.url_scheme") == "https")

            def start_with_cookie(status: str, headers: list[tuple[str, str]],
                                  *exc_info: Any) -> Any:
                if not sets_cookie(headers, self._session_cookie):
                    headers = [*headers, ("Set-Cookie", cookie)]
                return start_response(status, headers, *exc_info)

            respond = start_with_cookie
        else:
            respond = start_response
        if not values:
            return self._app(environ, respond)
        with business_context(**values):
            body = self._app(environ, respond)
        return _InContext(body, values)


class _InContext:
    """The application's body, each chunk produced inside the business context (a
    streaming body runs its code as it is iterated), passed on without buffering, and
    closed as PEP 3333 asks."""

    def __init__(self, body: Iterable[bytes], values: dict[str, str]) -> None:
        self._body = body
        self._chunks = iter(body)
        self._values = values

    def __iter__(self) -> _InContext:
        return self

    def __next__(self) -> bytes:
        with business_context(**self._values):
            return next(self._chunks)

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()
