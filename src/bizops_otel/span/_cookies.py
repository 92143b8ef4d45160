"""The session cookie, read the same way by every middleware, and minted when asked.

A minted id is 128 random bits (``secrets``), sent ``HttpOnly; SameSite=Lax``. It is not
signed, and need not be: it grants nothing. It only groups a visitor's requests into a
session for statistics, is hashed with a per-process salt before it is kept, and is never
exported; a client that forges or replays one can at worst blur its own session's figures,
as a client that clears its cookies already can.
"""

from __future__ import annotations

import secrets

#: A minted session lives this long without a request (seconds), as long as a session's
#: idle timeout can be configured.
MINTED_MAX_AGE = 86_400
#: Longest cookie header parsed; attackers control it.
MAX_HEADER_LENGTH = 8192


def session_from_header(header: str | None, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header, or None (absent or empty).

    Parsed pair by pair, as browsers send it (``a=1; b=2``), not by the standard library's
    ``SimpleCookie``, which gives up on the whole header when any other cookie in it is
    malformed (a JSON value, a space, a non-ASCII byte), and would lose the session.
    """
    if not header or len(header) > MAX_HEADER_LENGTH:
        return None
    for pair in header.split(";"):
        key, sep, value = pair.partition("=")
        if sep and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value or None
    return None


def sets_cookie(headers: list[tuple[str, str]], name: str) -> bool:
    """Whether response ``headers`` already set cookie ``name`` (the application's own
    cookie is never overwritten by a minted one)."""
    prefix = name + "="
    return any(key.lower() == "set-cookie" and value.lstrip().startswith(prefix)
               for key, value in headers)


def mint() -> str:
    return secrets.token_urlsafe(16)


def set_cookie_header(name: str, value: str, secure: bool = False) -> str:
    """The ``Set-Cookie`` value of a minted session id."""
    parts = [f"{name}={value}", "Path=/", f"Max-Age={MINTED_MAX_AGE}", "HttpOnly",
             "SameSite=Lax"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)
