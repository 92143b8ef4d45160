"""Enrichment rules: campaign parameters from URLs, page groups from routes, baggage, and
the :class:`Enricher` that applies them to a span.

Everything here is decided once per distinct input where it can be, and cached in
bounded dicts: a span should pay for a dict lookup, not for a regex.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import unquote_plus

from opentelemetry import baggage
from opentelemetry.context import Context

from .. import drops
from ..attributes import (
    CAMPAIGN_ID,
    CAMPAIGN_MEDIUM,
    CAMPAIGN_SOURCE,
    HTTP_METHOD,
    HTTP_REQUEST_METHOD,
    HTTP_ROUTE,
    HTTP_TARGET,
    HTTP_URL,
    MISSING,
    PAGE_GROUP,
    UNMATCHED,
    URL_FULL,
    URL_PATH,
    URL_QUERY,
    sanitize_dimension,
)
from ..config import Config

#: Longest query string that is parsed; attackers control it, and campaign parameters
#: come first in real landing URLs.
MAX_QUERY_LENGTH = 2048
CACHE_LIMIT = 4096

PageGroupRule = tuple[str, str] | Callable[[str | None, str | None, str], str | None]


class Campaign(NamedTuple):
    campaign: str | None
    source: str | None
    medium: str | None


_UTM_FIELDS = {"utm_campaign": 0, "utm_source": 1, "utm_medium": 2}


def utm_parameters(query: str) -> tuple[str, ...]:
    """The raw ``utm_…=value`` pairs of a query string (bounded), in order: all that
    :func:`parse_utm` reads, and so a cache key that ignores click ids such as ``gclid``,
    which make nearly every landing URL unique."""
    return tuple(part for part in query[:MAX_QUERY_LENGTH].replace(";", "&").split("&")
                 if part.startswith("utm_"))


def campaign_of(parameters: tuple[str, ...], max_length: int = 64) -> Campaign | None:
    """The campaign named by raw ``utm_`` pairs (from :func:`utm_parameters`), or None."""
    found: list[str | None] = [None, None, None]
    for part in parameters:
        name, _, value = part.partition("=")
        index = _UTM_FIELDS.get(name)
        if index is None or found[index] is not None:
            continue
        decoded = unquote_plus(value[: max_length * 12], errors="replace")
        found[index] = sanitize_dimension(decoded, max_length) or None
    if found == [None, None, None]:
        return None
    return Campaign(*found)


def parse_utm(query: str, max_length: int = 64) -> Campaign | None:
    """utm_campaign/source/medium from a query string (``a=1&utm_campaign=x``), or None.

    Values are percent-decoded (undecodable bytes become U+FFFD), then sanitised and cut
    to ``max_length``; the first occurrence of each parameter wins.
    """
    if "utm_" not in query:
        return None
    return campaign_of(utm_parameters(query), max_length)


#: Longest URL whose query or path is looked for; attackers control it.
MAX_URL_LENGTH = 8192


def query_of(url_query: object, http_target: object, full_url: object = None) -> str | None:
    """The query string: ``url.query``, else the part of ``http.target`` after ``?``, else
    that of the full URL (``url.full`` or ``http.url``), without its fragment; each
    attribute read up to MAX_URL_LENGTH characters."""
    if isinstance(url_query, str):
        return url_query[:MAX_URL_LENGTH]
    if isinstance(http_target, str):
        _, mark, query = http_target[:MAX_URL_LENGTH].partition("?")
        if mark:
            return query
    if isinstance(full_url, str):
        _, mark, query = full_url[:MAX_URL_LENGTH].partition("?")
        return query.partition("#")[0] if mark else None
    return None


def full_url_of(attributes: Mapping[str, Any]) -> object:
    """The full URL attribute: ``url.full``, else ``http.url``. The SDK keeps a None
    value, and a None ``url.full`` is no URL."""
    full = attributes.get(URL_FULL)
    return attributes.get(HTTP_URL) if full is None else full


def path_of(url_path: object, http_target: object, full_url: object = None) -> str | None:
    """The path: ``url.path``, else ``http.target`` before ``?``, else the full URL's;
    UTF-8 as the client sent it (see :func:`wsgi_text`); each attribute read up to
    MAX_URL_LENGTH characters, so that no rule or cache key holds more of a path."""
    if isinstance(url_path, str):
        return wsgi_text(url_path[:MAX_URL_LENGTH])
    if isinstance(http_target, str):
        return wsgi_text(http_target[:MAX_URL_LENGTH].partition("?")[0])
    if isinstance(full_url, str):
        rest = full_url[:MAX_URL_LENGTH].partition("://")[2]
        if rest:
            path = "/" + rest.partition("/")[2]
            return wsgi_text(path.partition("?")[0].partition("#")[0])
    return None


def wsgi_text(path: str) -> str:
    """``path`` decoded as UTF-8 when it arrived as WSGI text. PEP 3333 hands servers'
    bytes to the application as latin-1 text, so ``/中`` reaches the instrumentation as
    ``/ä¸\xad``; a framework decodes it back, and so does this. Text that is not such a
    round trip (true latin-1, or already decoded) is returned as it is.

    >>> wsgi_text("/\u00e4\u00b8\u00ad"), wsgi_text("/caf\u00e9"), wsgi_text("/cart")
    ('/中', '/café', '/cart')
    """
    if path.isascii():
        return path
    try:
        return path.encode("latin-1").decode("utf-8")
    except UnicodeError:  # not latin-1 text (already decoded), or not UTF-8 bytes
        return path


_ROUTE_PARAMETER = re.compile(r"<(?:[^:<>/]+:)?(?P<name>[^:<>/]+)>")
_REGEX_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>[^)]*\)")


def normal_route(route: str) -> str:
    """One name for a route whatever the framework wrote it as: a leading slash, and
    parameters in braces, the form of OpenAPI and of the HTTP semantic conventions'
    examples. Django's ``product/<int:pid>`` and ``^product/(?P<pid>\\d+)$``, Flask's
    ``/product/<int:pid>`` and FastAPI's ``/product/{pid}`` all become ``/product/{pid}``.

    >>> normal_route("product/<int:pid>"), normal_route("/cart")
    ('/product/{pid}', '/cart')
    """
    text = route.strip()
    if text.startswith("^"):
        text = text[1:]
    if text.endswith("$"):
        text = text[:-1]
    text = _REGEX_GROUP.sub(lambda m: "{" + m.group("name") + "}", text)
    text = _ROUTE_PARAMETER.sub(lambda m: "{" + m.group("name") + "}", text)
    return text if text.startswith("/") else "/" + text


class PageGroups:
    """Ordered rules mapping a route, path or span name to a page group.

    A rule is ``(pattern, group)``, where the pattern is a glob (``/product/*``) or a
    regular expression (``re:^/api/v\\d+/cart``) tried against the route, then the path,
    then the span name; or a callable ``(route, path, name) -> group | None``. The first
    rule that answers wins. A callable that raises is skipped and counted.
    """

    def __init__(self, rules: Sequence[PageGroupRule]) -> None:
        self._rules: list[tuple[re.Pattern[str] | None, str, Callable[..., str | None] | None]]
        self._rules = []
        for rule in rules:
            if callable(rule):
                self._rules.append((None, "", rule))
            else:
                pattern, group = rule
                source = pattern[3:] if pattern.startswith("re:") else fnmatch.translate(pattern)
                self._rules.append((re.compile(source), group, None))
        #: (route, path, span name) -> group or None; read directly by the native hooks.
        self.cache: dict[tuple[str | None, str | None, str], str | None] = {}

    def __bool__(self) -> bool:
        return bool(self._rules)

    def match(self, route: str | None, path: str | None, name: str) -> str | None:
        key = (route, path, name)
        try:
            return self.cache[key]
        except KeyError:
            pass
        group = self._evaluate(route, path, name)
        if len(self.cache) >= CACHE_LIMIT:
            self.cache.clear()  # hostile paths cannot grow it; hot routes refill at once
        self.cache[key] = group
        return group

    def _evaluate(self, route: str | None, path: str | None, name: str) -> str | None:
        for pattern, group, function in self._rules:
            if function is not None:
                try:
                    result = function(route, path, name)
                except Exception as error:
                    drops.count(drops.RULE_ERROR, f"page-group rule {function!r} raised {error!r}")
                    continue
                if result:
                    return str(result)
                continue
            assert pattern is not None
            # A rule is tried on the route as the framework wrote it, then in its normal
            # form (so /product/* matches Django's product/<int:pid> too), the path, the name.
            normal = normal_route(route) if route is not None else None
            for target in (route, normal if normal != route else None, path, name):
                if target is not None and pattern.match(target):
                    return group
        return None


class BaggageFilter:
    """Allow-list of baggage keys; a trailing ``*`` allows a prefix (like contrib's
    BaggageSpanProcessor predicates, but as data so it can come from configuration)."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._exact = frozenset(k for k in keys if not k.endswith("*"))
        self._prefixes = tuple(k[:-1] for k in keys if k.endswith("*"))

    def __bool__(self) -> bool:
        return bool(self._exact or self._prefixes)

    def allows(self, key: str) -> bool:
        return key in self._exact or (bool(self._prefixes) and key.startswith(self._prefixes))


def route_of(attributes: Mapping[str, Any]) -> str | None:
    """``http.route`` when it is a string, else None. The SDK keeps any attribute value,
    mappings included, which no cache can key; only a string names a route."""
    route = attributes.get(HTTP_ROUTE)
    return route if isinstance(route, str) else None


def _is_http_request(attributes: Mapping[str, Any]) -> bool:
    return (HTTP_REQUEST_METHOD in attributes or HTTP_METHOD in attributes
            or URL_PATH in attributes or HTTP_TARGET in attributes
            or URL_FULL in attributes or HTTP_URL in attributes)


class Enricher:
    """What to write on a span at start, and the page group of a span at end."""

    def __init__(self, config: Config) -> None:
        self._baggage = BaggageFilter(config.baggage_keys)
        self._rules = PageGroups(config.page_groups)
        #: The page-group rules, which the hooks apply themselves when nothing else needs
        #: the general path (``rules_only``).
        self.rules = self._rules
        self._max_length = config.max_value_length
        self._dimensions = len(config.dimensions)
        #: Whether every span needs the slow path (baggage or rules are configured).
        self.always = bool(self._baggage) or bool(self._rules)
        #: Whether rules are all that makes every span need enrichment (no baggage keys).
        self.rules_only = bool(self._rules) and not self._baggage
        self.page_group_at = (config.dimensions.index(PAGE_GROUP)
                              if PAGE_GROUP in config.dimensions else -1)
        #: raw utm pairs -> the campaign attributes they name; read directly by the hooks.
        self.campaigns: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {}
        #: route -> ready-made fallback tuple, where the route alone decides it (no rules),
        #: and (route, span name) -> the same otherwise; both read directly by the hooks.
        self.route_fallbacks: dict[Any, tuple[str, ...]] = {}
        self.fallbacks: dict[tuple[Any, str], tuple[str, ...]] = {}

    def enrich(self, span: Any, parent_context: Context | None, attributes: Mapping[str, Any],
               carried: Mapping[str, str] | None) -> None:
        """Write business context, allowed baggage, campaign parameters and the page group,
        each only where the span does not already carry the attribute."""
        writes: dict[str, Any] = {}
        if carried:
            writes.update((k, v) for k, v in carried.items() if k not in attributes)
        if self._baggage:
            for key, value in baggage.get_all(parent_context).items():
                if self._baggage.allows(key) and key not in attributes:
                    writes.setdefault(key, sanitize_dimension(value, self._max_length))
        target = attributes.get(HTTP_TARGET)
        full = full_url_of(attributes)
        query = query_of(attributes.get(URL_QUERY), target, full)
        if query and "utm_" in query:
            for key, value in self.campaign_attributes(utm_parameters(query)):
                if key not in attributes:
                    writes.setdefault(key, value)
        if self._rules and PAGE_GROUP not in attributes:
            route = attributes.get(HTTP_ROUTE)
            group = self._rules.match(route if isinstance(route, str) else None,
                                      path_of(attributes.get(URL_PATH), target, full), span.name)
            if group is not None:
                writes.setdefault(PAGE_GROUP, group)
        if len(writes) <= 3:
            # Up to three keys, one set_attribute each costs less than set_attributes,
            # whose mapping goes through the ABC checks of the SDK's attribute cleaning.
            for key, value in writes.items():
                span.set_attribute(key, value)
        else:
            span.set_attributes(writes)

    def campaign_attributes(self, parameters: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
        """The campaign attributes, as (key, value) pairs, named by the raw utm pairs of a
        query (:func:`utm_parameters`). Cached on those pairs, not on the whole query: a
        campaign's landings differ in click ids and other parameters, rarely in their utm
        ones. The hooks read :attr:`campaigns` directly and call this on a miss."""
        try:
            return self.campaigns[parameters]
        except KeyError:
            pass
        campaign = campaign_of(parameters, self._max_length)
        pairs = () if campaign is None else tuple(
            (key, value) for key, value in zip(
                (CAMPAIGN_ID, CAMPAIGN_SOURCE, CAMPAIGN_MEDIUM), campaign, strict=True)
            if value is not None)
        if len(self.campaigns) >= CACHE_LIMIT:
            self.campaigns.clear()
        self.campaigns[parameters] = pairs
        return pairs

    def fallback(self, attributes: Mapping[str, Any], name: str) -> tuple[str, ...]:
        """The page group of a span that does not carry one: the rules applied to the
        route known by now, else the route in its normal form, else ``unmatched`` for an
        HTTP request (never its path or a name made from it), else the span name.

        Cached as a ready-made tuple, so the hot path allocates nothing for it: per route
        and name, and, without rules, where the route alone decides it, per route."""
        route = route_of(attributes)
        group = None
        if self._rules:
            path = path_of(attributes.get(URL_PATH), attributes.get(HTTP_TARGET),
                           full_url_of(attributes))
            group = self._rules.match(route, path, name)
        by_route = False
        if group is None:
            if route:
                group = normal_route(route)
                by_route = not self._rules
            elif _is_http_request(attributes):
                group = UNMATCHED  # a name its client chose (a 404's path) never becomes a key
            else:
                group = name  # a consumer's or a local root's name, chosen by the code
        dims = [MISSING] * self._dimensions
        dims[self.page_group_at] = sanitize_dimension(group, self._max_length)
        fallback = tuple(dims)
        cache: dict[Any, tuple[str, ...]] = self.route_fallbacks if by_route else self.fallbacks
        if len(cache) >= CACHE_LIMIT:
            cache.clear()
        cache[route if by_route else (route, name)] = fallback
        return fallback
