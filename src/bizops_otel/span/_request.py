"""What a middleware reads from the request itself, for servers whose instrumentation
leaves it off the span: the session cookie, and the campaign of a landing URL. Django's
development server, for one, gives the instrumentation no request URI, so its spans carry
no query in either HTTP semantic-convention mode; the middleware still sees it."""

from __future__ import annotations

from ._cookies import session_from_header
from .enrich import parse_utm


def request_values(cookie_header: str | None, session_cookie: str,
                   query: str | None) -> dict[str, str]:
    """``business_context`` values of one request: ``session_id`` from the cookie, and
    ``campaign``, ``campaign_source``, ``campaign_medium`` from utm parameters in the query
    (parsed as the span path parses them: bounded, percent-decoded, sanitised)."""
    values: dict[str, str] = {}
    session = session_from_header(cookie_header, session_cookie)
    if session is not None:
        values["session_id"] = session
    if query and "utm_" in query:
        campaign = parse_utm(query)
        if campaign is not None:
            for name, value in zip(("campaign", "campaign_source", "campaign_medium"),
                                   campaign, strict=True):
                if value is not None:
                    values[name] = value
    return values
