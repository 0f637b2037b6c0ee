"""The sans-IO SSE decoder against the WHATWG "event stream interpretation" rules.

Every example is decoded whole, byte by byte and at random cut points (``tests.support.splits``) and must
give the same events: a proxy sees upstream bytes split at arbitrary TCP boundaries. The ``whatwg_example*``
cases are the spec's own streams (html.spec.whatwg.org/multipage/server-sent-events.html), named as in
florimondmanca/httpx-sse's tests. Hypothesis then checks split-invariance and agreement with a small
str-based reference written straight from the spec, on generated streams.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.wire.sse import Event, EventTooLarge, IncompleteEvent, SSEDecoder
from tests.support import splits

BOM = b"\xef\xbb\xbf"

Outcome = tuple[list[Event], bool]  # events dispatched, and whether close() raised IncompleteEvent


def decode(parts: list[bytes], max_event_bytes: int | None = None) -> Outcome:
    """Feed ``parts`` to a fresh decoder, then close it."""
    dec = SSEDecoder() if max_event_bytes is None else SSEDecoder(max_event_bytes=max_event_bytes)
    events: list[Event] = []
    for part in parts:
        events += dec.feed(part)
    try:
        events += dec.close()
    except IncompleteEvent:
        return events, True
    return events, False


def decode_every_split(data: bytes, max_event_bytes: int | None = None) -> Outcome:
    """Decode ``data`` cut every way; every way must give the same outcome, which is returned."""
    results = {name: decode(parts, max_event_bytes) for name, parts in splits(data)}
    whole = results["whole"]
    for name, outcome in results.items():
        assert outcome == whole, f"outcome differs when the input is fed {name}"
    return whole


def events_of(data: bytes) -> list[Event]:
    """The events of a stream that ends cleanly, checked under every split."""
    events, incomplete = decode_every_split(data)
    assert not incomplete
    return events


def raises_too_large(parts: list[bytes], max_event_bytes: int) -> bool:
    try:
        decode(parts, max_event_bytes)
    except EventTooLarge:
        return True
    return False


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


# --- The spec's example streams -------------------------------------------------------------------


def test_whatwg_example1_multiline_data_yhoo() -> None:
    assert events_of(b"data: YHOO\ndata: +2\ndata: 10\n\n") == [Event(b"YHOO\n+2\n10")]


def test_whatwg_example2_comment_id_and_leading_space() -> None:
    stream = b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n"
    assert events_of(stream) == [
        Event(b"first event", id="1"),
        Event(b"second event", id=""),  # a bare "id" resets the last event ID to the empty string
        Event(b" third event", id=""),  # only the first space after the colon is stripped
    ]


def test_whatwg_example2_last_block_needs_a_blank_line() -> None:
    events, incomplete = decode_every_split(b"data: first event\n\ndata:  third event\n")
    assert events == [Event(b"first event")]
    assert incomplete


def test_whatwg_example3_data_without_colon() -> None:
    events, incomplete = decode_every_split(b"data\n\ndata\ndata\n\ndata:")
    assert events == [Event(b""), Event(b"\n")]
    assert incomplete  # the last block is not followed by a blank line


def test_whatwg_example4_space_after_colon_is_optional() -> None:
    assert events_of(b"data:test\n\ndata: test\n\n") == [Event(b"test"), Event(b"test")]


def test_whatwg_example_event_types_add_remove() -> None:
    stream = b"event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n"
    assert events_of(stream) == [
        Event(b"73857293", event="add"),
        Event(b"2153", event="remove"),
        Event(b"113411", event="add"),
    ]


# --- Line endings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_line_endings(eol: bytes) -> None:
    stream = eol.join([b"event: x", b"data: a", b"data: b", b"", b"data: c", b"", b""])
    assert events_of(stream) == [Event(b"a\nb", event="x"), Event(b"c")]


def test_mixed_line_endings_in_one_stream() -> None:
    stream = b"data: a\rdata: b\ndata: c\r\n\rdata: d\r\n\ndata: e\n\r\n"
    assert events_of(stream) == [Event(b"a\nb\nc"), Event(b"d"), Event(b"e")]


def test_cr_at_end_of_read_then_lf_is_one_line_break() -> None:
    # Were the CR and LF counted as two breaks, "a" would dispatch alone.
    assert decode([b"data: a\r", b"\ndata: b\r\n\r\n"]) == ([Event(b"a\nb")], False)


def test_cr_at_end_of_read_then_other_byte_is_a_line_break() -> None:
    assert decode([b"data: a\r", b"data: b\r", b"\r"]) == ([Event(b"a\nb")], False)


def test_cr_cr_lf_is_two_line_breaks() -> None:
    assert events_of(b"data: a\r\r\n") == [Event(b"a")]


# --- Fields ---------------------------------------------------------------------------------------


def test_comment_keep_alive_dispatches_nothing() -> None:
    assert events_of(b": keep-alive\n\n: OPENROUTER PROCESSING\n\n") == []


def test_comment_between_data_lines_is_skipped() -> None:
    assert events_of(b"data: a\n: keep-alive\ndata: b\n\n") == [Event(b"a\nb")]


def test_exactly_one_leading_space_stripped() -> None:
    assert events_of(b"data: Hello\n\ndata:  world\n\ndata:   x\n\ndata:\tt\n\n") == [
        Event(b"Hello"),
        Event(b" world"),  # an LLM token that starts with a space keeps it
        Event(b"  x"),
        Event(b"\tt"),  # only a space is stripped, not other whitespace
    ]


def test_trailing_spaces_kept() -> None:
    assert events_of(b"data: a  \n\n") == [Event(b"a  ")]


def test_colons_in_value_kept() -> None:
    assert events_of(b'data: {"a": "b:c"}\n\n') == [Event(b'{"a": "b:c"}')]


def test_field_without_colon_is_empty_value() -> None:
    assert events_of(b"data\n\n") == [Event(b"")]
    assert events_of(b"data\ndata: x\n\n") == [Event(b"\nx")]


def test_empty_data_lines_join() -> None:
    assert events_of(b"data:\ndata:\n\n") == [Event(b"\n")]


def test_event_type_resets_after_dispatch() -> None:
    assert events_of(b"event: ping\ndata: 1\n\ndata: 2\n\n") == [Event(b"1", event="ping"), Event(b"2")]


def test_event_type_without_data_is_reset_by_blank_line() -> None:
    assert events_of(b"event: ping\n\ndata: 1\n\n") == [Event(b"1")]


def test_empty_event_type_is_message() -> None:
    assert events_of(b"event:\ndata: 1\n\nevent\ndata: 2\n\n") == [Event(b"1"), Event(b"2")]


def test_last_event_type_wins() -> None:
    assert events_of(b"event: a\nevent: b\ndata: 1\n\n") == [Event(b"1", event="b")]


def test_id_persists_across_events() -> None:
    assert events_of(b"id: 7\ndata: a\n\ndata: b\n\nid: 8\ndata: c\n\n") == [
        Event(b"a", id="7"),
        Event(b"b", id="7"),
        Event(b"c", id="8"),
    ]


def test_id_with_nul_is_ignored() -> None:
    assert events_of(b"data: test\nid: 123\x00\n\n") == [Event(b"test")]
    assert events_of(b"id: 1\n\ndata: a\nid: 2\x00x\n\n") == [Event(b"a", id="1")]


def test_id_set_by_a_block_without_data() -> None:
    # The block dispatches nothing, but the last event ID buffer keeps its value.
    assert events_of(b"id: 5\n\ndata: a\n\n") == [Event(b"a", id="5")]


def test_retry_digits_only() -> None:
    assert events_of(b"retry: 10000\ndata: a\n\n") == [Event(b"a", retry=10000)]


@pytest.mark.parametrize(
    "value",
    [b"1667a", b"-1", b"1.5", b" 5", b"", b"+3", "\u0663".encode()],
    ids=["letter", "negative", "float", "second-space", "empty", "plus", "arabic-digit"],
)
def test_retry_invalid_is_ignored(value: bytes) -> None:
    assert events_of(b"retry: " + value + b"\ndata: a\n\n") == [Event(b"a")]


def test_retry_goes_with_the_next_event_only() -> None:
    assert events_of(b"retry: 5\ndata: a\n\ndata: b\n\nretry: 6\n\ndata: c\n\n") == [
        Event(b"a", retry=5),
        Event(b"b"),
        Event(b"c", retry=6),  # a block without data dispatches nothing; its retry waits for the next event
    ]


def test_retry_without_data_dispatches_nothing() -> None:
    assert events_of(b"retry: 10000\n\n") == []


def test_unknown_fields_ignored() -> None:
    stream = b"something: ignore\n\nfoo: x\nDATA: y\ndata : z\ndat: w\ndata: a\n\n"
    assert events_of(stream) == [Event(b"a")]


def test_event_with_no_data_dispatches_nothing() -> None:
    assert events_of(b"event: x\nid: 1\n\n") == []


def test_blank_lines_alone() -> None:
    assert events_of(b"\n\n\r\n\r\r\n") == []
    assert events_of(b"") == []


def test_blank_lines_between_events() -> None:
    assert events_of(b"\n\ndata: a\n\n\n\ndata: b\n\n\n") == [Event(b"a"), Event(b"b")]


# --- Byte order mark and UTF-8 --------------------------------------------------------------------


def test_bom_stripped_at_stream_start() -> None:
    assert events_of(BOM + b"data: x\n\n") == [Event(b"x")]


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_bom_split_across_reads(cut: int) -> None:
    stream = BOM + b"data: x\n\n"
    assert decode([stream[:cut], stream[cut:]]) == ([Event(b"x")], False)
    assert decode([b"", stream[:1], b"", stream[1:2], stream[2:]]) == ([Event(b"x")], False)


def test_only_a_bom() -> None:
    assert events_of(BOM) == []


def test_second_bom_is_not_stripped() -> None:
    # A second BOM is text: at a line start it makes the field name "\ufeffdata", an unknown field.
    assert events_of(BOM + BOM + b"data: x\n\n") == []
    assert decode([BOM + b"data: a\n\n", BOM + b"data: b\n\n"]) == ([Event(b"a")], False)


def test_bom_later_in_the_stream_is_kept_as_data() -> None:
    assert events_of(BOM + b"data: a\n\ndata: " + BOM + b"b\n\n") == [Event(b"a"), Event(BOM + b"b")]
    assert decode([BOM, BOM]) == ([], True)  # the second BOM is the start of a line


def test_bom_lookalike_at_start_is_kept() -> None:
    # U+FEF0 shares the BOM's first two bytes: nothing may be dropped once the third byte disagrees.
    lookalike = "\ufef0".encode()
    assert events_of(lookalike + b": c\ndata: x\n\n") == [Event(b"x")]
    assert events_of(b"data: " + lookalike + b"\n\n") == [Event(lookalike)]


def test_non_ascii_utf8_split_across_reads() -> None:
    text = "héllo 日本語 🙂 \u2028 \x85"
    stream = f"event: café\nid: ☃\ndata: {text}\n\n".encode()
    assert events_of(stream) == [Event(text.encode(), event="café", id="☃")]
    # Cut inside each multi-byte character.
    for i in range(len(stream)):
        assert decode([stream[:i], stream[i:]]) == ([Event(text.encode(), event="café", id="☃")], False)


def test_unicode_line_separators_are_not_line_breaks() -> None:
    value = "a\u2028b\x85c\x0bd\x0ce\x1cf".encode()  # str.splitlines() would break at each of these
    assert events_of(b"data: " + value + b"\n\n") == [Event(value)]


# --- close() ---------------------------------------------------------------------------------------


def test_close_on_clean_end_returns_nothing() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: a\n\n") == [Event(b"a")]
    assert dec.close() == []


def test_close_on_fresh_decoder() -> None:
    assert SSEDecoder().close() == []


def test_close_after_comment_and_event_without_data() -> None:
    assert decode([b": keep-alive\n\nevent: x\n"]) == ([], False)


@pytest.mark.parametrize(
    "stream",
    [b"data: a\n\ndata: b", b"data: a\n\nda", b"data: a\n\ndata: b\n", b"data: b\ndata: c\r\n", b"data\r"],
    ids=["partial-line", "partial-field-name", "no-blank-line", "two-lines-no-blank", "held-cr-no-blank"],
)
def test_close_mid_event_raises(stream: bytes) -> None:
    for _, parts in splits(stream):
        dec = SSEDecoder()
        for part in parts:
            dec.feed(part)
        with pytest.raises(IncompleteEvent):
            dec.close()


def test_close_completes_event_ended_by_cr_cr() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: x\r\r") == []  # the second CR may yet be half of a CRLF
    assert dec.close() == [Event(b"x")]


def test_close_after_crlf_split_at_the_end() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: x\r\n\r") == []
    assert dec.feed(b"\n") == [Event(b"x")]
    assert dec.close() == []


def test_incomplete_event_is_an_sse_error() -> None:
    from proxy.wire.sse import SSEError

    assert issubclass(IncompleteEvent, SSEError)
    assert issubclass(EventTooLarge, SSEError)


# --- The buffer cap -------------------------------------------------------------------------------

CAP = 100


def test_one_long_line_over_the_cap_raises() -> None:
    stream = b"data: " + b"x" * (2 * CAP) + b"\n\n"
    for name, parts in splits(stream):
        assert raises_too_large(parts, CAP), name
    # Without its line break, never completed: the buffered line alone must hit the cap.
    dec = SSEDecoder(max_event_bytes=CAP)
    with pytest.raises(EventTooLarge):
        for _ in range(10):
            dec.feed(b"x" * 30)


def test_many_data_lines_over_the_cap_raise() -> None:
    stream = b"data: 123456789\n" * 30 + b"\n"
    for name, parts in splits(stream):
        assert raises_too_large(parts, CAP), name


def test_data_lines_spread_over_reads_raise() -> None:
    dec = SSEDecoder(max_event_bytes=CAP)
    with pytest.raises(EventTooLarge):
        for _ in range(30):
            dec.feed(b"data: 123456789\n")


def test_one_line_just_under_the_cap() -> None:
    stream = b"data: " + b"x" * (CAP - 8) + b"\n\n"  # CAP bytes on the wire
    assert len(stream) == CAP
    assert decode_every_split(stream, CAP) == ([Event(b"x" * (CAP - 8))], False)


def test_many_lines_just_under_the_cap() -> None:
    stream = b"data: abcd\n" * 9 + b"\n"  # CAP - 1 bytes on the wire
    assert decode_every_split(stream, CAP) == ([Event(b"\n".join([b"abcd"] * 9))], False)


def test_cap_is_per_event_not_per_stream() -> None:
    stream = (b"data: " + b"x" * (CAP - 8) + b"\n\n") * 20
    assert decode([stream], CAP) == ([Event(b"x" * (CAP - 8))] * 20, False)
    assert decode([stream[i : i + 1] for i in range(len(stream))], CAP) == ([Event(b"x" * (CAP - 8))] * 20, False)


def test_cap_after_a_large_event_dispatched_in_the_same_read() -> None:
    big = b"x" * (CAP - 10)
    parts = [b"data: " + big + b"\n", b"\ndata: " + b"y" * 20, b"\n\n"]
    assert decode(parts, CAP) == ([Event(big), Event(b"y" * 20)], False)


def test_back_to_back_events_under_the_cap_any_read_size() -> None:
    stream = (b"data: " + b"x" * (CAP - 8) + b"\n\n") * 5
    for size in range(1, len(stream) + 1):
        parts = [stream[i : i + size] for i in range(0, len(stream), size)]
        assert decode(parts, CAP) == ([Event(b"x" * (CAP - 8))] * 5, False), f"reads of {size} bytes"


def test_cap_outcome_does_not_depend_on_the_split() -> None:
    for size in range(CAP - 10, CAP + 2):
        stream = b"data: " + b"x" * size + b"\n\n"
        outcomes = {name: raises_too_large(parts, CAP) for name, parts in splits(stream)}
        assert len(set(outcomes.values())) == 1, (size, outcomes)


_ANY_LINE_NEAR_THE_CAP = {
    "crlf": lambda n: b"data: " + b"x" * n + b"\r\n\r\n",
    "bare-data": lambda n: b"data: " + b"x" * n + b"\ndata\n\n",
    "comment": lambda n: b": " + b"x" * n + b"\ndata: a\n\n",
    "event": lambda n: b"event: " + b"x" * n + b"\ndata: a\n\n",
}


@pytest.mark.parametrize("kind", list(_ANY_LINE_NEAR_THE_CAP))
def test_cap_outcome_does_not_depend_on_the_split_for_any_line(kind: str) -> None:
    make = _ANY_LINE_NEAR_THE_CAP[kind]
    for size in range(CAP - 12, 2 * CAP):
        outcomes = {name: raises_too_large(parts, CAP) for name, parts in splits(make(size))}
        assert len(set(outcomes.values())) == 1, (size, outcomes)


# --- Property tests ----------------------------------------------------------------------------

_LINE_BREAK = re.compile("\r\n|\r|\n")


def reference_decode(stream: bytes) -> Outcome:
    """The spec's interpretation algorithm, literally, on the whole stream as a str.

    Two choices are the decoder's, not the spec's: ``retry`` is reported on the next dispatched event
    (then cleared), and ending mid-line or with undispatched data counts as an incomplete event.
    """
    text = stream.decode("utf-8")
    text = text.removeprefix("\ufeff")
    *lines, tail = _LINE_BREAK.split(text)
    events: list[Event] = []
    data, event_type, last_id, retry = "", "", None, None
    for line in lines:
        if not line:
            if data:
                events.append(Event(data.removesuffix("\n").encode(), event_type or "message", last_id, retry))
                retry = None
            data, event_type = "", ""
            continue
        if line.startswith(":"):
            continue
        if ":" in line:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
        else:
            name, value = line, ""
        if name == "data":
            data += value + "\n"
        elif name == "event":
            event_type = value
        elif name == "id" and "\0" not in value:
            last_id = value
        elif name == "retry" and value and all(c in "0123456789" for c in value):
            retry = int(value)
    return events, bool(tail) or bool(data)


_TRICKY = st.sampled_from(
    [" ", "  ", ":", ": ", "\0", "é", "日", "🙂", "\ufeff", "\ufef0", "\u2028", "\x85", "\t", "5"]
)
_CHAR = st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",))
_VALUE = st.one_of(
    st.lists(st.one_of(_TRICKY, st.sampled_from("ab "), _CHAR), max_size=6).map("".join),
    st.from_regex(r"[0-9]{1,5}", fullmatch=True),
    st.sampled_from(["", " ", "x"]),
)
# Weighted towards the fields that matter; the rest are unknown names, a comment ("") and near misses.
_NAME = st.sampled_from(["data"] * 6 + ["event"] * 3 + ["id"] * 2 + ["retry", "", "foo", "dat", "Data", "data "])
_SEP = st.sampled_from([": ", ": ", ":", ":  ", ""])
_FIELD = st.builds(lambda n, s, v: n + s + (v if s else ""), _NAME, _SEP, _VALUE)
_COMMENT = _VALUE.map(lambda v: ":" + v)
_ID = st.builds(lambda s, v: "id" + s + v, _SEP, st.sampled_from(["7", "8", "a\0b", "\0"]))
_RETRY = st.builds(lambda s, v: "retry" + s + v, _SEP, st.sampled_from(["5", "10000", "1x", "-1", ""]))
_EOL = st.sampled_from(["\n", "\r\n", "\r"])
_BLOCK = st.lists(st.tuples(st.one_of(_FIELD, _FIELD, _FIELD, _ID, _RETRY, _COMMENT), _EOL), max_size=5)
_PREFIX = st.sampled_from(["", "", "", "\ufeff", "\ufeff\ufeff", "\ufef0"])
_TAIL = st.one_of(st.just(""), st.just(""), _FIELD, _COMMENT)


@st.composite
def sse_streams(draw: st.DrawFn) -> bytes:
    """Blocks of field and comment lines, each closed by a blank line (so events dispatch), every line
    ending in LF, CRLF or CR at random; then maybe an unterminated last line."""
    out = [draw(_PREFIX)]
    for block in draw(st.lists(_BLOCK, max_size=6)):
        out += [line + eol for line, eol in block]
        out.append(draw(_EOL))
    out.append(draw(_TAIL))
    return "".join(out).encode()


_PROPERTY = settings(max_examples=200, deadline=None)


@_PROPERTY
@given(sse_streams(), st.data())
def test_any_split_gives_the_same_events(stream: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12), label="cuts")
    whole = decode([stream])
    assert decode([stream[i : i + 1] for i in range(len(stream))]) == whole
    assert decode(chunks(stream, cuts)) == whole


@_PROPERTY
@given(sse_streams(), st.data())
def test_matches_reference_implementation(stream: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12), label="cuts")
    expected = reference_decode(stream)
    assert decode([stream]) == expected
    assert decode(chunks(stream, cuts)) == expected


def test_reference_implementation_on_the_spec_examples() -> None:
    # The reference itself, checked on the hand-written cases above, so a bug in it cannot hide one in both.
    assert reference_decode(b"data\n\ndata\ndata\n\ndata:") == ([Event(b""), Event(b"\n")], True)
    assert reference_decode(b"data: a\r\r\n") == ([Event(b"a")], False)
    assert reference_decode(BOM + BOM + b"data: x\n\n") == ([], False)
    assert reference_decode(b"retry: 5\n\nid: 1\x00\ndata:  a\n\n") == ([Event(b" a", retry=5)], False)


# --- Cost ------------------------------------------------------------------------------------------


def test_a_long_event_costs_time_linear_in_its_size() -> None:
    from tests.linear import assert_linear

    def make() -> Callable[[bytes], object]:
        return SSEDecoder().feed

    # One data line growing over a thousand reads, then its end: the unfinished line must not
    # be re-copied or re-scanned by every read. A CRLF stream takes the normalising branch too.
    assert_linear(make, lambda n: b"data: " + b"x" * n + b"\n\n")
    assert_linear(make, lambda n: b"data: " + b"x" * (n // 2) + b"\r\ndata: " + b"y" * (n // 2) + b"\r\n\r\n")


# --- The hook for lines that are no SSE field ------------------------------------------------------


class Collecting(SSEDecoder):
    """Collects the lines SSE ignores; leaves SSE at a line saying ``STOP``."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[bytes] = []

    def other_line(self, line: bytes) -> None:
        self.lines.append(line)
        if line == b"STOP":
            self.stop_events()


def collect(parts: list[bytes]) -> tuple[list[Event], list[bytes]]:
    dec = Collecting()
    events = [e for part in parts for e in dec.feed(part)]
    events += dec.close()
    return events, dec.lines


def test_other_line_sees_unknown_fields_only() -> None:
    stream = b": comment\ndata: a\nfoo: bar\nevent: e\nid: 1\nretry: 5\nplain\n\n"
    for name, parts in splits(stream):
        assert collect(parts) == ([Event(b"a", "e", "1", 5)], [b"foo: bar", b"plain"]), name


def test_stop_events_drops_the_event_being_read_and_hands_over_every_later_line() -> None:
    stream = b'data: a\n\ndata: cut short\nSTOP\ndata: b\n: c\n\n{\r\n  "x": 1\r\n}'
    expected = ([Event(b"a")], [b"STOP", b"data: b", b": c", b"", b"{", b'  "x": 1', b"}"])
    for name, parts in splits(stream):
        assert collect(parts) == expected, name


def test_after_stop_events_a_line_cut_by_the_end_is_no_incomplete_event() -> None:
    dec = Collecting()
    assert dec.feed(b"STOP\nhalf a li") == []
    assert dec.close() == []
    assert dec.lines == [b"STOP", b"half a li"]
