"""The documentation stays true: docstring examples, and every code block of the README and
``docs/``.

Each fenced block is preceded by a ``<!-- doc-check: KIND [ARGUMENT] -->`` comment that
says how it is checked, and a block without one fails the suite:

- ``run ID``: Python run in a fresh interpreter between a prelude and a postlude (below,
  by ID) that give it what the prose assumes and assert what it did;
- ``in PATH``: Python found line for line in an example that a test runs;
- ``command [TEST]``: shell commands whose variables must load through the settings parser,
  whose ``make`` targets must exist, whose ``bizops-otel`` arguments must parse, and whose
  variables and arguments must all appear in TEST, the test that runs them;
- ``toml``: loads into a ``Config``; ``promql``: each expression passes ``promtool``, and
  every metric it names is exported or recorded; ``tree``: every path listed exists;
  ``output demo-view``: the demo view's fixed lines are the ones the renderer writes.
"""

from __future__ import annotations

import doctest
import os
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bizops_otel import config, stats
from bizops_otel.settings import from_environment, load_config
from bizops_otel.span import enrich

from .metric_names import exported_and_recorded
from .processes import free_port
from .tools import require

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("module", [config, stats, enrich])
def test_module_examples(module: Any) -> None:
    result = doctest.testmod(module)
    assert result.failed == 0


def test_aggregator_example(Aggregator: Any) -> None:
    finder = doctest.DocTestFinder()
    tests = finder.find(Aggregator, "Aggregator", globs={"Aggregator": Aggregator})
    examples = sum(len(t.examples) for t in tests)
    assert examples >= 4
    runner = doctest.DocTestRunner()
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    language: str
    kind: str
    argument: str
    text: str

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


_MARK = re.compile(r"<!-- doc-check: (\S+)\s*(.*?)\s*-->")


def code_blocks(page: Path) -> list[Block]:
    lines = page.read_text().splitlines()
    blocks, index = [], 0
    while index < len(lines):
        opening = lines[index].strip()
        if not opening.startswith("```"):
            index += 1
            continue
        indent = len(lines[index]) - len(lines[index].lstrip())
        close = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
        mark = _MARK.fullmatch(lines[index - 1].strip()) if index else None
        body = textwrap.dedent("\n".join(line[indent:] for line in lines[index + 1:close]))
        blocks.append(Block(page, index + 1, opening[3:], mark.group(1) if mark else "",
                            mark.group(2) if mark else "", body + "\n"))
        index = close + 1
    return blocks


BLOCKS = [block for page in PAGES for block in code_blocks(page)]


def of_kind(kind: str) -> list[Any]:
    return [pytest.param(b, id=b.name) for b in BLOCKS if b.kind == kind]


KINDS = {"run", "in", "command", "toml", "promql", "tree", "output"}


def test_every_code_block_says_how_it_is_checked() -> None:
    assert len(PAGES) >= 7 and len(BLOCKS) >= 14
    unchecked = [b.name for b in BLOCKS if b.kind not in KINDS]
    assert not unchecked, f"blocks without a known doc-check mark: {unchecked}"
    unnamed = [b.name for b in BLOCKS if not b.language]
    assert not unnamed, f"blocks without a language: {unnamed}"


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_between_pages_resolves() -> None:
    links = 0
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            file, _, anchor = target.partition("#")
            path = (page.parent / file).resolve() if file else page
            assert path.exists(), f"{page.name}: {target}"
            if anchor:
                headings = re.findall(r"^#+ (.*)$", path.read_text(), re.M)
                assert anchor in {_anchor(h) for h in headings}, f"{page.name}: {target}"
            links += 1
    assert links >= 10


