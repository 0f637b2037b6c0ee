"""Prometheus metrics (``GET /metrics``), read from each finished ``RequestRecord``.

Nothing here runs per chunk: a request is counted once, at its end, from its record, and the
open-streams gauge moves once at a stream's start and once at its end.

Labels are bounded: ``model`` is a configured label (a provider's listed model, an alias's or a
policy member's target) or ``other``, never free client text, so a client inventing model names
cannot grow the series; ``provider`` is a configured provider name or ``none``. No key or other
secret is ever a label.

With ``--workers`` the supervisor sets ``PROMETHEUS_MULTIPROC_DIR`` (a temporary directory it
creates and removes): each worker then writes its values to files there and any worker's
``/metrics`` answers for all. ``prometheus_client`` reads that variable when it is first
imported, so it is imported here lazily, inside ``Metrics``, after the command line set it up.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from proxy.config import Config
from proxy.observability.record import RequestRecord

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["CONTENT_TYPE", "MULTIPROC_ENV", "Metrics", "known_models"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OTHER = "other"
# Seconds: first bytes of LLM streams take from tens of milliseconds to minutes.
_TTFB_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_LABELS = ("frontdoor", "provider", "model")


def known_models(config: Config) -> frozenset[str]:
    """The ``provider/model`` labels the configuration names: the only ``model`` label values."""
    labels = {f"{p.name}/{m}" for p in config.providers.values() for m in p.models}
    labels.update(config.aliases.values())
    labels.update(member for policy in config.policies.values() for member, _ in policy.members)
    return frozenset(labels)


class Metrics:
    """The proxy's metric families, and the sinks that feed them from request records."""

    def __init__(self, config: Config) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        # Per app, not the global registry: several apps in one process (tests) must not clash.
        # In multiprocess mode the values live in files; the registry is built per scrape.
        self._registry: CollectorRegistry | None = None if self.multiprocess else CollectorRegistry()
        reg = self._registry
        self.set_config(config)
        self.requests = Counter(
            "sse_proxy_requests",
            "Requests answered, by front door, provider, model, HTTP status and outcome.",
            [*_LABELS, "status", "outcome"],
            registry=reg,
        )
        self.streams_open = Gauge(
            "sse_proxy_streams_open",
            "Streams being relayed now.",
            ["frontdoor"],
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.ttfb = Histogram(
            "sse_proxy_time_to_first_byte_seconds",
            "From request start to the first byte sent to the client.",
            _LABELS,
            buckets=_TTFB_BUCKETS,
            registry=reg,
        )
        self.duration = Histogram(
            "sse_proxy_request_duration_seconds",
            "From request start to its end.",
            _LABELS,
            buckets=_DURATION_BUCKETS,
            registry=reg,
        )
        self.upstream_errors = Counter(
            "sse_proxy_upstream_errors",
            "Requests that ended in a provider failure, by kind (upstream_error or timeout).",
            ["provider", "model", "kind"],
            registry=reg,
        )
        self.retries = Counter(
            "sse_proxy_retries",
            "Attempts beyond the first (retries and fallbacks), counted at the request's end.",
            ["frontdoor", "model"],
            registry=reg,
        )
        self.fallbacks = Counter(
            "sse_proxy_fallback_requests",
            "Requests that needed more than one attempt.",
            ["frontdoor", "model"],
            registry=reg,
        )
        self.tokens = Counter(
            "sse_proxy_tokens",
            "Tokens reported by providers, by direction (in: prompt, out: completion).",
            ["provider", "model", "direction"],
            registry=reg,
        )
        self.disconnects = Counter(
            "sse_proxy_client_disconnects",
            "Requests whose client left before the answer ended.",
            ["frontdoor"],
            registry=reg,
        )

    def set_config(self, config: Config) -> None:
        """The configuration the labels are bounded by (again after a reload)."""
        self._known = known_models(config)
        self._providers = frozenset(config.providers)

    def _model(self, record: RequestRecord) -> str:
        return record.target if record.target in self._known and record.target is not None else OTHER

    def _provider(self, record: RequestRecord) -> str:
        provider = record.provider
        return provider if provider is not None and provider in self._providers else "none"

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once: the label sets are bounded (see ``_model``),
        and a lookup in prometheus-client costs a lock and several dict operations."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def record(self, record: RequestRecord) -> None:
        """The ``Records`` sink: count one finished request."""
        door, provider, model = record.frontdoor, self._provider(record), self._model(record)
        child = self._child
        child(self.requests, door, provider, model, str(record.status), record.outcome).inc()
        if record.ttfb_s is not None:
            child(self.ttfb, door, provider, model).observe(record.ttfb_s)
        if record.duration_s is not None:
            child(self.duration, door, provider, model).observe(record.duration_s)
        if record.outcome in ("upstream_error", "timeout"):
            child(self.upstream_errors, provider, model, record.outcome).inc()
        elif record.outcome == "client_disconnect":
            child(self.disconnects, door).inc()
        if record.attempts > 1:
            child(self.retries, door, model).inc(record.attempts - 1)
            child(self.fallbacks, door, model).inc()
        usage = record.usage
        if usage is not None:
            child(self.tokens, provider, model, "in").inc(usage.input_tokens)
            child(self.tokens, provider, model, "out").inc(usage.output_tokens)

    def stream(self, record: RequestRecord, delta: int) -> None:
        """The ``Records`` stream sink: a stream started (+1) or ended (-1)."""
        self._child(self.streams_open, record.frontdoor).inc(delta)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric (of every worker, in multiprocess mode)."""
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = self._registry
        if registry is None:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
