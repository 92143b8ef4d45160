"""Build the one :class:`Config` from arguments, a TOML file and environment variables.

Precedence: constructor arguments, then the file named by ``BIZOPS_OTEL_CONFIG``, then
``BIZOPS_OTEL_*`` variables, then the defaults. An unknown key or a bad value fails here,
at configuration time, with the key named. OTLP endpoints and protocols are not ours:
they come from the standard ``OTEL_EXPORTER_OTLP_*`` variables.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .config import Config, Journey, Kpi, Operation
from .config import ConfigError as ConfigError  # defined beside the checks that raise it

PREFIX = "BIZOPS_OTEL_"
#: Variables read elsewhere (the build, the import switch, later subsystems).
NOT_CONFIG_FIELDS = frozenset({"CONFIG", "NO_EXTENSIONS", "REQUIRE_EXTENSIONS", "QUIET"})


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _pairs(text: str, separator: str, value: Callable[[str], Any]) -> tuple[tuple[str, Any], ...]:
    """``"a=1,b=2"`` (or ``;``-separated) into pairs; the last ``=`` splits each pair."""
    pairs = []
    for part in text.split(separator):
        if not part.strip():
            continue
        if "=" not in part:
            raise ValueError(f"expected name=value, got {part.strip()!r}")
        name, raw = part.rsplit("=", 1)
        pairs.append((name.strip(), value(raw.strip())))
    return tuple(pairs)


_OPERATION_NUMBERS = {"threshold", "target"}
_OPERATION_TEXTS = {"span_name", "route", "page_group", "method"}


def _operations(text: str) -> tuple[Operation, ...]:
    """``name: field=value, field=value; name: ...`` into Operations: ``threshold`` and
    ``target`` are numbers, ``kind`` a span kind or ``any``, ``errors`` true or false,
    ``attributes.KEY=VALUE`` a condition on an attribute; values hold no ``,`` or ``;``."""
    operations = []
    for part in text.split(";"):
        if not part.strip():
            continue
        name, colon, rest = part.partition(":")
        if not colon:
            raise ValueError(f"expected 'name: field=value, ...', got {part.strip()!r}")
        fields: dict[str, Any] = {}
        conditions: list[tuple[str, str]] = []
        for item in rest.split(","):
            if not item.strip():
                continue
            key, equals, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not equals:
                raise ValueError(f"operation {name.strip()!r}: expected field=value, "
                                 f"got {item.strip()!r}")
            if key in _OPERATION_NUMBERS:
                fields[key] = float(value)
            elif key in _OPERATION_TEXTS:
                fields[key] = value
            elif key == "kind":
                fields[key] = None if value.lower() == "any" else value.lower()
            elif key == "errors":
                fields[key] = _bool(value)
            elif key.startswith("attributes.") and len(key) > len("attributes."):
                conditions.append((key[len("attributes."):], value))
            else:
                raise ValueError(f"operation {name.strip()!r}: unknown field {key!r}; known: "
                                 "threshold, target, span_name, route, page_group, method, "
                                 "kind, errors, attributes.KEY")
        missing = sorted(_OPERATION_NUMBERS - set(fields))
        if missing:
            raise ValueError(f"operation {name.strip()!r}: needs {', '.join(missing)}")
        operations.append(Operation(name.strip(), attributes=tuple(conditions), **fields))
    return tuple(operations)


def _journeys(text: str) -> tuple[Journey, ...]:
    """``name: step, step, ...; name: ...`` into Journeys, steps in order; page groups
    hold no ``,`` or ``;`` here (a configuration file can name any)."""
    journeys = []
    for part in text.split(";"):
        if not part.strip():
            continue
        name, colon, rest = part.partition(":")
        if not colon:
            raise ValueError(f"expected 'name: step, step, ...', got {part.strip()!r}")
        journeys.append(Journey(name.strip(), steps=_list(rest)))
    return tuple(journeys)


def _optional_text(text: str) -> str | None:
    return text.strip() or None


#: How each environment variable's text becomes a Config field value.
ENVIRONMENT: dict[str, Callable[[str], Any]] = {
    "ENABLED": _bool,
    "KPIS": _list,
    "DIMENSIONS": _list,
    "MAX_KEYS": int,
    "ADMISSION_COUNT": int,
    "ADMISSION_WINDOW": float,
    "KEY_TTL": float,
    "WINDOW": float,
    "WINDOW_SLOTS": int,
    "OUTCOME": _optional_text,
    "MAX_VALUE_LENGTH": int,
    "RECORD_KINDS": _list,
    "RECORD_LOCAL_ROOTS": _bool,
    "BAGGAGE_KEYS": _list,
    "PAGE_GROUPS": lambda text: _pairs(text, ";", str),
    "BASE_CURRENCY": _optional_text,
    "CURRENCY_RATES": lambda text: _pairs(text, ",", float),
    "RECORD_UNSAMPLED": _bool,
    "MULTIPROC_DIR": _optional_text,
    "MULTIPROC_INTERVAL": float,
    "MULTIPROC_FLUSH_INTERVAL": float,
    "MAX_SESSIONS": int,
    "SESSION_TIMEOUT": float,
    "CAMPAIGN_INTERVAL": float,
    "CAMPAIGN_LIMIT": int,
    "GUARDRAIL_INTERVAL": float,
    "OBJECTIVE_INTERVAL": float,
    "GUARDRAIL_ALPHA": float,
    "GUARDRAIL_MIN_SAMPLES": int,
    "GUARDRAIL_EFFECT": float,
    "GUARDRAIL_METRICS": _list,
    "GUARDRAIL_CONTROL": _optional_text,
    "EXPORT_BUCKETS": lambda text: tuple(float(part) for part in _list(text)),
    "EXPORT_DERIVED": _bool,
    "PROMETHEUS_PORT": lambda text: None if not text.strip() else int(text),
    "PROMETHEUS_ADDR": str.strip,
    "OPERATIONS": _operations,
    "JOURNEYS": _journeys,
}

_FIELDS = {f.name for f in dataclasses.fields(Config)}
assert {name.lower() for name in ENVIRONMENT} == _FIELDS, "every field has a variable"


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """Config fields set by ``BIZOPS_OTEL_*`` variables."""
    values: dict[str, Any] = {}
    for variable, text in environ.items():
        if not variable.startswith(PREFIX):
            continue
        name = variable[len(PREFIX):]
        if name in NOT_CONFIG_FIELDS:
            continue
        parse = ENVIRONMENT.get(name)
        if parse is None:
            known = ", ".join(PREFIX + n for n in sorted(ENVIRONMENT))
            hint = _nearest(name, [*ENVIRONMENT, *NOT_CONFIG_FIELDS])
            raise ConfigError(f"bizops-otel config: unknown variable {variable}"
                              + (f"; did you mean {PREFIX}{hint}?" if hint else "")
                              + f" Known: {known}")
        try:
            values[name.lower()] = parse(text)
        except ValueError as error:
            raise ConfigError(f"bizops-otel config: {variable}: {error}",
                              name.lower()) from None
    return values


def _nearest(name: str, known: list[str]) -> str | None:
    """The known name a misspelt one most likely meant (a letter dropped or swapped)."""
    found = difflib.get_close_matches(name.upper(), [k.upper() for k in known], n=1,
                                      cutoff=0.75)
    return found[0] if found else None


def _suggestions(unknown: list[str]) -> str:
    hints = [f"{name} → {hint.lower()}" for name in unknown
             if (hint := _nearest(name, sorted(_FIELDS))) is not None]
    return f" (did you mean: {', '.join(hints)}?)" if hints else ""


def _kpi_from_file(item: Any, location: Path) -> Kpi | str:
    if isinstance(item, str):
        return item
    if isinstance(item, Mapping):
        try:
            return Kpi(**item)
        except TypeError as error:
            raise ConfigError(f"bizops-otel config: {location}: kpis: {error}",
                              "kpis") from None
        except ConfigError as error:
            raise ConfigError(f"{error} (from {location})", "kpis") from None
    raise ConfigError(f"bizops-otel config: {location}: kpis: expected a name or a table, "
                      f"got {item!r}", "kpis")


def _operation_from_file(item: Any, location: Path) -> Operation:
    if not isinstance(item, Mapping):
        raise ConfigError(f"bizops-otel config: {location}: operations: expected a table, "
                          f"got {item!r}", "operations")
    fields = dict(item)
    if fields.get("kind") == "any":
        fields["kind"] = None
    try:
        return Operation(**fields)
    except TypeError as error:
        raise ConfigError(f"bizops-otel config: {location}: operations: {error}",
                          "operations") from None
    except ConfigError as error:
        raise ConfigError(f"{error} (from {location})", "operations") from None


def _journey_from_file(item: Any, location: Path) -> Journey:
    if not isinstance(item, Mapping):
        raise ConfigError(f"bizops-otel config: {location}: journeys: expected a table, "
                          f"got {item!r}", "journeys")
    try:
        return Journey(**item)
    except TypeError as error:
        raise ConfigError(f"bizops-otel config: {location}: journeys: {error}",
                          "journeys") from None
    except ConfigError as error:
        raise ConfigError(f"{error} (from {location})", "journeys") from None


def from_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Config fields from a TOML file: top-level keys, or a ``[bizops_otel]`` table."""
    location = Path(path)
    try:
        text = location.read_text(encoding="utf-8")
    except (OSError, ValueError) as error:  # ValueError: not UTF-8, or a NUL in the path
        raise ConfigError(f"bizops-otel config: cannot read {location}: {error}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"bizops-otel config: {location}: {error}") from None
    table = document.get("bizops_otel", document)
    if not isinstance(table, dict):
        raise ConfigError(f"bizops-otel config: {location}: bizops_otel must be a table, "
                          f"got {table!r}")
    unknown = sorted(set(table) - _FIELDS)
    if unknown:
        raise ConfigError(f"bizops-otel config: {location}: unknown keys {unknown}"
                          + _suggestions(unknown) + f"; known: {sorted(_FIELDS)}")
    values = dict(table)
    if "kpis" in values:
        if not isinstance(values["kpis"], list):
            raise ConfigError(f"bizops-otel config: {location}: kpis: expected an array of "
                              f"names and tables, got {values['kpis']!r}", "kpis")
        values["kpis"] = tuple(_kpi_from_file(k, location) for k in values["kpis"])
    if "operations" in values:
        if not isinstance(values["operations"], list):
            raise ConfigError(f"bizops-otel config: {location}: operations: expected an "
                              f"array of tables, got {values['operations']!r}", "operations")
        values["operations"] = tuple(_operation_from_file(o, location)
                                     for o in values["operations"])
    if "journeys" in values:
        if not isinstance(values["journeys"], list):
            raise ConfigError(f"bizops-otel config: {location}: journeys: expected an "
                              f"array of tables, got {values['journeys']!r}", "journeys")
        values["journeys"] = tuple(_journey_from_file(j, location) for j in values["journeys"])
    if isinstance(values.get("page_groups"), list):
        # Config checks each rule; only arrays become pairs here.
        values["page_groups"] = tuple(tuple(rule) if isinstance(rule, list) else rule
                                      for rule in values["page_groups"])
    return values


def load_config(*, environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
    """The Config for this process: arguments over file over environment over defaults."""
    env = os.environ if environ is None else environ
    unknown = sorted(set(overrides) - _FIELDS)
    if unknown:
        raise ConfigError(f"bizops-otel config: unknown settings {unknown}"
                          + _suggestions(unknown) + f"; known: {sorted(_FIELDS)}")
    values = from_environment(env)
    # Where each value came from, so that a bad one is reported with its variable or file.
    sources = {name: PREFIX + name.upper() for name in values}
    file = env.get(PREFIX + "CONFIG", "").strip()
    if file:
        from_toml = from_file(file)
        values.update(from_toml)
        sources.update(dict.fromkeys(from_toml, file))
    values.update(overrides)
    for name in overrides:
        sources.pop(name, None)
    try:
        return Config(**values)
    except ConfigError as error:
        source = sources.get(error.field or "")
        if source is None:
            raise
        raise ConfigError(f"{error} (from {source})", error.field) from None