# What each ``run`` block assumes (prelude) and what it must have done (postlude).
_SPAN_SETUP = """
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind
import bizops_otel
"""
RUNS: dict[str, tuple[str, str]] = {
    "install-global": (_SPAN_SETUP + """
from opentelemetry import trace
trace.set_tracer_provider(TracerProvider())
""", """
with trace.get_tracer("t").start_as_current_span("GET /cart", kind=SpanKind.SERVER,
                                                   attributes={"http.route": "/cart"}):
    pass
assert bizops_otel.installed() is bizops
assert bizops.snapshot().total().count == 1
"""),
    "context-api": (_SPAN_SETUP + """
provider = TracerProvider()
bizops = bizops_otel.install(provider, campaign_interval=0, admission_count=1)
tracer = provider.get_tracer("t")
request = tracer.start_as_current_span("GET /checkout", kind=SpanKind.SERVER)
request.__enter__()
""", """
request.__exit__(None, None, None)
(key,) = list(bizops.snapshot())
assert key == ("checkout", "spring"), key
stats = bizops.snapshot()[key]
assert stats.count == 1
assert stats.mean("order_value") == 129.90
assert stats.mean("items") == 3 and stats.conversion_rate() == 1
"""),
    "config-in-code": ("", """
assert config.outcome is None and config.max_keys == 5000
assert config.kpi_names == ("order_value", "basket_size")
from bizops_otel.span.enrich import PageGroups
assert PageGroups(config.page_groups).match("/api/v2/cart/{id}", None, "") == "cart"
"""),
    "aggregator": ("""
import numpy
span_attributes = {"bizops.page_group": "checkout", "bizops.order.value": 80.0,
                   "bizops.conversion": True}
start_ns, end_ns = 1_700_000_000_000_000_000, 1_700_000_000_300_000_000
latencies = numpy.array([0.2, 0.4, 0.6])
values = numpy.array([10.0, 20.0, 30.0])
from bizops_otel import Aggregator as _Other, Config as _Shape
_other = _Other(_Shape(max_keys=5000))
_other.record_many(("checkout", ""), [0.5, 0.7], {"order_value": [40.0, 50.0]})
other_snapshot = _other.snapshot()
""", """
assert stats.count == 1 and snapshot["checkout", ""].count == 3
assert snapshot.overflow.count == 2  # the first sightings of both keys
assert abs(snapshot["checkout", ""].pearson("order_value").r) <= 1
assert snapshot.total().count == 6
assert snapshot.merge(other_snapshot)["checkout", ""].count == 5
"""),
    "objectives": ("", """
assert (objective.total, objective.good) == (4, 3)
assert objective.compliance == 0.75
assert abs(objective.budget_left + 24) < 1e-9 and abs(objective.burn_rate - 25) < 1e-9
assert (objective.recent_total, objective.recent_good) == (4, 3)
"""),
    "objective-alerts": ("""
from types import SimpleNamespace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode
import bizops_otel
from bizops_otel import Operation
provider = TracerProvider()
bizops = bizops_otel.install(provider, campaign_interval=0, objective_interval=3600,
    operations=(Operation("checkout", threshold=1.0, target=0.99, route="/checkout"),))
recommendations = SimpleNamespace(enabled=True)
""", """
import time
tracer = provider.get_tracer("shop")
start = time.time_ns()
for minute in range(8):  # every checkout fails from the second minute on
    for _ in range(20):
        span = tracer.start_span("POST /checkout", kind=SpanKind.SERVER, start_time=start,
                                 attributes={"http.route": "/checkout"})
        if minute >= 1:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=start + 100_000_000)
    bizops.objectives.check(now=(minute + 1) * 60.0)  # a simulated minute apart
assert recommendations.enabled is False
assert [alert.firing for alert in bizops.objectives.alerts] == [True]
bizops.shutdown()
"""),
    "cardinality-limits": ("""
import io
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
exporter = ConsoleMetricExporter(out=io.StringIO())
""", """
from opentelemetry.sdk.metrics import MeterProvider
from bizops_otel import Aggregator, Config
from bizops_otel.export.otel import OTelMetrics
metrics = OTelMetrics(MeterProvider(metric_readers=[reader]), Aggregator().snapshot, Config())
assert metrics.cardinality_limit == 200_000
"""),
    "collector": (_SPAN_SETUP + """
provider = TracerProvider()
bizops = bizops_otel.install(provider, campaign_interval=0, admission_count=1)
with provider.get_tracer("t").start_as_current_span(
        "GET /cart", kind=SpanKind.SERVER, attributes={"http.route": "/cart"}):
    pass
""", """
import urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{PORT}/metrics").read().decode()
from prometheus_client.parser import text_string_to_metric_families
requests = {s.labels["bizops_page_group"]: s.value
            for f in text_string_to_metric_families(body) for s in f.samples
            if s.name == "bizops_requests_total"}
assert requests == {"/cart": 1.0}, requests
"""),
    "guardrails": (_SPAN_SETUP + """
import logging

class Flags:
    disabled = []

    def disable(self, flag, variant):
        self.disabled.append((flag, variant))

flags, log = Flags(), logging.getLogger("shop")
provider = TracerProvider()
""", """
import numpy
rng = numpy.random.default_rng(1)
for variant, delay in (("A", 0.0), ("B", 0.2)):
    for page, median in (("product", 0.4), ("checkout", 0.7)):
        for _ in range(2):  # a key is admitted once its values recur
            bizops.aggregator.record_many((page, "new-checkout", variant),
                                          rng.lognormal(numpy.log(median), 0.5, 300) + delay,
                                          {"conversion": rng.random(300) < 0.4})
bizops.variants.check()  # what the monitor's thread does every few seconds
(alert,) = bizops.variant_alerts()
assert alert.metric == "latency" and alert.interval[0] > 0, alert
assert flags.disabled == [("new-checkout", "B")]
assert bizops.alerts.errors == {"campaign": 0, "variant": 0, "objective": 0}
bizops.shutdown()
"""),
    "journeys": ("""
import time
import numpy
from opentelemetry.sdk.trace import TracerProvider
provider = TracerProvider()


class Shop:
    # 5,000 sessions of the shop's past hour, over 90 minutes ago: 60% go on at every
    # step but the cart, where a request slower than 0.4 s loses three in four.

    def replay(self, bizops):
        rng = numpy.random.default_rng(3)
        steps = ("landing", "product", "cart", "checkout", "order")
        end = time.time_ns() - 90 * 60 * 10**9
        for s in range(5000):
            clock = end - int(rng.integers(0, 3600 * 10**9))
            for k, step in enumerate(steps):
                latency = float(rng.lognormal(numpy.log(0.4), 0.6))
                bizops.aggregator.record((step, ""), latency, {}, end_ns=clock,
                                         session=f"s{s}")
                goes_on = (0.8 if latency < 0.4 else 0.25) if step == "cart" else 0.6
                if k == len(steps) - 1 or rng.random() >= goes_on:
                    break
                clock += int(rng.lognormal(numpy.log(20 + 10 * k), 0.8) * 1e9)


shop = Shop()
""", """
assert purchase.sessions > 4900 and purchase.completed > 400
drop = purchase.biggest_drop()
assert drop.step.name == "cart" and drop.latency_explains, drop
assert cart.latency_correlation < -0.3 and abs(purchase.steps[1].latency_correlation) < 0.1
assert cart.continued + cart.dropped == cart.entered
import pathlib
page = pathlib.Path("docs/analytics.md").read_text()
shown = page.split("doc-check: output journeys -->")[1].split("```")[1].splitlines()[1:]
printed = [*str(purchase).splitlines(), str(drop)]
assert shown == printed, printed
bizops.shutdown()
"""),
}


