"""The one frozen configuration object, validated when it is made.

Bad configuration is the user's to fix, so it fails loudly here with the field named;
nothing on the hot path ever raises.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import attributes as attr
from .latency_buckets import DEFAULT_EXPORT_BUCKETS, export_edge_indices

MAX_KPIS = 16
MAX_DIMENSIONS = 8
MAX_KEYS_LIMIT = 1_000_000
MAX_ADMISSION_COUNT = 100
MAX_KEY_TTL = 30 * 86400


class ConfigError(ValueError):
    """A configuration source holds an unknown key or a value of the wrong form.

    ``field`` is the Config field at fault, when there is one: the settings loader adds
    where its value came from (the variable or the file) to the message."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _require(condition: bool, field_name: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"bizops-otel config: {field_name}: {message}", field_name)


def _sequence(value: Any, field_name: str, what: str) -> tuple[Any, ...]:
    """``value`` as a tuple, when it is a sequence (any iterable but a string) of ``what``;
    a configuration file can hold a number or a table where a list belongs."""
    _require(isinstance(value, Iterable) and not isinstance(value, str | bytes), field_name,
             f"expected a sequence of {what}, got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class Kpi:
    """A business KPI read from a span attribute and related to the span's latency.

    ``binary`` KPIs take only 0 and 1 (conversion). Numeric KPIs outside
    ``[minimum, maximum]`` are dropped and counted, so an absurd order value of 1e30 cannot
    swamp the statistics.
    """

    name: str
    attribute: str
    binary: bool = False
    minimum: float = 0.0
    maximum: float = 1e9

    def __post_init__(self) -> None:
        _require(isinstance(self.name, str) and self.name.isidentifier(),
                 "kpis", f"KPI name {self.name!r} must be an identifier")
        _require(isinstance(self.attribute, str) and bool(self.attribute),
                 "kpis", f"KPI {self.name!r} needs a non-empty attribute key")
        for bound in ("minimum", "maximum"):
            value = getattr(self, bound)
            _require(isinstance(value, int | float) and not isinstance(value, bool)
                     and math.isfinite(value),
                     "kpis", f"KPI {self.name!r}: {bound} must be a finite number")
        _require(self.minimum <= self.maximum,
                 "kpis", f"KPI {self.name!r}: minimum exceeds maximum")
        _require(isinstance(self.binary, bool),
                 "kpis", f"KPI {self.name!r}: binary must be true or false, got {self.binary!r}")


#: KPIs known by name, so that ``Config(kpis=("order_value", "conversion"))`` works.
BUILTIN_KPIS: dict[str, Kpi] = {
    "order_value": Kpi("order_value", attr.ORDER_VALUE),
    "conversion": Kpi("conversion", attr.CONVERSION, binary=True, minimum=0.0, maximum=1.0),
    "items": Kpi("items", attr.ORDER_ITEMS, maximum=1e6),
}


def _normalise_kpis(kpis: Iterable[Kpi | str]) -> tuple[Kpi, ...]:
    result: list[Kpi] = []
    for item in _sequence(kpis, "kpis", "KPI names or Kpi"):
        if isinstance(item, str):
            _require(item in BUILTIN_KPIS, "kpis",
                     f"unknown KPI {item!r}; known: {sorted(BUILTIN_KPIS)} or pass a Kpi")
            result.append(BUILTIN_KPIS[item])
        elif isinstance(item, Kpi):
            result.append(item)
        else:
            _require(False, "kpis", f"expected a KPI name or Kpi, got {type(item).__name__}")
    names = [k.name for k in result]
    _require(len(set(names)) == len(names), "kpis", f"duplicate KPI names in {names}")
    _require(len(result) <= MAX_KPIS, "kpis", f"at most {MAX_KPIS} KPIs")
    return tuple(result)


#: Operations (objectives) a Config holds at most.
MAX_OPERATIONS = 64
#: Longest latency threshold of an objective, in seconds (a day).
MAX_THRESHOLD = 86400.0
_OPERATION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Operation:
    """A named business operation with an objective: the share of its requests that must
    be good, a request being good when its latency is at most ``threshold`` seconds (and,
    with ``errors``, when its span did not end in error).

    A request span is the operation's when every rule given matches: ``span_name``,
    ``route`` (``http.route``) and ``page_group`` are exact strings, globs (``*``) or, after
    ``re:``, regular expressions; ``method`` is the HTTP method; ``kind`` the span kind
    (None: any); ``attributes`` maps attribute keys to the values they must hold. One span
    may belong to several operations.

    >>> Operation("authorise_order", threshold=2.0, target=0.99,
    ...           span_name="POST /api/orders/{id}/authorise").threshold_ns
    2000000000
    """

    name: str
    threshold: float
    target: float
    span_name: str | None = None
    route: str | None = None
    page_group: str | None = None
    method: str | None = None
    kind: str | None = "server"
    attributes: tuple[tuple[str, Any], ...] = ()
    errors: bool = True

    def __post_init__(self) -> None:
        _require(isinstance(self.name, str) and bool(_OPERATION_NAME.match(self.name)),
                 "operations", f"operation name {self.name!r} must start with a letter or _ "
                 "and hold at most 64 letters, digits, _, . or -")
        what = f"operation {self.name!r}"
        _require(_is_number(self.threshold) and 0 < self.threshold <= MAX_THRESHOLD,
                 "operations", f"{what}: threshold must be seconds in (0, {MAX_THRESHOLD:g}], "
                 f"got {self.threshold!r}")
        _require(_is_number(self.target) and 0 < self.target < 1, "operations",
                 f"{what}: target must be a ratio in (0, 1) such as 0.99, got {self.target!r}")
        for rule in ("span_name", "route", "page_group", "method"):
            value = getattr(self, rule)
            _require(value is None or (isinstance(value, str) and bool(value)), "operations",
                     f"{what}: {rule} must be a non-empty string or None, got {value!r}")
            if isinstance(value, str) and value.startswith("re:"):
                try:
                    re.compile(value[3:])
                except (re.error, OverflowError, RecursionError) as error:
                    _require(False, "operations",
                             f"{what}: {rule}: bad regular expression {value!r}: {error}")
        if self.method is not None:
            object.__setattr__(self, "method", self.method.upper())
        _require(self.kind is None or self.kind in SPAN_KINDS, "operations",
                 f"{what}: kind must be one of {SPAN_KINDS} or None, got {self.kind!r}")
        conditions = self.attributes
        if isinstance(conditions, Mapping):
            conditions = tuple(conditions.items())
        pairs = []
        for pair in _sequence(conditions, "operations", "(attribute, value) pairs"):
            _require(isinstance(pair, tuple | list) and len(pair) == 2
                     and isinstance(pair[0], str) and bool(pair[0])
                     and isinstance(pair[1], str | int | float | bool), "operations",
                     f"{what}: attributes must map attribute keys to strings, numbers or "
                     f"booleans, got {pair!r}")
            pairs.append((pair[0], pair[1]))
        object.__setattr__(self, "attributes", tuple(pairs))
        _require(isinstance(self.errors, bool), "operations",
                 f"{what}: errors must be true or false, got {self.errors!r}")

    @property
    def threshold_ns(self) -> int:
        """The threshold in integer nanoseconds: a request is fast enough when its span's
        end minus start, in the SDK's nanoseconds, is at most this."""
        return round(self.threshold * 1e9)


def _normalise_operations(config: Config) -> None:
    items = config.operations
    result: list[Operation] = []
    for item in _sequence(items, "operations", "Operation"):
        _require(isinstance(item, Operation), "operations",
                 f"expected an Operation, got {type(item).__name__}")
        result.append(item)
    names = [o.name for o in result]
    _require(len(set(names)) == len(names), "operations", f"duplicate operation names in {names}")
    _require(len(result) <= MAX_OPERATIONS, "operations", f"at most {MAX_OPERATIONS} operations")
    for operation in result:
        _require(operation.kind is None or operation.kind in config.record_kinds
                 or config.record_local_roots, "operations",
                 f"operation {operation.name!r}: kind {operation.kind!r} is not recorded "
                 f"(record_kinds={config.record_kinds}, record_local_roots=false)")
    object.__setattr__(config, "operations", tuple(result))


# Journeys (funnels) ------------------------------------------------------------------------
#: Journeys a Config holds at most, and their steps (as ``aggregate._layout``, which checks).
MAX_JOURNEYS = 8
MIN_JOURNEY_STEPS = 2
MAX_JOURNEY_STEPS = 8
#: Longest page-group name a step can name: a longer one could never match, since
#: dimension values are cut to at most this many characters.
MAX_STEP_LENGTH = 1024


@dataclass(frozen=True)
class Journey:
    """A named funnel: page groups a session is expected to visit in this order.

    A session reaches step 0 when it visits the first group, and step k + 1 when it
    visits group k + 1 after having reached step k; other visits do not move it. Each
    finalised session counts, per step reached, whether it went on to the next one, how
    long that took and how slow the request that reached the step was.

    >>> Journey("purchase", steps=("landing", "product", "cart", "checkout", "order")).steps[2]
    'cart'
    """

    name: str
    steps: tuple[str, ...]

    def __post_init__(self) -> None:
        _require(isinstance(self.name, str) and bool(_OPERATION_NAME.match(self.name)),
                 "journeys", f"journey name {self.name!r} must start with a letter or _ "
                 "and hold at most 64 letters, digits, _, . or -")
        what = f"journey {self.name!r}"
        steps = _sequence(self.steps, "journeys", "page groups")
        _require(MIN_JOURNEY_STEPS <= len(steps) <= MAX_JOURNEY_STEPS, "journeys",
                 f"{what}: needs {MIN_JOURNEY_STEPS} to {MAX_JOURNEY_STEPS} steps, "
                 f"got {len(steps)}")
        for step in steps:
            _require(isinstance(step, str) and bool(step) and step.isprintable()
                     and len(step) <= MAX_STEP_LENGTH, "journeys",
                     f"{what}: step {step!r} must be a page group: a non-empty printable "
                     f"string of at most {MAX_STEP_LENGTH} characters")
        _require(len(set(steps)) == len(steps), "journeys",
                 f"{what}: steps must be distinct page groups, got {list(steps)}")
        object.__setattr__(self, "steps", steps)


def _normalise_journeys(config: Config) -> None:
    result: list[Journey] = []
    for item in _sequence(config.journeys, "journeys", "Journey"):
        _require(isinstance(item, Journey), "journeys",
                 f"expected a Journey, got {type(item).__name__}")
        result.append(item)
    names = [j.name for j in result]
    _require(len(set(names)) == len(names), "journeys", f"duplicate journey names in {names}")
    _require(len(result) <= MAX_JOURNEYS, "journeys", f"at most {MAX_JOURNEYS} journeys")
    if result:
        # Journeys are read from the session table, which needs the page group of each
        # request; without them no session could ever reach a step.
        _require(config.max_sessions > 0, "journeys",
                 "journeys need the session table (max_sessions > 0)")
        _require(attr.PAGE_GROUP in config.dimensions, "journeys",
                 f"journeys need {attr.PAGE_GROUP!r} among the dimensions")
        for journey in result:
            for step in journey.steps:
                _require(len(step) <= config.max_value_length, "journeys",
                         f"journey {journey.name!r}: step {step!r} is longer than "
                         f"max_value_length ({config.max_value_length}) and could never match")
    object.__setattr__(config, "journeys", tuple(result))


#: The default key_ttl, in recent windows: a key idle this long has had no span in its
#: recent statistics for four windows, and its campaign has long since left the monitor.
KEY_TTL_WINDOWS = 5

#: What variant guardrails can judge.
GUARDRAIL_METRICS = ("conversion", "latency")

#: The default outcome: resolved from the KPIs when the Config is made.
OUTCOME_AUTO = "auto"


@dataclass(frozen=True)
class Config:
    """Everything the aggregator needs to know, frozen and validated.

    >>> Config(kpis=("order_value", "conversion"), max_keys=100).window_slot_ns
    10000000000
    """

    kpis: tuple[Kpi, ...] = field(
        default=(BUILTIN_KPIS["order_value"], BUILTIN_KPIS["conversion"], BUILTIN_KPIS["items"])
    )
    dimensions: tuple[str, ...] = (attr.PAGE_GROUP, attr.CAMPAIGN_ID)
    max_keys: int = 2000
    #: Sightings of a new key (within about ``admission_window``) before it gets a key of
    #: its own; until then its spans count in the overflow key. 1 admits on first sight.
    admission_count: int = 2
    #: Seconds between two halvings of the admission sketch's counters.
    admission_window: float = 60.0
    #: Seconds without a span after which a key expires and frees its capacity (0: never).
    #: At least ``window``, so that a key's recent statistics outlive it. None: five recent
    #: windows (600 s at the default window), so the default follows a changed window.
    key_ttl: float | None = None
    #: Length of the recent window, in seconds.
    window: float = 120.0
    #: Sub-windows in the recent window's ring; the window slides in steps of window/slots.
    window_slots: int = 12
    #: The binary KPI that splits latency histograms by outcome (None: no split). "auto":
    #: ``conversion`` when it is a KPI, else the first binary KPI, else None.
    outcome: str | None = OUTCOME_AUTO
    max_value_length: int = attr.MAX_VALUE_LENGTH

    # Span processing ---------------------------------------------------------------------
    #: Whether install() does anything at all.
    enabled: bool = True
    #: Span kinds whose spans are recorded as requests.
    record_kinds: tuple[str, ...] = ("server", "consumer")
    #: Also record local root spans of other kinds (a job, a CLI command).
    record_local_roots: bool = True
    #: W3C baggage entries copied onto spans; a trailing ``*`` matches a prefix.
    baggage_keys: tuple[str, ...] = ()
    #: Ordered (pattern, page group) rules on http.route, url.path and the span name.
    #: A pattern is a glob, or a regular expression when it starts with ``re:``; a rule
    #: may also be a callable ``(route, path, name) -> group | None``.
    page_groups: tuple[Any, ...] = ()
    #: The currency order values are recorded in; None pins the first currency seen.
    base_currency: str | None = None
    #: Units of base currency per unit of another currency, e.g. {"USD": 0.92}.
    currency_rates: tuple[tuple[str, float], ...] = ()
    #: Wrap the sampler so dropped spans are still recorded (never exported).
    record_unsampled: bool = False
    #: Directory where each process writes its state for others to merge (pre-fork
    #: servers, and any process whose state should outlive it).
    multiproc_dir: str | None = None
    #: Seconds between two writes of this process's state to ``multiproc_dir``, at most.
    multiproc_interval: float = 1.0
    #: Seconds within which a state that changed is written (write on dirty; never sooner
    #: than keeps the writes within 3% of a core, nor later than ``multiproc_interval``): a
    #: worker killed with SIGKILL loses what it recorded since. An unchanged state is not
    #: written. 0 writes every ``multiproc_interval`` only.
    multiproc_flush_interval: float = 0.1

    # Sessions ------------------------------------------------------------------------------
    #: Open sessions tracked at once (0 turns sessions off). Each costs about 150 bytes.
    max_sessions: int = 100_000
    #: Seconds without a request after which a session is over.
    session_timeout: float = 1800.0
    #: Seconds between two campaign health checks by install() (0: no checks).
    campaign_interval: float = 5.0
    #: Campaigns one health check judges at most: those with recent traffic and those
    #: degraded or failing, the most recent requests first; the rest wait their turn.
    campaign_limit: int = 500
    #: Seconds between two variant guardrail checks by install() (0: no checks). They run
    #: when ``feature_flag.result.variant`` is a dimension and there is an outcome KPI.
    guardrail_interval: float = 5.0
    #: Seconds between two readings of the operations' objectives by install(), for the
    #: burn-rate alerts on the application's alert bus (0: none). They run when there are
    #: operations.
    objective_interval: float = 5.0
    #: Chance that a variant no worse than its control ever alerts, per variant and
    #: metric, over every check however many (a sequential test; see docs/analytics.md).
    guardrail_alpha: float = 0.05
    #: Observations each arm needs before it is judged: outcomes for conversion, requests
    #: for latency.
    guardrail_min_samples: int = 200
    #: The relative harm the sequential test is tuned to catch fastest, as a fraction of
    #: the control's conversion rate or mean latency.
    guardrail_effect: float = 0.10
    #: What variants are judged on: "conversion" and/or "latency".
    guardrail_metrics: tuple[str, ...] = GUARDRAIL_METRICS
    #: The control variant of every flag (None: each flag's alphabetically first variant).
    guardrail_control: str | None = None
    #: Export the per-key derived gauges (correlation, slope, conversion rate, latency
    #: quantiles, for both windows). Fleet rules need only the raw sums and buckets; turning
    #: these off cuts a key's series by about a third at high key counts.
    export_derived: bool = True
    #: Bounds (seconds) of the exported latency histograms, each taken at the nearest
    #: internal bucket edge; fewer bounds, fewer series (one per bound, key and outcome).
    export_buckets: tuple[float, ...] = DEFAULT_EXPORT_BUCKETS
    #: Serve the direct Prometheus exposition at ``/metrics`` on this port from install()
    #: (None: do not serve; a zero-code service's one-line way to be scraped).
    prometheus_port: int | None = None
    #: The address that server binds.
    prometheus_addr: str = "0.0.0.0"

    # Objectives ----------------------------------------------------------------------------
    #: Named operations with a latency objective: good and total requests are counted
    #: exactly per operation (see ``Operation``).
    operations: tuple[Operation, ...] = ()

    # Journeys ------------------------------------------------------------------------------
    #: Funnels over page groups, followed per session (see ``Journey``).
    journeys: tuple[Journey, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "kpis", _normalise_kpis(self.kpis))
        dims = _sequence(self.dimensions, "dimensions", "attribute keys")
        _require(all(isinstance(d, str) and d for d in dims), "dimensions",
                 "every dimension must be a non-empty attribute key")
        _require(len(set(dims)) == len(dims), "dimensions", f"duplicates in {dims}")
        _require(len(dims) <= MAX_DIMENSIONS, "dimensions", f"at most {MAX_DIMENSIONS}")
        object.__setattr__(self, "dimensions", dims)
        _require(_is_int(self.max_keys) and 1 <= self.max_keys <= MAX_KEYS_LIMIT,
                 "max_keys", f"must be an integer in [1, {MAX_KEYS_LIMIT}], got {self.max_keys!r}")
        _require(_is_int(self.admission_count)
                 and 1 <= self.admission_count <= MAX_ADMISSION_COUNT, "admission_count",
                 f"must be an integer in [1, {MAX_ADMISSION_COUNT}], "
                 f"got {self.admission_count!r}")
        _require(_is_number(self.admission_window) and 0.001 <= self.admission_window <= 86400,
                 "admission_window",
                 f"must be seconds in [0.001, 86400], got {self.admission_window!r}")
        _require(_is_int(self.window_slots) and 1 <= self.window_slots <= 1000,
                 "window_slots", f"must be an integer in [1, 1000], got {self.window_slots!r}")
        _require(_is_number(self.window) and 0.001 <= self.window <= 7 * 86400,
                 "window", f"must be seconds in [0.001, 604800], got {self.window!r}")
        _require(self.key_ttl is None or (_is_number(self.key_ttl) and (
                     self.key_ttl == 0 or self.window <= self.key_ttl <= MAX_KEY_TTL)),
                 "key_ttl", f"must be 0 (never expire) or seconds in [window = {self.window!r}, "
                 f"{MAX_KEY_TTL}], got {self.key_ttl!r}")
        _require(_is_int(self.max_sessions) and 0 <= self.max_sessions <= 10_000_000,
                 "max_sessions",
                 f"must be an integer in [0, 10000000], got {self.max_sessions!r}")
        _require(_is_number(self.session_timeout) and 1e-3 <= self.session_timeout <= 86400,
                 "session_timeout",
                 f"must be seconds in [0.001, 86400], got {self.session_timeout!r}")
        _require(_is_number(self.campaign_interval)
                 and (self.campaign_interval == 0 or 0.05 <= self.campaign_interval <= 3600),
                 "campaign_interval",
                 f"must be 0 or seconds in [0.05, 3600], got {self.campaign_interval!r}")
        _require(_is_int(self.campaign_limit) and 1 <= self.campaign_limit <= MAX_KEYS_LIMIT,
                 "campaign_limit",
                 f"must be an integer in [1, {MAX_KEYS_LIMIT}], got {self.campaign_limit!r}")
        _require(_is_int(self.max_value_length) and 1 <= self.max_value_length <= 1024,
                 "max_value_length",
                 f"must be an integer in [1, 1024], got {self.max_value_length!r}")
        _require(self.outcome is None or isinstance(self.outcome, str), "outcome",
                 f"must be the name of a binary KPI, 'auto' or None, got {self.outcome!r}")
        if self.outcome == OUTCOME_AUTO:
            binary = [k.name for k in self.kpis if k.binary]
            object.__setattr__(self, "outcome", "conversion" if "conversion" in binary
                               else binary[0] if binary else None)
        if self.outcome is not None:
            by_name = {k.name: k for k in self.kpis}
            _require(self.outcome in by_name, "outcome",
                     f"{self.outcome!r} is not one of the KPIs {sorted(by_name)}")
            _require(by_name[self.outcome].binary, "outcome",
                     f"KPI {self.outcome!r} must be binary to split outcomes")
        object.__setattr__(self, "export_buckets",
                           _sequence(self.export_buckets, "export_buckets", "seconds"))
        try:
            export_edge_indices(self.export_buckets)
        except ValueError as error:
            _require(False, "export_buckets", str(error))
        _require(self.prometheus_port is None or (_is_int(self.prometheus_port)
                                                  and 0 <= self.prometheus_port <= 65535),
                 "prometheus_port", f"must be a port in [0, 65535] or None, "
                 f"got {self.prometheus_port!r}")
        _require(isinstance(self.prometheus_addr, str) and bool(self.prometheus_addr),
                 "prometheus_addr", f"must be an address to bind, got {self.prometheus_addr!r}")
        _validate_processing(self)
        _validate_guardrails(self)
        _normalise_operations(self)
        _normalise_journeys(self)

    @property
    def window_slot_ns(self) -> int:
        """Width of one sub-window in nanoseconds."""
        return max(1, round(self.window * 1e9 / self.window_slots))

    @property
    def admission_window_ns(self) -> int:
        """Period of the admission sketch's aging, in nanoseconds."""
        return max(1, round(self.admission_window * 1e9))

    @property
    def key_ttl_ns(self) -> int:
        """Idle time after which a key expires, in nanoseconds; 0: never."""
        return round(self.key_ttl_seconds * 1e9)

    @property
    def key_ttl_seconds(self) -> float:
        """``key_ttl``, with None resolved to its default of ``KEY_TTL_WINDOWS`` windows."""
        if self.key_ttl is None:
            return min(KEY_TTL_WINDOWS * self.window, MAX_KEY_TTL)
        return self.key_ttl

    @property
    def kpi_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.kpis)

    def kpi_index(self, name: str) -> int:
        """Position of a KPI by name; ``KeyError`` naming the known ones otherwise."""
        for index, kpi in enumerate(self.kpis):
            if kpi.name == name:
                return index
        raise KeyError(f"unknown KPI {name!r}; configured: {list(self.kpi_names)}")

    @property
    def session_timeout_ns(self) -> int:
        return round(self.session_timeout * 1e9)

    @property
    def revenue_index(self) -> int:
        """Position of the ``order_value`` KPI, whose values sum to a session's revenue,
        or -1."""
        return self.kpi_names.index("order_value") if "order_value" in self.kpi_names else -1

    @property
    def outcome_index(self) -> int:
        """Position of the outcome KPI, or -1."""
        return -1 if self.outcome is None else self.kpi_index(self.outcome)

    def same_shape(self, other: Config) -> bool:
        """Whether snapshots of the two configs can be merged. Journeys need not match:
        merged journey counts are matched by journey name."""
        return (self.kpis == other.kpis and self.dimensions == other.dimensions
                and self.operation_names == other.operation_names)

    @property
    def operation_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.operations)


