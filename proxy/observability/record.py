"""One ``RequestRecord`` per request: what happened, filled by the pipeline and the relay.

The record is emitted once, when the request ends (answered, failed, or the client left), to
every sink registered on ``Records``: the access log line today; spend accounting and metrics
read the same record. Nothing here runs per chunk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from proxy.protocols.stream import Usage

__all__ = ["Outcome", "Records", "RequestRecord", "access_line"]

# ok: answered; client_disconnect: the client left first; upstream_error: the provider failed;
# timeout: the provider was too slow; rejected: the proxy refused the request (4xx of its own).
Outcome = Literal["ok", "client_disconnect", "upstream_error", "timeout", "rejected"]

access_log = logging.getLogger("proxy.access")


@dataclass(slots=True)
class RequestRecord:
    """The facts of one request. Times are seconds on the event loop's monotonic clock."""

    id: str
    frontdoor: str
    started: float
    key_name: str | None = None  # the client access key's name (never the key)
    model: str = ""  # what the client asked for
    stream: bool = False
    target: str | None = None  # provider/model of the last attempt
    provider: str | None = None
    attempts: int = 0
    status: int = 0
    first_byte_at: float | None = None
    ended: float | None = None
    usage: Usage | None = None
    bytes_out: int = 0
    outcome: Outcome = "ok"
    error: str | None = None

    @property
    def ttfb_s(self) -> float | None:
        return None if self.first_byte_at is None else self.first_byte_at - self.started

    @property
    def duration_s(self) -> float | None:
        return None if self.ended is None else self.ended - self.started


Sink = Callable[[RequestRecord], None]


@dataclass(slots=True)
class Records:
    """Where finished records go. A sink must not raise; one that does is logged and skipped."""

    sinks: list[Sink] = field(default_factory=list)

    def emit(self, record: RequestRecord) -> None:
        for sink in self.sinks:
            try:
                sink(record)
            except Exception:  # a broken sink must not break the request that already ended
                logging.getLogger("proxy").exception("request record sink %r failed", sink)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}ms"


def access_line(record: RequestRecord) -> None:
    """The one log line per request (client-controlled text is repr-escaped: no forged lines)."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    usage = record.usage
    tokens = f"{usage.input_tokens}/{usage.output_tokens}" if usage is not None else "-"
    access_log.info(
        "%s %s model=%r target=%s attempts=%d status=%d outcome=%s ttfb=%s duration=%s tokens=%s bytes=%d%s",
        record.id,
        record.frontdoor,
        record.model,
        record.target or "-",
        record.attempts,
        record.status,
        record.outcome,
        _ms(record.ttfb_s),
        _ms(record.duration_s),
        tokens,
        record.bytes_out,
        f" error={record.error!r}" if record.error else "",
    )