def _run_python(script: str) -> None:
    environment = {**os.environ, "BIZOPS_OTEL_QUIET": "1", "PYTHONHASHSEED": "0"}
    for name in [n for n in environment if n.startswith(("OTEL_", "BIZOPS_OTEL_C"))]:
        del environment[name]
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=environment, timeout=120, cwd=ROOT)
    assert result.returncode == 0, f"{script}\n--- stderr:\n{result.stderr}"


@pytest.mark.parametrize("block", of_kind("run"))
def test_python_blocks_run(block: Block) -> None:
    prelude, postlude = RUNS[block.argument]
    code = block.text
    port = free_port()
    # The one substitution: a fixed port becomes a free one on loopback, as tests must.
    code = code.replace("start_http_server(9464)",
                        f"start_http_server({port}, addr='127.0.0.1')")
    _run_python(f"PORT = {port}\n{prelude}\n{code}\n{postlude}")


def test_every_run_block_has_its_checks() -> None:
    used = {b.argument for b in BLOCKS if b.kind == "run"}
    assert used == set(RUNS)


@pytest.mark.parametrize("block", of_kind("in"))
def test_python_blocks_are_in_a_tested_example(block: Block) -> None:
    source = (ROOT / block.argument).read_text()
    example = [line.strip() for line in source.splitlines()]
    lines = [line.strip() for line in block.text.splitlines() if line.strip()]
    missing = [line for line in lines if line not in example]
    assert not missing, f"not in {block.argument}: {missing}"
    assert block.argument in (ROOT / "tests" / "test_examples.py").read_text() or (
        Path(block.argument).parent.name in (ROOT / "tests" / "test_examples.py").read_text())


