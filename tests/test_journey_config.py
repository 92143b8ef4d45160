"""Journeys are configured like operations: from code, a TOML file or a variable, and a
bad one fails at configuration time with the field named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bizops_otel import Config, ConfigError, Journey, load_config

PURCHASE = ("landing", "product", "cart", "checkout", "order")


def test_a_journey_from_code_keeps_its_steps_in_order() -> None:
    config = Config(journeys=[Journey("purchase", steps=list(PURCHASE))])
    assert config.journeys == (Journey("purchase", PURCHASE),)
    assert config.journeys[0].steps == PURCHASE


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Journey("purchase", ("landing",)), "needs 2 to 8 steps, got 1"),
    (lambda: Journey("purchase", tuple(f"s{i}" for i in range(9))), "needs 2 to 8 steps"),
    (lambda: Journey("purchase", ("cart", "checkout", "cart")), "steps must be distinct"),
    (lambda: Journey("purchase", ("cart", "")), "step '' must be a page group"),
    (lambda: Journey("purchase", ("cart", "a\x00b")), "must be a page group"),
    (lambda: Journey("purchase", ("cart", 3)), "step 3 must be a page group"),  # type: ignore[arg-type]
    (lambda: Journey("purchase", "landing,cart"), "expected a sequence of page groups"),
    (lambda: Journey("9 lives", ("a", "b")), "journey name '9 lives' must start with"),
    (lambda: Config(journeys=(Journey("a", ("x", "y")), Journey("a", ("y", "z")))),
     "duplicate journey names"),
    (lambda: Config(journeys=tuple(Journey(f"j{i}", ("x", "y")) for i in range(9))),
     "at most 8 journeys"),
    (lambda: Config(journeys=(("x", "y"),)), "expected a Journey, got tuple"),
    (lambda: Config(journeys=(Journey("a", ("x", "y")),), max_sessions=0),
     "journeys need the session table"),
    (lambda: Config(journeys=(Journey("a", ("x", "y")),), dimensions=("bizops.campaign.id",)),
     "journeys need 'bizops.page_group' among the dimensions"),
    (lambda: Config(journeys=(Journey("a", ("x", "y" * 20)),), max_value_length=10),
     "longer than max_value_length"),
])
def test_bad_journeys_name_the_field(make: object, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as raised:
        make()  # type: ignore[operator]
    assert raised.value.field == "journeys"
    assert "config: journeys:" in str(raised.value)


def test_journeys_from_a_variable() -> None:
    config = load_config(environ={
        "BIZOPS_OTEL_JOURNEYS": "purchase: landing, product, cart, checkout, order; "
                                "signup: landing, register"})
    assert config.journeys == (Journey("purchase", PURCHASE),
                               Journey("signup", ("landing", "register")))


def test_a_bad_variable_names_itself() -> None:
    with pytest.raises(ConfigError, match="BIZOPS_OTEL_JOURNEYS: expected 'name: step"):
        load_config(environ={"BIZOPS_OTEL_JOURNEYS": "landing, cart"})
    with pytest.raises(ConfigError, match=r"BIZOPS_OTEL_JOURNEYS: .*steps must be distinct"):
        load_config(environ={"BIZOPS_OTEL_JOURNEYS": "p: cart, cart"})


def test_journeys_from_a_file_beat_the_variable(tmp_path: Path) -> None:
    file = tmp_path / "bizops.toml"
    file.write_text('[[journeys]]\nname = "purchase"\n'
                    'steps = ["landing", "product", "cart", "checkout", "order"]\n')
    config = load_config(environ={"BIZOPS_OTEL_CONFIG": str(file),
                                  "BIZOPS_OTEL_JOURNEYS": "other: a, b"})
    assert config.journeys == (Journey("purchase", PURCHASE),)


@pytest.mark.parametrize(("text", "message"), [
    ('journeys = "purchase"\n', "journeys: expected an array of tables"),
    ("journeys = [1]\n", "journeys: expected a table, got 1"),
    ('[[journeys]]\nname = "p"\nstep = ["a", "b"]\n', "unexpected keyword argument 'step'"),
    ('[[journeys]]\nname = "p"\nsteps = ["a"]\n', "needs 2 to 8 steps"),
])
def test_file_errors_name_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "bizops.toml"
    file.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)) as raised:
        load_config(environ={"BIZOPS_OTEL_CONFIG": str(file)})
    assert raised.value.field == "journeys"
    assert "bizops.toml" in str(raised.value)
