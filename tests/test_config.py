"""Configuration is validated once, loudly, with the field named."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from bizops_otel import Config, Kpi


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"max_keys": 0}, "max_keys"),
    ({"max_keys": "10"}, "max_keys"),
    ({"max_keys": True}, "max_keys"),
    ({"window": -1.0}, "window"),
    ({"window": float("nan")}, "window"),
    ({"window_slots": 0}, "window_slots"),
    ({"campaign_limit": 0}, "campaign_limit"),
    ({"campaign_limit": 2.5}, "campaign_limit"),
    ({"campaign_limit": True}, "campaign_limit"),
    ({"kpis": ("revenue",)}, "kpis"),
    ({"kpis": "order_value"}, "kpis"),
    ({"kpis": ("order_value", "order_value")}, "kpis"),
    ({"kpis": (Kpi("x", "a"),) * 1 + tuple(Kpi(f"k{i}", "a") for i in range(16))}, "kpis"),
    ({"dimensions": "bizops.page_group"}, "dimensions"),
    ({"dimensions": ("a", "a")}, "dimensions"),
    ({"dimensions": ("",)}, "dimensions"),
    ({"outcome": "order_value"}, "outcome"),
    ({"outcome": "nope"}, "outcome"),
    ({"max_value_length": 0}, "max_value_length"),
    ({"key_ttl": 10.0, "window": 60.0}, "key_ttl"),
    ({"key_ttl": -1.0}, "key_ttl"),
    ({"key_ttl": "600"}, "key_ttl"),
])
def test_bad_values_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"config: {field}:"):
        Config(**kwargs)  # type: ignore[arg-type]


def test_the_default_key_ttl_follows_the_window() -> None:
    """Unset, key_ttl is five windows, so a longer window alone stays a valid Config (a
    fixed default below it would refuse it); set, it is taken as given."""
    assert Config().key_ttl_seconds == 600.0 and Config().key_ttl_ns == 600 * 10**9
    assert Config(window=601.0).key_ttl_seconds == 3005.0
    assert Config(window=7 * 86400.0).key_ttl_seconds == 30 * 86400.0  # capped
    assert Config(window=60.0, key_ttl=60.0).key_ttl_ns == 60 * 10**9
    assert Config(key_ttl=0).key_ttl_ns == 0


def test_bad_kpi_definitions_are_refused() -> None:
    with pytest.raises(ValueError, match="identifier"):
        Kpi("order value", "bizops.order.value")
    with pytest.raises(ValueError, match="minimum exceeds maximum"):
        Kpi("x", "a", minimum=5.0, maximum=1.0)
    with pytest.raises(ValueError, match="finite"):
        Kpi("x", "a", maximum=float("inf"))


def test_config_is_frozen_and_normalised() -> None:
    config = Config(kpis=["order_value", Kpi("basket", "shop.basket", maximum=100.0)],
                    dimensions=["bizops.page_group"], outcome=None)
    assert config.kpi_names == ("order_value", "basket")
    assert config.dimensions == ("bizops.page_group",)
    assert config.window_slot_ns == 10 * 10**9
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_keys = 5  # type: ignore[misc]
    with pytest.raises(KeyError, match="unknown KPI 'revenue'"):
        config.kpi_index("revenue")


@pytest.mark.parametrize(("buckets", "message"), [
    ((), "at least one bound"),
    ((0.1, 0.05), "increase strictly"),
    ((0.0005, 0.1), "outside the buckets' range"),
    ((0.1, 100.0), "outside the buckets' range"),
    ((0.1, 0.101), "10% resolution"),
    ((0.1, float("nan")), "finite numbers"),
    ("0.1,0.2", "sequence of seconds"),
])
def test_export_buckets_are_checked_against_the_internal_edges(buckets: Any,
                                                                message: str) -> None:
    with pytest.raises(ValueError, match="export_buckets") as error:
        Config(export_buckets=buckets)
    assert message in str(error.value)


def test_export_buckets_come_from_the_environment_too() -> None:
    from bizops_otel import load_config

    config = load_config(environ={"BIZOPS_OTEL_EXPORT_BUCKETS": "0.1, 0.5,2"})
    assert config.export_buckets == (0.1, 0.5, 2.0)