def _commands(text: str) -> list[list[str]]:
    joined = re.sub(r"\\\n\s*", " ", text)
    commands = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            commands.append(words)
    return commands


def _make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))


def _test_source(reference: str) -> str:
    file, _, name = reference.partition("::")
    source = (ROOT / file).read_text()
    match = re.search(rf"^def {name}\(.*?(?=^def |\Z)", source, re.S | re.M)
    assert match, f"{reference} does not exist"
    return match.group(0)


@pytest.mark.parametrize("block", of_kind("command"))
def test_commands_parse_and_are_run_by_their_test(block: Block) -> None:
    from bizops_otel.cli import _parser

    for words in _commands(block.text):
        assignments = {}
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
            name, _, value = words.pop(0).partition("=")
            assignments[name] = value
        bizops = {k: v for k, v in assignments.items() if k.startswith("BIZOPS_OTEL_")}
        from_environment(bizops)  # raises, naming the variable, on anything it refuses
        load_config(environ=bizops)
        program, arguments = words[0], words[1:]
        if program == "make":
            targets = {a for a in arguments if "=" not in a}
            assert targets <= _make_targets(), f"{block.name}: {targets}"
            for assignment in (a for a in arguments if a.startswith("DEMO_ARGS=")):
                _parser().parse_args(["demo", *shlex.split(assignment.partition("=")[2])])
        elif program == "bizops-otel":
            _parser().parse_args(arguments)
        else:
            assert block.argument, f"{block.name}: {program} needs the test that runs it"
            source = _test_source(block.argument)
            for name in assignments:
                assert name in source, f"{block.name}: {name} not in {block.argument}"
            run = [a for a in arguments if a != "python"]
            for argument in run:
                if argument.startswith("127.0.0.1:"):
                    argument = "127.0.0.1:"  # the test picks a free port
                assert argument in source or argument in _example_command(block), (
                    f"{block.name}: {argument!r} not in {block.argument}")
            assert program == "opentelemetry-instrument" and "opentelemetry-instrument" in (
                source + _example_command(block))


def _example_command(block: Block) -> str:
    """The module-level source of the test file, where shared command lines are kept."""
    return (ROOT / block.argument.partition("::")[0]).read_text()


def _inline_commands() -> list[tuple[str, str]]:
    pattern = re.compile(r"`((?:make |bizops-otel |python |pip install |OPENBLAS_NUM_THREADS=1 )"
                         r"[^`]*|BIZOPS_OTEL_[A-Z_]+=[^`]*)`")
    return [(page.name, match) for page in PAGES for match in pattern.findall(page.read_text())]


def test_inline_commands_in_the_prose_parse() -> None:
    """Commands written inline: variables the settings accept (or the build's own), make
    targets that exist, demo and report arguments the parser takes, benchmark scripts and
    extras that exist."""
    from bizops_otel.cli import _parser

    build_flags = {"BIZOPS_OTEL_NO_EXTENSIONS", "BIZOPS_OTEL_REQUIRE_EXTENSIONS",
                   "BIZOPS_OTEL_QUIET"}
    extras = re.findall(r"^([\w-]+) = \[", (ROOT / "pyproject.toml").read_text(), re.M)
    commands = _inline_commands()
    assert len(commands) >= 15
    for page, command in commands:
        words = shlex.split(command)
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
            name, _, value = words.pop(0).partition("=")
            if name.startswith("BIZOPS_OTEL_") and name not in build_flags:
                load_config(environ={name: value})
        if not words:
            continue
        if words[0] == "make":
            assert set(w for w in words[1:] if "=" not in w) <= _make_targets(), command
            for assignment in (w for w in words[1:] if w.startswith("DEMO_ARGS=")):
                _parser().parse_args(["demo", *shlex.split(assignment.partition("=")[2])])
        elif words[0] == "bizops-otel":
            _parser().parse_args([w.replace("PATH", "state.npz") for w in words[1:]])
        elif words[:2] == ["python", "-m"]:
            assert words[2] == "bizops_otel"
            _parser().parse_args(words[3:])
        elif words[0] == "python":
            assert (ROOT / words[1]).is_file(), f"{page}: {command}"
        elif words[:2] == ["pip", "install"]:
            extra = re.fullmatch(r"bizops-otel\[(\w+)\]", words[2])
            assert extra and extra.group(1) in extras, f"{page}: {command}"


