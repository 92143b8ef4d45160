"""Wiring: ``install()`` puts bizops-otel into a service that OpenTelemetry instruments."""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from opentelemetry import trace

from . import drops
from ._periodic import Periodic
from .aggregate import persist
from .aggregate.aggregator import Aggregator
from .aggregate.snapshot import Snapshot
from .alerts import CAMPAIGN, OBJECTIVE, VARIANT, AlertBus
from .alerts import AlertCallback as AnyAlertCallback
from .analytics.burn import ObjectiveCallback, ObjectiveMonitor
from .analytics.guardrails import (
    GuardrailSettings,
    VariantAlert,
    VariantCallback,
    VariantMonitor,
)
from .analytics.health import AlertCallback, CampaignHealth, CampaignMonitor
from .attributes import CAMPAIGN_ID, FEATURE_FLAG_VARIANT
from .config import Config
from .export.exposition import start_http_server
from .export.multiproc import Retirements, state_file
from .export.otel import OTelMetrics
from .export.otlp import settings as otlp_settings
from .export.otlp.push import ExportStatus, Pusher
from .settings import load_config
from .span import context as business
from .span.processor import BizOpsSpanProcessor
from .span.sampling import SamplingState, record_unsampled, sampling_state

_logger = logging.getLogger("bizops_otel")
_installed: weakref.WeakKeyDictionary[Any, BizOps] = weakref.WeakKeyDictionary()
_lock = threading.Lock()
#: The most of a core that writes on dirty may take (``BizOps._write_if_due``).
_WRITE_CPU_SHARE = 0.03


