"""Operation objectives: configuration, matching, exact good/total counts in both twins,
windows, burn rates, persistence and the merge across processes."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

from bizops_otel import BizOpsSpanProcessor, Config, ConfigError, Operation, attributes
from bizops_otel.aggregate import persist
from bizops_otel.export.multiproc import merged_snapshot, state_file
from bizops_otel.settings import load_config
from bizops_otel.span.operations import CACHE_LIMIT, OperationMatcher
from tests.conftest import load, load_hooks
from tests.keys import EVERY_KEY
from tests.spans import pipeline
from tests.twins import assert_twins_agree

SERVER, CLIENT, INTERNAL = SpanKind.SERVER, SpanKind.CLIENT, SpanKind.INTERNAL
EPOCH = 1_700_000_000 * 10**9
SECOND = 10**9
AUTHORISE = "/api/orders/{id}/authorise"

OPERATIONS = (
    Operation("authorise_order", threshold=2.0, target=0.99, route=AUTHORISE, method="POST"),
    Operation("checkout", threshold=1.0, target=0.95, page_group="checkout", errors=False),
    Operation("search", threshold=0.3, target=0.9, span_name="GET /search*"),
    Operation("gold_pages", threshold=0.5, target=0.999, kind=None,
              attributes={"shop.tier": "gold"}),
)


def _config(**changes: Any) -> Config:
    values: dict[str, Any] = {**EVERY_KEY, "operations": OPERATIONS,
                              "page_groups": (("/checkout*", "checkout"),)}
    values.update(changes)
    return Config(**values)


def _span(tracer: Any, name: str, latency_ns: int, *, kind: SpanKind = SERVER,
          end_ns: int = EPOCH, error: bool = False, **span_attributes: Any) -> None:
    span = tracer.start_span(name, kind=kind, start_time=end_ns - latency_ns,
                             attributes=span_attributes)
    if error:
        span.set_status(Status(StatusCode.ERROR))
    span.end(end_time=end_ns)


# Configuration ------------------------------------------------------------------------------
@pytest.mark.parametrize(("arguments", "words"), [
    ({"name": "no spaces allowed", "threshold": 1.0, "target": 0.9}, "operation name"),
    ({"name": "x", "threshold": 0.0, "target": 0.9}, "threshold"),
    ({"name": "x", "threshold": math.inf, "target": 0.9}, "threshold"),
    ({"name": "x", "threshold": 1.0, "target": 1.0}, "target"),
    ({"name": "x", "threshold": 1.0, "target": True}, "target"),
    ({"name": "x", "threshold": 1.0, "target": 0.9, "route": ""}, "route"),
    ({"name": "x", "threshold": 1.0, "target": 0.9, "span_name": "re:("}, "regular expression"),
    ({"name": "x", "threshold": 1.0, "target": 0.9, "kind": "server_side"}, "kind"),
    ({"name": "x", "threshold": 1.0, "target": 0.9, "attributes": {"k": [1]}}, "attributes"),
    ({"name": "x", "threshold": 1.0, "target": 0.9, "errors": "yes"}, "errors"),
])
def test_bad_operations_are_refused_naming_the_field(arguments: dict[str, Any],
                                                     words: str) -> None:
    with pytest.raises(ConfigError, match=words) as raised:
        Operation(**arguments)
    assert raised.value.field == "operations"
    assert "operations" in str(raised.value)


def test_the_config_refuses_duplicates_strays_and_kinds_it_never_records() -> None:
    with pytest.raises(ConfigError, match="duplicate operation names"):
        Config(operations=(Operation("a", 1.0, 0.9), Operation("a", 2.0, 0.9)))
    with pytest.raises(ConfigError, match="expected an Operation"):
        Config(operations=("a",))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="is not recorded"):
        Config(operations=(Operation("calls", 1.0, 0.9, kind="client"),),
               record_local_roots=False)
    config = Config(operations=[Operation("a", 1.0, 0.9, method="post")])  # type: ignore[arg-type]
    assert config.operations[0].method == "POST" and config.operation_names == ("a",)
    assert Operation("a", 0.25, 0.9).threshold_ns == 250_000_000


def test_operations_from_a_variable_and_from_the_file(tmp_path: Path) -> None:
    text = (f"authorise_order: route={AUTHORISE}, method=POST, threshold=2, target=0.99; "
            "gold: kind=any, attributes.shop.tier=gold, threshold=0.5, target=0.999, "
            "errors=false")
    config = load_config(environ={"BIZOPS_OTEL_OPERATIONS": text})
    assert config.operations == (
        Operation("authorise_order", 2.0, 0.99, route=AUTHORISE, method="POST"),
        Operation("gold", 0.5, 0.999, kind=None, attributes=(("shop.tier", "gold"),),
                  errors=False))
    for bad, words in [("x: threshold=1", "needs target"), ("x threshold=1", "name: field"),
                       ("x: threshold=1, target=0.9, colour=red", "unknown field 'colour'"),
                       ("x: threshold=1, target=2", "target")]:
        with pytest.raises(ConfigError, match=words) as raised:
            load_config(environ={"BIZOPS_OTEL_OPERATIONS": bad})
        assert "BIZOPS_OTEL_OPERATIONS" in str(raised.value)
    file = tmp_path / "bizops.toml"
    file.write_text('[[operations]]\nname = "checkout"\npage_group = "checkout"\n'
                    'threshold = 1.5\ntarget = 0.995\nerrors = false\n'
                    '[[operations]]\nname = "gold"\nkind = "any"\nthreshold = 0.5\n'
                    'target = 0.99\nattributes = { "shop.tier" = "gold" }\n')
    config = load_config(environ={"BIZOPS_OTEL_CONFIG": str(file)})
    assert config.operations == (
        Operation("checkout", 1.5, 0.995, page_group="checkout", errors=False),
        Operation("gold", 0.5, 0.99, kind=None, attributes={"shop.tier": "gold"}))
    file.write_text('[[operations]]\nname = "x"\nthreshold = 1\ntarget = 0.9\nwhen = 1\n')
    with pytest.raises(ConfigError, match="when") as raised:
        load_config(environ={"BIZOPS_OTEL_CONFIG": str(file)})
    assert raised.value.field == "operations" and str(file) in str(raised.value)


# Matching -----------------------------------------------------------------------------------
def test_the_matcher_applies_every_rule_and_caches_by_endpoint() -> None:
    config = _config()
    matcher = OperationMatcher(config, page_group_at=0)
    authorise = {attributes.HTTP_ROUTE: AUTHORISE, attributes.HTTP_REQUEST_METHOD: "POST"}
    assert matcher.match(SERVER, f"POST {AUTHORISE}", authorise) == (0,)
    assert matcher.match(SERVER, f"GET {AUTHORISE}",
                         {**authorise, attributes.HTTP_REQUEST_METHOD: "GET"}) == ()
    # The older attribute name of the method counts too.
    assert matcher.match(SERVER, "x", {attributes.HTTP_ROUTE: AUTHORISE,
                                       attributes.HTTP_METHOD: "post"}) == (0,)
    assert matcher.match(CLIENT, "x", authorise) == ()  # the operation's kind is server
    assert matcher.match(SERVER, "GET /search?q", {}) == (2,)
    assert matcher.match(SERVER, "GET /searching", {"shop.tier": "gold"}) == (2, 3)
    assert matcher.match(INTERNAL, "job", {"shop.tier": "gold"}) == (3,)  # any kind
    assert matcher.match(INTERNAL, "job", {"shop.tier": "silver"}) == ()
    # The page group: the span's attribute, the processor's derived one, or the route.
    assert matcher.match(SERVER, "p", {attributes.PAGE_GROUP: "checkout"}) == (1,)
    assert matcher.match(SERVER, "p", {attributes.HTTP_ROUTE: "/x"}, ("checkout", "")) == (1,)
    assert matcher.match(SERVER, "p", {attributes.HTTP_ROUTE: "checkout"}) == (1,)
    assert (f"POST {AUTHORISE}", AUTHORISE) in matcher.caches[0]  # SERVER's
    assert ("job", None) in matcher.caches[4]  # INTERNAL's
    for i in range(CACHE_LIMIT + 10):
        matcher.match(SERVER, f"GET /{i}", {})
    assert sum(len(cache) for cache in matcher.caches) == CACHE_LIMIT


def test_attribute_conditions_compare_values_and_the_text_of_numbers() -> None:
    config = Config(operations=(Operation("n", 1.0, 0.9, attributes={"code": "200"}),
                                Operation("b", 1.0, 0.9, attributes={"flag": True}),
                                Operation("i", 1.0, 0.9, attributes={"count": 3})))
    matcher = OperationMatcher(config)
    assert matcher.match(SERVER, "a", {"code": 200}) == (0,)
    assert matcher.match(SERVER, "a", {"code": "200"}) == (0,)
    assert matcher.match(SERVER, "a", {"flag": True, "count": 3.0}) == (1, 2)
    assert matcher.match(SERVER, "a", {"flag": 1, "count": True}) == ()


# Counting, both twins -----------------------------------------------------------------------
def test_a_planted_share_of_slow_requests_is_counted_exactly(Aggregator: Any) -> None:
    """Log-normal latencies with a known share over each threshold, and errors planted on
    some spans: good and total come out exactly as counted from the generated data."""
    rng = np.random.default_rng(16)
    n = 3000
    latency = np.round(np.exp(rng.normal(np.log(0.8), 0.7, n)) * SECOND).astype(np.int64)
    latency[:5] = [2 * SECOND, 2 * SECOND + 1, SECOND, SECOND + 1, 1]  # the boundaries
    failed = rng.random(n) < 0.02
    pipe = pipeline(Aggregator, _config())
    for i in range(n):
        end = EPOCH + i * 10**7
        _span(pipe.tracer, f"POST {AUTHORISE}", int(latency[i]), end_ns=end, error=failed[i],
              **{attributes.HTTP_ROUTE: AUTHORISE, attributes.HTTP_REQUEST_METHOD: "POST"})
        _span(pipe.tracer, "GET /checkout", int(latency[i]), end_ns=end, error=failed[i],
              **{attributes.HTTP_ROUTE: "/checkout"})
    snapshot = pipe.aggregator.snapshot(now_ns=EPOCH + n * 10**7)
    objectives = snapshot.objectives()
    authorise, checkout = objectives["authorise_order"], objectives["checkout"]
    assert authorise.total == checkout.total == n
    assert authorise.good == int(((latency <= 2 * SECOND) & ~failed).sum())
    assert checkout.good == int((latency <= SECOND).sum())  # errors=False: only latency
    assert 0.05 < 1 - checkout.good / n < 0.6  # the planted share is far from trivial
    assert objectives["search"].total == objectives["gold_pages"].total == 0
    assert snapshot.operation_counts.tolist() == [
        [n, authorise.good], [n, checkout.good], [0, 0], [0, 0]]
    assert authorise.compliance == authorise.good / n
    bad_share = (n - authorise.good) / n
    assert authorise.budget_left == pytest.approx(1 - bad_share / 0.01, rel=1e-12)
    assert authorise.cumulative_burn_rate == pytest.approx(bad_share / 0.01, rel=1e-12)


def test_the_threshold_is_compared_in_exact_nanoseconds(Aggregator: Any) -> None:
    config = Config(operations=(Operation("op", 0.1, 0.9),))
    aggregator = Aggregator(config)
    for latency in (0, 99_999_999, 100_000_000, 100_000_001, 10**15):
        aggregator.record_operations((0,), EPOCH - latency, EPOCH)
    aggregator.record_operations((0,), EPOCH - 1, EPOCH, error=True)  # errors are bad
    assert aggregator.snapshot(now_ns=EPOCH).operation_counts.tolist() == [[6, 3]]


def test_nothing_bad_reaches_the_counts_and_nothing_raises(Aggregator: Any) -> None:
    aggregator = Aggregator(Config(operations=(Operation("a", 1.0, 0.9),
                                               Operation("b", 1.0, 0.9, errors=False))))
    for call in [((0, 1), EPOCH, EPOCH - 1), ((0,), 1.5, EPOCH), ((0,), True, EPOCH),
                 ((0,), EPOCH, 2**63), ((5, -1, "0", 1.0, 2**70), EPOCH, EPOCH), (None, 0, 1),
                 (7, 0, 1)]:
        aggregator.record_operations(*call)
    aggregator.record_operations([0, 1], EPOCH - 1, EPOCH, error=object())  # truthy: bad
    assert aggregator.snapshot(now_ns=EPOCH).operation_counts.tolist() == [[1, 0], [1, 1]]
    aggregator.reset()
    assert aggregator.snapshot(now_ns=EPOCH).operation_counts.tolist() == [[0, 0], [0, 0]]


def test_the_recent_window_gives_the_burn_rate(Aggregator: Any) -> None:
    """Window 60 s in 6 slots. An hour of good traffic, then one minute at 10% bad: the
    recent burn rate is 10% / 1% = 10 while the cumulative one is small."""
    config = Config(window=60, window_slots=6,
                    operations=(Operation("op", 0.5, 0.99, kind=None),))
    aggregator = Aggregator(config)
    start = EPOCH
    for second in range(3600):
        aggregator.record_operations((0,), start + second * SECOND - 10**8,
                                     start + second * SECOND)
    for i in range(600):
        end = start + 3600 * SECOND + i * 10**8
        latency = SECOND if i % 10 == 0 else 10**8
        aggregator.record_operations((0,), end - latency, end)
    # A slow straggler older than the whole ring lands in the cumulative counts only.
    aggregator.record_operations((0,), start - SECOND, start)
    now = start + 3660 * SECOND - 1
    snapshot = aggregator.snapshot(now_ns=now)
    objective = snapshot.objectives()["op"]
    assert (objective.total, objective.good) == (4201, 4140)
    assert (objective.recent_total, objective.recent_good) == (600, 540)
    assert objective.burn_rate == pytest.approx(10.0, rel=1e-12)
    assert objective.recent_compliance == 0.9
    assert objective.cumulative_burn_rate == pytest.approx(61 / 4201 / 0.01, rel=1e-12)
    later = aggregator.snapshot(now_ns=now + 3600 * SECOND).objectives()["op"]
    assert (later.total, later.good, later.recent_total) == (4201, 4140, 0)
    assert math.isnan(later.burn_rate) and math.isnan(later.recent_compliance)


def test_the_twins_count_random_streams_alike() -> None:
    native, pure = load("native"), load("pure")
    config = Config(**EVERY_KEY, window=10, window_slots=5,
                    operations=tuple(Operation(f"op{i}", 0.05 * (i + 1), 0.9,
                                               errors=bool(i % 2)) for i in range(5)))
    rng = np.random.default_rng(3)
    aggregators = [native(config), pure(config)]
    for _ in range(5000):
        end = EPOCH + int(rng.integers(0, 60 * SECOND))
        latency = int(rng.integers(0, SECOND // 2))
        chosen = tuple(int(i) for i in np.flatnonzero(rng.random(5) < 0.4))
        error = bool(rng.random() < 0.1)
        for aggregator in aggregators:
            aggregator.record_operations(chosen, end - latency, end, error)
            aggregator.record_span({attributes.PAGE_GROUP: "p"}, end - latency, end, error)
    now = EPOCH + 61 * SECOND
    left, right = (a.snapshot(now_ns=now) for a in aggregators)
    assert_twins_agree(left, right)
    assert left.operation_counts.tolist() == right.operation_counts.tolist()
    assert left.recent().operation_counts.tolist() == right.recent().operation_counts.tolist()
    assert left.operation_counts[:, 0].sum() > 0


def test_processes_merge_and_persist_exactly(Aggregator: Any, tmp_path: Path) -> None:
    """Two workers' state files (one of a worker that has died) merge into exact sums,
    and a snapshot survives its file with its operations and their counts."""
    config = _config()
    workers = [Aggregator(config), Aggregator(config)]
    expected = np.zeros((len(OPERATIONS), 2), np.int64)
    for w, aggregator in enumerate(workers):
        for i in range(100 + 50 * w):
            latency = (i % 7) * 4 * 10**8
            aggregator.record_operations((0, 1), EPOCH - latency, EPOCH, error=i % 11 == 0)
            expected[0] += [1, int(latency <= 2 * SECOND and i % 11 != 0)]
            expected[1] += [1, int(latency <= SECOND)]
    snapshots = [a.snapshot(now_ns=EPOCH) for a in workers]
    merged = snapshots[0].merge(snapshots[1])
    assert merged.operation_counts.tolist() == expected.tolist()
    assert merged.recent().operation_counts.tolist() == expected.tolist()
    restored = persist.loads(persist.dumps(snapshots[1]))
    assert restored.config.operations == config.operations
    assert restored.operation_counts.tolist() == snapshots[1].operation_counts.tolist()
    assert restored.objectives() == snapshots[1].objectives()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    persist.write(snapshots[0], state_file(tmp_path))
    persist.write(snapshots[1], state_file(tmp_path, int(dead.stdout)))
    for _ in range(2):  # the dead worker's file folds into the archive, counts unchanged
        fleet = merged_snapshot(tmp_path)
        assert fleet is not None
        assert fleet.operation_counts.tolist() == expected.tolist()
    with pytest.raises(ValueError, match="different"):
        snapshots[0].merge(Aggregator(Config()).snapshot(now_ns=EPOCH))


def test_without_operations_the_hooks_do_no_operation_work(Aggregator: Any) -> None:
    pipe = pipeline(Aggregator)
    _span(pipe.tracer, "GET /", 10**6, **{attributes.HTTP_ROUTE: "/"})
    snapshot = pipe.aggregator.snapshot(now_ns=EPOCH)
    assert snapshot.operation_counts.shape == (0, 2) and snapshot.objectives() == {}
    if Aggregator.implementation == "pure":
        assert pipe.processor._hooks._operations is None


def test_spans_inside_a_request_and_other_kinds_are_not_counted(Aggregator: Any) -> None:
    pipe = pipeline(Aggregator, _config())
    with pipe.tracer.start_as_current_span(f"POST {AUTHORISE}", kind=SERVER, attributes={
            attributes.HTTP_ROUTE: AUTHORISE, attributes.HTTP_REQUEST_METHOD: "POST"}):
        # A client call inside the request carries the same attributes: not a request.
        _span(pipe.tracer, f"POST {AUTHORISE}", 10**6, kind=CLIENT, **{
            attributes.HTTP_ROUTE: AUTHORISE, attributes.HTTP_REQUEST_METHOD: "POST",
            "shop.tier": "gold"})
    counts = pipe.aggregator.snapshot().operation_counts
    assert counts.tolist() == [[1, 1], [0, 0], [0, 0], [0, 0]]


# Export ------------------------------------------------------------------------------------
def _exported(Aggregator: Any) -> Any:
    aggregator = Aggregator(_config())
    for i in range(40):
        latency = (i % 5) * 6 * 10**8  # 0, 0.6, 1.2, 1.8, 2.4 s
        aggregator.record_operations((0, 1), EPOCH - latency, EPOCH, error=i == 0)
    return aggregator.snapshot(now_ns=EPOCH)


def test_the_scrape_carries_counts_and_objectives(Aggregator: Any) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from bizops_otel.export.exposition import render

    snapshot = _exported(Aggregator)
    text = render(snapshot).decode()
    samples = {(s.name, s.labels.get("bizops_operation")): s.value
               for f in text_string_to_metric_families(text) for s in f.samples
               if s.name.startswith("bizops_operation")}
    assert samples == {
        ("bizops_operation_requests_total", "authorise_order"): 40,
        ("bizops_operation_good_total", "authorise_order"): 31,  # 32 within 2 s, 1 error
        ("bizops_operation_requests_total", "checkout"): 40,
        ("bizops_operation_good_total", "checkout"): 16,  # within 1 s; errors do not count
        ("bizops_operation_requests_total", "search"): 0,
        ("bizops_operation_good_total", "search"): 0,
        ("bizops_operation_requests_total", "gold_pages"): 0,
        ("bizops_operation_good_total", "gold_pages"): 0,
        **{("bizops_operation_target", o.name): o.target for o in OPERATIONS},
        **{("bizops_operation_threshold_seconds", o.name): o.threshold for o in OPERATIONS},
    }
    assert "# TYPE bizops_operation_requests_total counter" in text
    assert "# TYPE bizops_operation_target gauge" in text


def test_the_otlp_push_carries_counts_and_objectives(Aggregator: Any) -> None:
    from bizops_otel.export.otlp import encode
    from tests.otlp_decode import decode, value

    snapshot = _exported(Aggregator)
    when = time.time_ns() + SECOND  # the export's time, after the aggregator started
    metrics, _ = decode(encode(snapshot, resource_attributes={"service.name": "shop"},
                               time_ns=when))
    of = frozenset({("bizops.operation", "authorise_order")})
    requests, good = metrics["bizops.operation.requests"], metrics["bizops.operation.good"]
    assert (requests.kind, requests.monotonic, requests.temporality) == ("sum", True, 2)
    assert value(requests.points[of]) == 40 and value(good.points[of]) == 31
    assert requests.points[of].start_time_unix_nano == snapshot.started_ns < when
    assert value(metrics["bizops.operation.target"].points[of]) == 0.99
    threshold = metrics["bizops.operation.threshold"]
    assert threshold.kind == "gauge" and threshold.unit == "s"
    assert value(threshold.points[of]) == 2.0


def test_spans_laid_out_otherwise_count_the_same(Aggregator: Any) -> None:
    """Through the public API (a span not laid out as this SDK's are), the operations
    count exactly as through the direct reads."""
    from tests.test_span_hooks import PublicOnlySpan

    def run(wrap: bool) -> list[list[int]]:
        config = _config()
        aggregator = Aggregator(config)
        processor = BizOpsSpanProcessor(aggregator, config, hooks=load_hooks(Aggregator))
        tracer = TracerProvider().get_tracer("t")  # no processor: the test drives the hooks
        for i in range(30):
            span = tracer.start_span("GET /checkout", kind=SERVER, start_time=EPOCH,
                                     attributes={attributes.HTTP_ROUTE: "/checkout"})
            seen = PublicOnlySpan(span) if wrap else span
            processor.on_start(seen)
            if i % 3 == 0:
                span.set_status(Status(StatusCode.ERROR))
            span.end(end_time=EPOCH + i * 10**8)  # 0 to 2.9 s
            processor.on_end(seen)
        return aggregator.snapshot(now_ns=EPOCH).operation_counts.tolist()

    assert run(False) == run(True) == [[0, 0], [30, 11], [0, 0], [0, 0]]


def test_your_own_meter_provider_observes_counts_and_objectives(Aggregator: Any) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from bizops_otel.export.otel import OTelMetrics

    snapshot = _exported(Aggregator)
    reader = InMemoryMetricReader()
    OTelMetrics(MeterProvider(metric_readers=[reader]), lambda: snapshot, snapshot.config)
    data = reader.get_metrics_data()
    assert data is not None
    points = {(metric.name, point.attributes.get("bizops.operation")): point.value
              for resource in data.resource_metrics for scope in resource.scope_metrics
              for metric in scope.metrics if metric.name.startswith("bizops.operation")
              for point in metric.data.data_points}
    assert points[("bizops.operation.requests", "authorise_order")] == 40
    assert points[("bizops.operation.good", "authorise_order")] == 31
    assert points[("bizops.operation.good", "checkout")] == 16
    assert points[("bizops.operation.target", "gold_pages")] == 0.999
    assert points[("bizops.operation.threshold", "search")] == 0.3


def test_native_hooks_count_operations_in_the_native_aggregator_directly() -> None:
    """The native hooks call a native aggregator's record_operations as a C function, and
    any other aggregator's through Python; both count the same."""
    hooks = load_hooks(load("native"))
    counts = []
    for Aggregator, direct in ((load("native"), True), (load("pure"), False)):
        config = _config()
        aggregator = Aggregator(config)
        processor = BizOpsSpanProcessor(aggregator, config, hooks=hooks)
        assert processor._hooks.records_operations_directly is direct
        provider = TracerProvider()
        provider.add_span_processor(processor)
        for i in range(20):
            _span(provider.get_tracer("t"), "GET /search", i * 3 * 10**7, error=i == 3)
        counts.append(aggregator.snapshot(now_ns=EPOCH).operation_counts.tolist())
    assert counts[0] == counts[1] == [[0, 0], [0, 0], [20, 10], [0, 0]]