SPAN_KINDS = ("server", "consumer", "client", "producer", "internal")
_CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")


def _string_tuple(config: Config, name: str) -> tuple[str, ...]:
    result = _sequence(getattr(config, name), name, "strings")
    _require(all(isinstance(v, str) and v for v in result), name,
             "every entry must be a non-empty string")
    object.__setattr__(config, name, result)
    return result


def _validate_processing(config: Config) -> None:
    for flag in ("enabled", "record_local_roots", "record_unsampled", "export_derived"):
        _require(isinstance(getattr(config, flag), bool), flag, "must be true or false")
    kinds = _string_tuple(config, "record_kinds")
    unknown = [k for k in kinds if k not in SPAN_KINDS]
    _require(not unknown, "record_kinds", f"unknown span kinds {unknown}; known: {SPAN_KINDS}")
    _string_tuple(config, "baggage_keys")
    rules = config.page_groups
    if isinstance(rules, Mapping):
        rules = tuple(rules.items())
    pairs: list[Any] = []
    for rule in _sequence(rules, "page_groups", "(pattern, group) pairs or a mapping"):
        if callable(rule):
            pairs.append(rule)
            continue
        _require(isinstance(rule, tuple | list) and len(rule) == 2
                 and all(isinstance(x, str) and x for x in rule), "page_groups",
                 f"each rule must be a (pattern, group) pair of strings, got {rule!r}")
        pattern, group = rule
        if pattern.startswith("re:"):
            try:
                re.compile(pattern[3:])
            # A repeat count past the engine's limit overflows, deep nesting recurses.
            except (re.error, OverflowError, RecursionError) as error:
                _require(False, "page_groups", f"bad regular expression {pattern!r}: {error}")
        pairs.append((pattern, group))
    object.__setattr__(config, "page_groups", tuple(pairs))
    base = config.base_currency
    _require(base is None or (isinstance(base, str) and bool(_CURRENCY_CODE.match(base))),
             "base_currency", f"must be a 3-letter ISO 4217 code like 'EUR', got {base!r}")
    rates = config.currency_rates
    if isinstance(rates, Mapping):
        rates = tuple(rates.items())
    checked: list[tuple[str, float]] = []
    for rate in _sequence(rates, "currency_rates", "(currency, rate) pairs or a mapping"):
        _require(isinstance(rate, tuple | list) and len(rate) == 2, "currency_rates",
                 f"expected (currency, rate) pairs, got {rate!r}")
        code, value = rate
        _require(isinstance(code, str) and bool(_CURRENCY_CODE.match(code)), "currency_rates",
                 f"{code!r} is not a 3-letter currency code")
        _require(_is_number(value) and value > 0, "currency_rates",
                 f"rate for {code} must be a positive number, got {value!r}")
        checked.append((code, float(value)))
    _require(not checked or base is not None, "currency_rates",
             "needs base_currency, the currency the rates convert into")
    object.__setattr__(config, "currency_rates", tuple(checked))
    directory = config.multiproc_dir
    _require(directory is None or (isinstance(directory, str) and bool(directory)),
             "multiproc_dir", f"must be a directory path, got {directory!r}")
    interval = config.multiproc_interval
    _require(_is_number(interval) and 0.05 <= interval <= 3600, "multiproc_interval",
             f"must be seconds in [0.05, 3600], got {interval!r}")
    flush = config.multiproc_flush_interval
    _require(_is_number(flush) and (flush == 0 or 0.01 <= flush <= 3600),
             "multiproc_flush_interval", f"must be 0 or seconds in [0.01, 3600], got {flush!r}")


