"""Django middleware: the session id from a cookie into the business context, as the WSGI
and ASGI middlewares do. In ``settings.py``::

    MIDDLEWARE = ["bizops_otel.span.django_middleware.BusinessContextMiddleware", ...]
    BIZOPS_OTEL_SESSION_COOKIE = "sessionid"   # default: Django's own session cookie
    BIZOPS_OTEL_MINT_SESSION = False           # True: new visitors get a random id (needs
                                               # a cookie name other than Django's own)

Put it first, so every view and every span under the request carries the session. Django
itself is imported only when the middleware is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._cookies import MINTED_MAX_AGE, mint
from ._request import request_values
from .context import business_context


class BusinessContextMiddleware:
    """Runs each request inside ``business_context(session_id=<cookie>)``, with the
    campaign of a landing URL too: Django's development server gives the instrumentation
    no request URI, so its spans carry no query to find it in."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        from django.conf import settings

        self.get_response = get_response
        self._session_cookie = str(getattr(settings, "BIZOPS_OTEL_SESSION_COOKIE",
                                           getattr(settings, "SESSION_COOKIE_NAME",
                                                   "sessionid")))
        self._mint = bool(getattr(settings, "BIZOPS_OTEL_MINT_SESSION", False))
        if self._mint and self._session_cookie == getattr(settings, "SESSION_COOKIE_NAME",
                                                          "sessionid"):
            raise ValueError(
                "bizops-otel: BIZOPS_OTEL_MINT_SESSION would replace Django's own session "
                f"cookie {self._session_cookie!r}; set BIZOPS_OTEL_SESSION_COOKIE to a "
                "cookie of its own (for example 'bizops_session') to mint one")

    def __call__(self, request: Any) -> Any:
        values = request_values(request.META.get("HTTP_COOKIE"), self._session_cookie,
                                request.META.get("QUERY_STRING"))
        minted = None
        if "session_id" not in values and self._mint:
            values["session_id"] = minted = mint()
        if not values:
            return self.get_response(request)
        with business_context(**values):
            response = self.get_response(request)
        if minted is not None and self._session_cookie not in response.cookies:
            response.set_cookie(self._session_cookie, minted, max_age=MINTED_MAX_AGE,
                                httponly=True, samesite="Lax", secure=request.is_secure())
        return response