@pytest.mark.parametrize("block", of_kind("toml"))
def test_toml_blocks_load(block: Block, tmp_path: Path) -> None:
    file = tmp_path / "bizops.toml"
    file.write_text(block.text)
    loaded = load_config(environ={"BIZOPS_OTEL_CONFIG": str(file)})
    assert loaded.base_currency == "EUR" and loaded.max_keys == 5000
    assert "basket_size" in loaded.kpi_names
    from bizops_otel.span.enrich import PageGroups

    assert PageGroups(loaded.page_groups).match("/api/v1/cart", None, "") == "cart"
    assert loaded.operation_names == ("authorise_order", "checkout")
    assert loaded.operations[0].method == "POST" and not loaded.operations[1].errors


@pytest.mark.parametrize("block", of_kind("promql"))
def test_promql_blocks_parse_and_name_real_series(block: Block, tmp_path: Path) -> None:
    promtool = require("promtool")
    expressions, current = [], []
    for line in block.text.splitlines():
        if line.startswith("#") or not line.strip():
            if current:
                expressions.append(" ".join(current))
            current = []
        else:
            current.append(line.strip())
    if current:
        expressions.append(" ".join(current))
    assert len(expressions) >= 5
    rules = "groups:\n- name: docs\n  rules:\n" + "".join(
        f"  - record: docs:expression_{i}\n    expr: {expr!r}\n"
        for i, expr in enumerate(expressions))
    (tmp_path / "docs.yml").write_text(rules)
    result = subprocess.run([promtool, "check", "rules", str(tmp_path / "docs.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    known = exported_and_recorded()
    for expression in expressions:
        # Series names only: label matchers and grouping lists name labels.
        series = re.sub(r"\{.*?\}|\b(by|without)\s*\(.*?\)", "", expression)
        for name in re.findall(r"\b(bizops[:_][\w:]+)", series):
            assert name in known, f"{name} is neither exported nor recorded"


@pytest.mark.parametrize("block", of_kind("tree"))
def test_every_path_in_the_layout_exists(block: Block) -> None:
    """Entries sit at two spaces a level, a description after two or more spaces; lines
    indented past the entries' column continue a description."""
    checked, folders = 0, []
    for line in block.text.splitlines():
        indent = len(line) - len(line.lstrip())
        if not line.strip() or indent >= 20:
            continue
        entry = re.split(r"\s{2,}", line.strip())[0]
        depth = indent // 2
        folders = folders[:depth]
        for name in re.split(r",\s*", entry):
            path = ROOT.joinpath(*folders, name.rstrip("/"))
            assert path.exists(), f"{block.name}: {path.relative_to(ROOT)} does not exist"
            checked += 1
        if entry.endswith("/"):
            folders.append(entry.rstrip("/"))
    assert checked >= 60


def test_the_demo_view_in_the_readme_is_what_the_view_writes(Aggregator: Any) -> None:
    from bizops_otel.demo import view

    (block,) = [b for b in BLOCKS if b.kind == "output" and b.argument == "demo-view"]
    lines = block.text.splitlines()
    assert all(len(line) <= view.WIDTH for line in lines)
    snapshot = Aggregator().snapshot()
    written = view.render(snapshot, [], "header").splitlines()
    fixed = [line for line in written if line.startswith(("page group", "-----", "(-:"))]
    assert len(fixed) >= 3
    for line in fixed[:3]:
        assert line in lines, f"the README's view lacks {line!r}"
    assert view.campaign_table([])[0] in lines


def test_every_config_field_has_a_documented_variable() -> None:
    import dataclasses

    from bizops_otel import Config

    text = (ROOT / "docs" / "configuration.md").read_text()
    for field in dataclasses.fields(Config):
        assert f"BIZOPS_OTEL_{field.name.upper()}" in text, field.name


def test_run_block_postludes_are_not_vacuous() -> None:
    """A postlude that asserts nothing would let a block rot silently."""
    for name, (_, postlude) in RUNS.items():
        assert "assert" in postlude, name