class BizOps:
    """Handle of one installation: its aggregator, processor and configuration."""

    def __init__(self, config: Config, aggregator: Aggregator | None,
                 processor: BizOpsSpanProcessor | None, tracer_provider: Any) -> None:
        self.config = config
        self.aggregator = aggregator
        self.processor = processor
        self.tracer_provider = tracer_provider
        self.meter_provider: Any = None
        self._writer: Periodic | None = None
        #: The state writer's last write: changes() then, when (monotonic), and the pause
        #: before the next write on dirty.
        self._written = (-1, 0.0, 0.0)
        self._retirements: Retirements | None = None
        self.metrics: OTelMetrics | None = None
        self.campaigns: CampaignMonitor | None = None
        self.variants: VariantMonitor | None = None
        self.objectives: ObjectiveMonitor | None = None
        #: Where every monitor's alerts go, and the application's callbacks wait.
        self.alerts = AlertBus()
        self.pusher: Pusher | None = None
        self.metrics_server: Any = None
        self._owns_meter_provider = False
        self._shut_down = False

    def attach_metrics(self, meter_provider: Any, owned: bool) -> None:
        """Export through ``meter_provider``; an owned one is flushed and shut down with us."""
        if self.aggregator is None:
            return
        self.meter_provider = meter_provider
        self._owns_meter_provider = owned
        self.metrics = OTelMetrics(meter_provider, self.snapshot, self.config,
                                   self.campaign_health)

    def start_pusher(self, settings: otlp_settings.PushSettings) -> None:
        """Push the state over OTLP every ``settings.interval_s``, off the request path."""
        if self.aggregator is None or self._shut_down:
            return
        self.pusher = Pusher(self.snapshot, settings, self.campaign_health,
                             tracer_provider=self.tracer_provider)
        self.pusher.start()

    def start_metrics_server(self) -> None:
        """Serve ``/metrics`` on ``config.prometheus_port``, when one is configured."""
        config = self.config
        if config.prometheus_port is None or self.aggregator is None or self._shut_down:
            return
        self.metrics_server, _ = start_http_server(
            config.prometheus_port, self.snapshot, addr=config.prometheus_addr,
            health=self.campaign_health)
        _logger.info("bizops-otel: serving /metrics on %s:%d", config.prometheus_addr,
                     self.metrics_server.server_port)

    @property
    def export_status(self) -> ExportStatus | None:
        """The OTLP pusher's failures by reason and last success, when it pushes."""
        return None if self.pusher is None else self.pusher.status

    def start_campaign_monitor(self) -> None:
        """Judge campaign health every ``campaign_interval`` seconds, off the request path."""
        config = self.config
        if (self.aggregator is None or CAMPAIGN_ID not in config.dimensions
                or config.campaign_interval == 0 or self._shut_down):
            return
        self.campaigns = CampaignMonitor(self.snapshot, config.campaign_interval,
                                         limit=config.campaign_limit)
        self.campaigns.on_campaign_alert(self.alerts.publish)
        self.campaigns.start()

    def start_guardrails(self) -> None:
        """Judge feature-flag variants every ``guardrail_interval`` seconds, off the
        request path."""
        config = self.config
        if (self.aggregator is None or FEATURE_FLAG_VARIANT not in config.dimensions
                or config.outcome is None or config.guardrail_interval == 0
                or self._shut_down):
            return
        self.variants = VariantMonitor(self.snapshot, config.guardrail_interval,
                                       GuardrailSettings.of(config))
        self.variants.on_variant_alert(self.alerts.publish)
        self.variants.start()

    def start_objective_monitor(self) -> None:
        """Read the operations' objectives every ``objective_interval`` seconds, off the
        request path, for the burn-rate alerts."""
        config = self.config
        if (self.aggregator is None or not config.operations
                or config.objective_interval == 0 or self._shut_down):
            return
        self.objectives = ObjectiveMonitor(self.snapshot, config.objective_interval)
        self.objectives.on_objective_alert(self.alerts.publish)
        self.objectives.start()

    def on_objective_alert(self, callback: ObjectiveCallback) -> ObjectiveCallback:
        """Call ``callback(alert)`` (an :class:`ObjectiveAlert`) when an operation's
        objective starts or stops burning its error budget by the SRE workbook's
        multi-window rules, from the monitor's thread; usable as a decorator."""
        if self.objectives is None:
            raise ValueError("bizops-otel: objective alerts need operations and "
                             "objective_interval > 0")
        self.alerts.on_alert(callback, (OBJECTIVE,))
        return callback

    def on_campaign_alert(self, callback: AlertCallback) -> AlertCallback:
        """Call ``callback(health)`` whenever a campaign changes health state, from the
        monitor's thread; usable as a decorator."""
        if self.campaigns is None:
            raise ValueError("bizops-otel: campaign health needs bizops.campaign.id among "
                             "the dimensions and campaign_interval > 0")
        self.alerts.on_alert(callback, (CAMPAIGN,))
        return callback

    def on_variant_alert(self, callback: VariantCallback) -> VariantCallback:
        """Call ``callback(alert)`` with the evidence (:class:`VariantAlert`) when a
        feature-flag variant is significantly worse than its control on conversion or
        latency, from the monitor's thread; usable as a decorator."""
        if self.variants is None:
            raise ValueError("bizops-otel: variant guardrails need feature_flag.result.variant "
                             "among the dimensions, an outcome KPI and guardrail_interval > 0")
        self.alerts.on_alert(callback, (VARIANT,))
        return callback

    def on_alert(self, callback: AnyAlertCallback) -> AnyAlertCallback:
        """Call ``callback(alert)`` for every alert of every kind: a
        :class:`CampaignHealth` on a change of state, a :class:`VariantAlert`, an
        :class:`ObjectiveAlert` (tell them apart with ``bizops_otel.alerts.kind_of``). From
        the monitors' threads; usable as a decorator."""
        return self.alerts.on_alert(callback)

    def variant_alerts(self) -> list[VariantAlert]:
        """The variant alerts raised so far, oldest first."""
        return [] if self.variants is None else list(self.variants.alerts)

    def campaign_health(self) -> list[CampaignHealth]:
        """The campaigns' health at the last check."""
        return [] if self.campaigns is None else list(self.campaigns.latest)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export the current state now, over OTLP or through the MeterProvider."""
        ok = True
        if self.pusher is not None:
            ok = self.pusher.force_flush(timeout_millis / 1000.0)
        flush = getattr(self.meter_provider, "force_flush", None)
        if flush is not None:
            ok = bool(flush(timeout_millis)) and ok
        return ok

    @property
    def enabled(self) -> bool:
        return self.aggregator is not None and not self._shut_down

    @property
    def sampling(self) -> SamplingState:
        return sampling_state(self.tracer_provider)

    def snapshot(self) -> Snapshot | None:
        """The aggregator's snapshot, with the process's other drops (rules that raised,
        refused ``record_order`` values, …) added to its own: every export reads this."""
        if self.aggregator is None:
            return None
        return self.aggregator.snapshot().with_dropped(drops.counts())

    def state_path(self) -> Path | None:
        """Where this process writes its state, when ``multiproc_dir`` is configured."""
        directory = self.config.multiproc_dir
        return None if directory is None else state_file(directory)

    def start_writer(self) -> None:
        """Write this process's state within ``multiproc_flush_interval`` of a change, and
        at least every ``multiproc_interval``."""
        config = self.config
        if config.multiproc_dir is None or self.aggregator is None or self._shut_down:
            return
        self._written = (-1, 0.0, 0.0)
        # A look costs about a microsecond: look four times per flush interval, so that a
        # write comes within the interval of a change, not up to two intervals after.
        flush = config.multiproc_flush_interval
        tick = min(max(0.01, flush / 4), config.multiproc_interval) if flush else (
            config.multiproc_interval)
        self._writer = Periodic("bizops-otel-state", tick, self._write_if_due,
                                "could not write this process's state")
        self._writer.start()

    def _changes(self) -> int:
        """Grows whenever the state to write changes (spans, the aggregator's drops, the
        process's other drops); read without a snapshot."""
        assert self.aggregator is not None
        return int(self.aggregator.changes()) + sum(drops.counts().values())

    def _write_if_due(self) -> None:
        # Write on dirty: a changed state as soon as multiproc_flush_interval has passed
        # since the last write, an unchanged one only every multiproc_interval (windows
        # rotate and keys expire with time alone). A SIGKILL loses what was recorded since
        # the last write. Under continuous traffic every look finds a change, so writes are
        # also spaced to keep their CPU time within _WRITE_CPU_SHARE of a core: a large
        # state is written less often.
        changes, written_at, pause = self._written
        now = time.monotonic()
        current = self._changes()
        config = self.config
        due = now - written_at >= config.multiproc_interval
        if not due and (current == changes or not config.multiproc_flush_interval
                        or now - written_at < max(config.multiproc_flush_interval, pause)):
            return
        cpu = time.thread_time()
        self.write_state()
        cpu = time.thread_time() - cpu
        self._written = (current, now, cpu * (1 / _WRITE_CPU_SHARE - 1))

    def _after_fork_in_child(self) -> None:
        # The parent's writer thread does not exist here, and this process needs its own
        # file and retired rows; the aggregator itself was emptied by its own fork hook.
        self._writer = None
        self._retirements = None
        self.start_writer()
        if self.campaigns is not None:
            self.campaigns.restart_after_fork()
        if self.variants is not None:
            self.variants.restart_after_fork()
        if self.objectives is not None:
            self.objectives.restart_after_fork()
        if self.pusher is not None:
            self.pusher.after_fork_in_child()
        if self.metrics_server is not None:
            # The parent serves /metrics; the child has its listening socket but not the
            # thread, and shutdown() would wait for that thread forever.
            self.metrics_server.server_close()
            self.metrics_server = None

    def write_state(self) -> Path | None:
        """Write the current snapshot to :meth:`state_path` (atomically)."""
        path = self.state_path()
        if path is None or self.aggregator is None:
            return None
        # Keys that expired since the last write leave the live state and enter the
        # retired rows in the same file, so the merge never sees them in neither.
        snapshot, expired = self.aggregator.snapshot_and_expired()
        snapshot = snapshot.with_dropped(drops.counts())
        if self._retirements is None:
            self._retirements = Retirements(path.parent, len(self.config.kpis),
                                            self.config.max_keys)
        self._retirements.add(expired)
        path.parent.mkdir(parents=True, exist_ok=True)
        persist.write(snapshot, path, self._retirements.current())
        return path

    def shutdown(self) -> None:
        """Stop recording and write the final state. Safe to call more than once; the SDK
        provider keeps running."""
        if self._shut_down:
            return
        self._shut_down = True
        if self._writer is not None:
            self._writer.stop()
        if self.campaigns is not None:
            self.campaigns.stop()
        if self.variants is not None:
            self.variants.stop()
        if self.objectives is not None:
            self.objectives.stop()
        try:
            self.write_state()
        except Exception:
            _logger.exception("bizops-otel: could not write the final state")
        if self.pusher is not None:
            self.pusher.shutdown()  # exports the final state, stops its thread
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
        if self._owns_meter_provider:
            try:
                self.meter_provider.shutdown()  # exports the final state, stops its thread
            except Exception:
                _logger.exception("bizops-otel: could not flush metrics at shutdown")
        if self.processor is not None:
            self.processor.shutdown()
        with _lock:
            if _installed.get(self.tracer_provider) is self:
                del _installed[self.tracer_provider]

    def __repr__(self) -> str:
        kind = getattr(self.aggregator, "implementation", "none")
        return (f"BizOps(enabled={self.enabled}, aggregator={kind}, "
                f"sampling={self.sampling.description!r})")


def _sdk_provider(tracer_provider: Any) -> Any:
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider):
        # Nothing configured an SDK yet (no opentelemetry-instrument, no manual setup):
        # set the SDK's default provider, configured from the standard OTEL_* variables.
        from opentelemetry.sdk.trace import TracerProvider

        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
        _logger.info("bizops-otel: no SDK TracerProvider was set; installed a default one")
    if not hasattr(provider, "add_span_processor"):
        raise TypeError(f"bizops-otel needs the OpenTelemetry SDK's TracerProvider, "
                        f"got {type(provider).__name__}")
    return provider