def _validate_guardrails(config: Config) -> None:
    objective = config.objective_interval
    _require(_is_number(objective) and (objective == 0 or 0.05 <= objective <= 3600),
             "objective_interval", f"must be 0 or seconds in [0.05, 3600], got {objective!r}")
    interval = config.guardrail_interval
    _require(_is_number(interval) and (interval == 0 or 0.05 <= interval <= 3600),
             "guardrail_interval", f"must be 0 or seconds in [0.05, 3600], got {interval!r}")
    alpha = config.guardrail_alpha
    _require(_is_number(alpha) and 0 < alpha <= 0.5, "guardrail_alpha",
             f"must be a probability in (0, 0.5], got {alpha!r}")
    samples = config.guardrail_min_samples
    _require(_is_int(samples) and 2 <= samples <= 1_000_000_000, "guardrail_min_samples",
             f"must be an integer in [2, 1000000000], got {samples!r}")
    effect = config.guardrail_effect
    _require(_is_number(effect) and 0 < effect <= 10, "guardrail_effect",
             f"must be a relative effect in (0, 10], e.g. 0.1 for 10%, got {effect!r}")
    metrics = _string_tuple(config, "guardrail_metrics")
    unknown = [m for m in metrics if m not in GUARDRAIL_METRICS]
    _require(bool(metrics) and not unknown and len(set(metrics)) == len(metrics),
             "guardrail_metrics", f"must name some of {list(GUARDRAIL_METRICS)} once each, "
             f"got {list(metrics)}")
    control = config.guardrail_control
    _require(control is None or (isinstance(control, str) and bool(control)),
             "guardrail_control", f"must be a variant name or None, got {control!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
