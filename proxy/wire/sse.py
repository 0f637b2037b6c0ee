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
    """Incremental decoder: ``feed(bytes) -> list[Event]``, then ``close()`` at end of input.

    The cost of a read is linear in its size, however long the line it extends: as in h11's
    ``ReceiveBuffer``, the unfinished line lives in a ``bytearray`` that each read appends to,
    and only the new bytes are searched for line ends (the CR of a CRLF cut between two reads
    is held in a flag, not re-scanned).

    Subclasses see the lines SSE does not define through one hook, ``other_line``; a stream
    that leaves SSE framing altogether (Gemini's raw error body) calls ``stop_events`` and from
    then on receives every line there.
    """

    __slots__ = ("_cr", "_data", "_event", "_id", "_line", "_max", "_retry", "_size", "_started", "_stopped")

    def __init__(self, max_event_bytes: int = 16 * 1024 * 1024) -> None:
        self._max = max_event_bytes
        self._line = bytearray()  # an incomplete line (CRs already normalised away)
        self._cr = False  # the last read ended in a CR: a line end, or half of a CRLF
        self._started = False  # whether the BOM check has been made
        self._stopped = False  # ``stop_events`` was called: every line goes to ``other_line``
        self._data: list[bytes] = []
        self._size = 0  # bytes of the lines since the last blank line
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, data: bytes) -> list[Event]:
        if not self._started:
            if self._line:
                data = bytes(self._line) + data  # at most two bytes of a BOM
                self._line.clear()
            if len(data) < 3 and _BOM.startswith(data):
                self._line += data  # could still be the start of a BOM
                return []
            self._started = True
            if data.startswith(_BOM):
                data = data[3:]
        if self._cr:
            data = b"\r" + data
            self._cr = False
        if b"\r" in data:
            self._cr = data.endswith(b"\r")  # may be half of a CRLF: decide when the next byte comes
            if self._cr:
                data = data[:-1]
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in data:
            self._line += data
            self._check_size()
            return []
        lines = data.split(b"\n")
        if self._line:
            self._line += lines[0]
            lines[0] = bytes(self._line)
        self._line = bytearray(lines.pop())
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
            if self._stopped:
                self.other_line(line)
            elif self._data:
                events.append(self._dispatch())
            else:
                self._event = ""  # a blank line with no data resets the event type
        self._check_size()
        return events

    def close(self) -> list[Event]:
        """Signal end of input: return the events a held-back CR completes, and raise
        ``IncompleteEvent`` if an event was left unfinished.

        After ``stop_events`` nothing is an event: a last line without its line end is handed
        to ``other_line``, and judging what was collected is the subclass's business.
        """
        events = self.feed(b"\n") if self._cr else []
        if self._stopped:
            if self._line:
                line, self._line = bytes(self._line), bytearray()
                self.other_line(line)
            return []
        if self._line or self._data:
            raise IncompleteEvent("the stream ended in the middle of an event")
        return events

    def other_line(self, line: bytes) -> None:
        """A hook for subclasses: a line that is no SSE field (its name is not ``data``,
        ``event``, ``id`` or ``retry``, and it is no comment), without its line end.

        SSE says to ignore such a line, which this default does. After ``stop_events`` every
        line comes here, fields, comments and blank lines (``b""``) alike.
        """

    def stop_events(self) -> None:
        """Leave SSE: drop the event being read, and hand every later line to ``other_line``.

        For upstreams that append something else to a stream (Gemini's raw JSON error body):
        the event cut short by it must not be dispatched, and the rest is not SSE.
        """
        self._stopped = True
        self._data = []

    def _check_size(self) -> None:
        # The unfinished line (a held CR may only end a blank line, costing nothing).
        if self._size + len(self._line) > self._max:
            raise EventTooLarge(f"an SSE event exceeds {self._max} bytes")

    def _field(self, line: bytes) -> None:
        if self._stopped:
            self.other_line(line)
            return
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
        elif name == b"retry":
            if value.isdigit():
                self._retry = int(value)
        else:
            self.other_line(line)

    def _dispatch(self) -> Event:
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        event = Event(data, self._event or "message", self._id, self._retry)
        self._data = []
        self._event = ""
        self._retry = None
        return event