def install(tracer_provider: Any = None, meter_provider: Any = None, *,
            config: Config | None = None, **overrides: Any) -> BizOps:
    """Add bizops-otel to the given (or global) SDK TracerProvider and return its handle.

    ``config`` (or, without it, ``BIZOPS_OTEL_*`` variables and ``BIZOPS_OTEL_CONFIG``)
    with ``overrides`` on top. Calling it again for the same provider returns the first
    handle. Configuration errors raise ``ValueError`` here, never later.
    """
    if config is None:
        resolved = load_config(**overrides)
    else:
        resolved = dataclasses.replace(config, **overrides) if overrides else config
    provider = _sdk_provider(tracer_provider)
    # Read before anything is installed, so a malformed OTEL_EXPORTER_OTLP_* variable fails
    # here and leaves the provider as it was.
    push = (otlp_settings.load() if meter_provider is None and resolved.enabled
            and otlp_settings.wanted() else None)
    with _lock:
        existing = _installed.get(provider)
        if existing is not None:
            if existing.config != resolved:
                _logger.warning("bizops-otel: already installed on this provider with another "
                                "configuration; keeping the first")
            return existing
        if not resolved.enabled:
            handle = BizOps(resolved, None, None, provider)
            _installed[provider] = handle
            return handle
        aggregator = Aggregator(resolved)
        processor = BizOpsSpanProcessor(aggregator, resolved)
        provider.add_span_processor(processor)
        if resolved.record_unsampled and not record_unsampled(provider):
            _logger.warning("bizops-otel: could not wrap this provider's sampler; "
                            "unsampled requests will not be counted")
        business.configure(resolved)
        handle = BizOps(resolved, aggregator, processor, provider)
        _installed[provider] = handle
    handle.start_campaign_monitor()
    handle.start_guardrails()
    handle.start_objective_monitor()
    _wire_metrics(handle, meter_provider, push)
    handle.start_metrics_server()
    handle.start_writer()
    if hasattr(os, "register_at_fork"):
        reference = weakref.ref(handle)
        os.register_at_fork(after_in_child=lambda: _restart(reference))
    atexit.register(handle.shutdown)
    return handle


def _restart(reference: weakref.ref[BizOps]) -> None:
    handle = reference()
    if handle is not None:
        handle._after_fork_in_child()


def _wire_metrics(handle: BizOps, meter_provider: Any,
                  push: otlp_settings.PushSettings | None) -> None:
    """Metrics go to the given MeterProvider (the user's own readers and views); else,
    when the standard OTEL_* variables ask for OTLP, to the direct OTLP pusher; else to
    the global MeterProvider when an SDK one is configured."""
    if meter_provider is not None:
        handle.attach_metrics(meter_provider, owned=False)
        return
    if push is not None:
        handle.start_pusher(push)
        return
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider

    global_provider = metrics.get_meter_provider()
    if isinstance(global_provider, MeterProvider):
        handle.attach_metrics(global_provider, owned=False)


def installed(tracer_provider: Any = None) -> BizOps | None:
    """The handle installed on ``tracer_provider`` (or the global one), if any."""
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    with _lock:
        return _installed.get(provider)
