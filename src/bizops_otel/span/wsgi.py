"""WSGI middleware that puts request-level business context in place: the session id
from a cookie, which HTTP instrumentations do not capture (and should not put on spans
as a raw header)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http.cookies import CookieError, SimpleCookie
from typing import Any

from .context import business_context

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _cookie(environ: dict[str, Any], name: str) -> str | None:
    header = environ.get("HTTP_COOKIE")
    if not header:
        return None
    try:
        morsel = SimpleCookie(header).get(name)
    except CookieError:
        return None
    return morsel.value if morsel is not None else None


class BusinessContextMiddleware:
    """Runs each request inside ``business_context(session_id=<cookie>)``.

    Wrap the application inside or outside the OpenTelemetry WSGI middleware; either way
    the request span and every span under it carry ``session.id``::

        app.wsgi_app = BusinessContextMiddleware(app.wsgi_app, session_cookie="sid")
    """

    def __init__(self, app: WSGIApp, session_cookie: str = "session") -> None:
        self._app = app
        self._session_cookie = session_cookie

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        session = _cookie(environ, self._session_cookie)
        if session is None:
            return self._app(environ, start_response)
        with business_context(session_id=session):
            # The body is produced inside the context too, for streaming responses.
            return list(self._app(environ, start_response))
