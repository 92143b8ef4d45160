"""Configuration from arguments, a TOML file and BIZOPS_OTEL_* variables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bizops_otel import Config, ConfigError, Kpi, load_config


def test_environment_variables_fill_the_config() -> None:
    config = load_config(environ={
        "BIZOPS_OTEL_MAX_KEYS": "50",
        "BIZOPS_OTEL_WINDOW": "60",
        "BIZOPS_OTEL_KPIS": "order_value, conversion",
        "BIZOPS_OTEL_PAGE_GROUPS": "/product/*=product;re:^/api/v[0-9]+/cart=cart",
        "BIZOPS_OTEL_BASE_CURRENCY": "EUR",
        "BIZOPS_OTEL_CURRENCY_RATES": "USD=0.92, GBP=1.17",
        "BIZOPS_OTEL_RECORD_KINDS": "server",
        "BIZOPS_OTEL_ENABLED": "yes",
        "BIZOPS_OTEL_OUTCOME": "conversion",
        "BIZOPS_OTEL_NO_EXTENSIONS": "1",  # not a Config field, and not an error
        "OTHER": "ignored",
    })
    assert config.max_keys == 50 and config.window == 60.0
    assert config.kpi_names == ("order_value", "conversion")
    assert config.page_groups == (("/product/*", "product"), ("re:^/api/v[0-9]+/cart", "cart"))
    assert config.currency_rates == (("USD", 0.92), ("GBP", 1.17))
    assert config.record_kinds == ("server",)


@pytest.mark.parametrize(("environ", "message"), [
    ({"BIZOPS_OTEL_MAXKEYS": "5"}, "unknown variable BIZOPS_OTEL_MAXKEYS"),
    ({"BIZOPS_OTEL_MAX_KEYS": "lots"}, "BIZOPS_OTEL_MAX_KEYS"),
    ({"BIZOPS_OTEL_ENABLED": "maybe"}, "BIZOPS_OTEL_ENABLED"),
    ({"BIZOPS_OTEL_CURRENCY_RATES": "USD"}, "BIZOPS_OTEL_CURRENCY_RATES"),
    ({"BIZOPS_OTEL_CURRENCY_RATES": "USD=0.9"}, "currency_rates: needs base_currency"),
    ({"BIZOPS_OTEL_BASE_CURRENCY": "euro"}, "base_currency"),
    ({"BIZOPS_OTEL_RECORD_KINDS": "server,weird"}, "record_kinds"),
    ({"BIZOPS_OTEL_PAGE_GROUPS": "re:[=x"}, "page_groups: bad regular expression"),
    ({"BIZOPS_OTEL_CONFIG": "/nonexistent/bizops.toml"}, "cannot read"),
])
def test_bad_settings_name_the_culprit(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        load_config(environ=environ)


def test_precedence_arguments_over_file_over_environment(tmp_path: Path) -> None:
    file = tmp_path / "bizops.toml"
    file.write_text('max_keys = 300\nwindow = 30.0\n[[kpis]]\nname = "basket"\n'
                    'attribute = "shop.basket"\nmaximum = 50.0\n')
    environ = {"BIZOPS_OTEL_CONFIG": str(file), "BIZOPS_OTEL_MAX_KEYS": "100",
               "BIZOPS_OTEL_WINDOW": "90", "BIZOPS_OTEL_WINDOW_SLOTS": "6",
               "BIZOPS_OTEL_OUTCOME": ""}
    config = load_config(environ=environ, window=15.0)
    assert config.max_keys == 300  # the file beats the environment
    assert config.window == 15.0  # the argument beats both
    assert config.window_slots == 6  # the environment fills the rest
    assert config.kpis == (Kpi("basket", "shop.basket", maximum=50.0),)


def test_file_errors_are_clear(tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("max_key = 3\n")
    with pytest.raises(ConfigError, match=r"unknown keys \['max_key'\]"):
        load_config(environ={"BIZOPS_OTEL_CONFIG": str(unknown)})
    broken = tmp_path / "broken.toml"
    broken.write_text("max_keys = \n")
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        load_config(environ={"BIZOPS_OTEL_CONFIG": str(broken)})
    with pytest.raises(ConfigError, match="unknown settings"):
        load_config(environ={}, max_kyes=3)


def test_a_misspelt_variable_names_the_one_it_most_likely_meant() -> None:
    with pytest.raises(ConfigError, match="did you mean BIZOPS_OTEL_PAGE_GROUPS"):
        load_config(environ={"BIZOPS_OTEL_PAGE_GROUP": "/p/*=p"})
    with pytest.raises(ConfigError, match="did you mean BIZOPS_OTEL_MAX_KEYS"):
        load_config(environ={"BIZOPS_OTEL_MAXKEYS": "10"})
    with pytest.raises(ConfigError, match=r"did you mean: page_group → page_groups"):
        load_config(environ={}, page_group=())
    with pytest.raises(ConfigError) as unrelated:
        load_config(environ={"BIZOPS_OTEL_COLOUR": "blue"})
    assert "did you mean" not in str(unrelated.value)


def test_the_outcome_follows_the_kpis() -> None:
    assert Config().outcome == "conversion"
    assert Config(kpis=("order_value",)).outcome is None
    signup = Kpi("signup", "app.signup", binary=True)
    assert Config(kpis=("order_value", signup)).outcome == "signup"
    assert Config(kpis=("order_value", signup, "conversion")).outcome == "conversion"
    assert Config(kpis=("order_value", "conversion"), outcome=None).outcome is None
    with pytest.raises(ValueError, match="outcome"):
        Config(kpis=("order_value",), outcome="conversion")
    assert load_config(environ={"BIZOPS_OTEL_KPIS": "order_value,items"}).outcome is None
