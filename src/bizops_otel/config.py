"""The one frozen configuration object, validated when it is made.

Bad configuration is the user's to fix, so it fails loudly here with the field named;
nothing on the hot path ever raises.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import attributes as attr

MAX_KPIS = 16
MAX_DIMENSIONS = 8
MAX_KEYS_LIMIT = 1_000_000


def _require(condition: bool, field_name: str, message: str) -> None:
    if not condition:
        raise ValueError(f"bizops-otel config: {field_name}: {message}")


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


#: KPIs known by name, so that ``Config(kpis=("order_value", "conversion"))`` works.
BUILTIN_KPIS: dict[str, Kpi] = {
    "order_value": Kpi("order_value", attr.ORDER_VALUE),
    "conversion": Kpi("conversion", attr.CONVERSION, binary=True, minimum=0.0, maximum=1.0),
    "items": Kpi("items", attr.ORDER_ITEMS, maximum=1e6),
}


def _normalise_kpis(kpis: Iterable[Kpi | str]) -> tuple[Kpi, ...]:
    _require(not isinstance(kpis, str | bytes), "kpis", "expected a sequence of KPIs")
    result: list[Kpi] = []
    for item in kpis:
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
    #: Length of the recent window, in seconds.
    window: float = 120.0
    #: Sub-windows in the recent window's ring; the window slides in steps of window/slots.
    window_slots: int = 12
    #: The binary KPI that splits latency histograms by outcome (None: no split).
    outcome: str | None = "conversion"
    max_value_length: int = attr.MAX_VALUE_LENGTH

    def __post_init__(self) -> None:
        object.__setattr__(self, "kpis", _normalise_kpis(self.kpis))
        dims = self.dimensions
        _require(not isinstance(dims, str | bytes), "dimensions",
                 "expected a sequence of attribute keys")
        dims = tuple(dims)
        _require(all(isinstance(d, str) and d for d in dims), "dimensions",
                 "every dimension must be a non-empty attribute key")
        _require(len(set(dims)) == len(dims), "dimensions", f"duplicates in {dims}")
        _require(len(dims) <= MAX_DIMENSIONS, "dimensions", f"at most {MAX_DIMENSIONS}")
        object.__setattr__(self, "dimensions", dims)
        _require(_is_int(self.max_keys) and 1 <= self.max_keys <= MAX_KEYS_LIMIT,
                 "max_keys", f"must be an integer in [1, {MAX_KEYS_LIMIT}], got {self.max_keys!r}")
        _require(_is_int(self.window_slots) and 1 <= self.window_slots <= 1000,
                 "window_slots", f"must be an integer in [1, 1000], got {self.window_slots!r}")
        _require(_is_number(self.window) and 0.001 <= self.window <= 7 * 86400,
                 "window", f"must be seconds in [0.001, 604800], got {self.window!r}")
        _require(_is_int(self.max_value_length) and 1 <= self.max_value_length <= 1024,
                 "max_value_length",
                 f"must be an integer in [1, 1024], got {self.max_value_length!r}")
        if self.outcome is not None:
            by_name = {k.name: k for k in self.kpis}
            _require(self.outcome in by_name, "outcome",
                     f"{self.outcome!r} is not one of the KPIs {sorted(by_name)}")
            _require(by_name[self.outcome].binary, "outcome",
                     f"KPI {self.outcome!r} must be binary to split outcomes")

    @property
    def window_slot_ns(self) -> int:
        """Width of one sub-window in nanoseconds."""
        return max(1, round(self.window * 1e9 / self.window_slots))

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
    def outcome_index(self) -> int:
        """Position of the outcome KPI, or -1."""
        return -1 if self.outcome is None else self.kpi_index(self.outcome)

    def same_shape(self, other: Config) -> bool:
        """Whether snapshots of the two configs can be merged."""
        return self.kpis == other.kpis and self.dimensions == other.dimensions


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
