"""One ``RequestRecord`` per request: what happened, filled by the pipeline and the relay.

The record is emitted once, when the request ends (answered, failed, or the client left), to
every sink registered on ``Records``: the access log line today; spend accounting and metrics
read the same record. Nothing here runs per chunk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from proxy.protocols.stream import Usage

__all__ = ["JsonFormatter", "Outcome", "Records", "RequestRecord", "StreamSink", "access_fields", "access_line"]

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
# Told +1 when a stream starts relaying and -1 when it ends (the open-streams gauge).
StreamSink = Callable[[RequestRecord, int], None]


@dataclass(slots=True)
class Records:
    """Where finished records go. A sink must not raise; one that does is logged and skipped.

    ``stream_sinks`` hear of a stream's start and end: the only per-request events besides the
    end, so that a gauge of open streams needs no work per chunk.
    """

    sinks: list[Sink] = field(default_factory=list)
    stream_sinks: list[StreamSink] = field(default_factory=list)

    def emit(self, record: RequestRecord) -> None:
        for sink in self.sinks:
            try:
                sink(record)
            except Exception:  # a broken sink must not break the request that already ended
                logging.getLogger("proxy").exception("request record sink %r failed", sink)

    def stream(self, record: RequestRecord, delta: int) -> None:
        """A stream of ``record`` started relaying (``delta`` 1) or ended (-1)."""
        for sink in self.stream_sinks:
            try:
                sink(record, delta)
            except Exception:  # as in emit: observability must not break a request
                logging.getLogger("proxy").exception("stream sink %r failed", sink)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}ms"


def _ms_value(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def access_fields(record: RequestRecord) -> dict[str, Any]:
    """The access line as data (the JSON log line, and what a log shipper indexes)."""
    usage = record.usage
    return {
        "request_id": record.id,
        "key_name": getattr(record, "key_name", None),
        "frontdoor": record.frontdoor,
        "provider": record.provider,
        "model": record.model,
        "target": record.target,
        "stream": record.stream,
        "status": record.status,
        "outcome": record.outcome,
        "attempts": record.attempts,
        "ttfb_ms": _ms_value(record.ttfb_s),
        "duration_ms": _ms_value(record.duration_s),
        "tokens_in": None if usage is None else usage.input_tokens,
        "tokens_out": None if usage is None else usage.output_tokens,
        "bytes_out": record.bytes_out,
        "error": record.error,
    }


def access_line(record: RequestRecord) -> None:
    """The one log line per request, aborted ones included. Client-controlled text is
    repr-escaped in the text line (and JSON-escaped by ``JsonFormatter``): no forged lines."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    usage = record.usage
    tokens = f"{usage.input_tokens}/{usage.output_tokens}" if usage is not None else "-"
    access_log.info(
        "%s %s key=%r provider=%s model=%r target=%r attempts=%d status=%d outcome=%s ttfb=%s duration=%s "
        "tokens=%s bytes=%d%s",
        record.id,
        record.frontdoor,
        getattr(record, "key_name", None),
        record.provider or "-",
        record.model,
        record.target,
        record.attempts,
        record.status,
        record.outcome,
        _ms(record.ttfb_s),
        _ms(record.duration_s),
        tokens,
        record.bytes_out,
        f" error={record.error!r}" if record.error else "",
        extra={ACCESS_FIELDS: access_fields(record)},
    )


ACCESS_FIELDS = "access_fields"  # the LogRecord attribute that carries ``access_fields``


class JsonFormatter(logging.Formatter):
    """``--log-format json``: one JSON object per line; an access line is its fields."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, ACCESS_FIELDS, None)
        data: dict[str, Any] = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if isinstance(fields, dict):
            data.update(fields)
        else:
            data["message"] = record.getMessage()
            if record.exc_info:
                data["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()
