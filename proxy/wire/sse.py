"""A sans-IO Server-Sent Events decoder (WHATWG HTML, "event stream interpretation").

Bytes in (``feed``), events out; no sockets, no clock. Lines may end in CRLF, LF or a lone CR,
mixed in one stream, and split anywhere across reads: a CR at the end of a read is held back
until the next byte says whether it starts a CRLF. A leading UTF-8 BOM is dropped once.
``close`` at end of input raises ``IncompleteEvent`` when an event was begun and never
dispatched: for a proxy that is a truncated upstream, not something to discard quietly.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Event", "EventTooLarge", "IncompleteEvent", "SSEDecoder", "SSEError"]

_BOM = b"\xef\xbb\xbf"


class SSEError(Exception):
    """The byte stream cannot be decoded as SSE."""


class IncompleteEvent(SSEError):
    """The stream ended in the middle of an event."""


class EventTooLarge(SSEError):
    """One event grew past the decoder's buffer cap."""


@dataclass(frozen=True, slots=True)
class Event:
    """One dispatched event. ``data`` is bytes (UTF-8), lines joined by ``\\n``."""

    data: bytes
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Incremental decoder: ``feed(bytes) -> list[Event]``, then ``close()`` at end of input."""

    __slots__ = ("_buf", "_data", "_event", "_id", "_max", "_retry", "_size", "_started")

    def __init__(self, max_event_bytes: int = 16 * 1024 * 1024) -> None:
        self._max = max_event_bytes
        self._buf = b""  # bytes of an incomplete line (CRs already normalised away)
        self._started = False  # whether the BOM check has been made
        self._data: list[bytes] = []
        self._size = 0  # bytes of the lines since the last blank line
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, data: bytes) -> list[Event]:
        buf = self._buf + data if self._buf else data
        if not self._started:
            if len(buf) < 3 and _BOM.startswith(buf):
                self._buf = buf  # could still be the start of a BOM
                return []
            self._started = True
            if buf.startswith(_BOM):
                buf = buf[3:]
        if b"\r" in buf:
            held = buf.endswith(b"\r")
            if held:
                buf = buf[:-1]
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if held:
                buf += b"\r"  # may be half of a CRLF: decide when the next byte comes
        lines = buf.split(b"\n")
        self._buf = lines.pop()
        events: list[Event] = []
        for line in lines:
            if line:
                # The cap counts every line since the last blank one, as it grows: the count only
                # rises within an event, so whether it is hit cannot depend on how reads split.
                self._size += len(line) + 1
                if self._size > self._max:
                    raise EventTooLarge(f"an SSE event exceeds {self._max} bytes")
                self._field(line)
                continue
            self._size = 0
            if self._data:
                events.append(self._dispatch())
            else:
                self._event = ""  # a blank line with no data resets the event type
        # The unfinished line, less a held CR (which may only end a blank line, costing nothing).
        if self._size + len(self._buf.removesuffix(b"\r")) > self._max:
            raise EventTooLarge(f"an SSE event exceeds {self._max} bytes")
        return events

    def close(self) -> list[Event]:
        """Signal end of input: return the events a held-back CR completes, and raise
        ``IncompleteEvent`` if an event was left unfinished."""
        events = self.feed(b"\n") if self._buf.endswith(b"\r") else []
        if self._buf or self._data:
            raise IncompleteEvent("the stream ended in the middle of an event")
        return events

    def _field(self, line: bytes) -> None:
        if line[0] == 0x3A:  # ':' comment
            return
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                self._id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self._retry = int(value)

    def _dispatch(self) -> Event:
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        event = Event(data, self._event or "message", self._id, self._retry)
        self._data = []
        self._event = ""
        self._retry = None
        return event
