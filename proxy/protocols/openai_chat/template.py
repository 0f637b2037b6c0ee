"""The learnt-frame template: the pass-through's fast path for plain content frames.

Most frames of a stream are content frames that differ only in their content string. The
template is learnt from the stream's first plain content frame: the text before the content
string (``prefix``) and after it up to and with the blank line (``suffix``). OpenAI pads each
chunk with a string of random length at its end (``"obfuscation":"..."}``): then the suffix
stops after that key, ``end`` is the frame's last text (``"}\\n\\n``), and the padding between
them is a second free string, like the content.

Preconditions of learning (``learn``), each needed by the argument below:

1. the template frame holds no trigger: one in its fixed text would pass unnoticed in every
   later frame that shares it;
2. its fixed text holds no backslash: the count of escaped quotes in step 5 must all fall in
   the free strings;
3. the content is not empty (OpenAI's role frame teaches nothing).

Why a read made of frames with the template's ends and only escaped quotes between them holds
nothing but content (``plain``), with byte counts only, no loop over frames (a read may hold a
whole stream):

1. A frame's last text holds its only two newlines: JSON strings escape theirs. So a read with
   exactly twice as many newlines as occurrences of the last text has one last text per frame,
   at the frame's end.
2. The prefix can stand only at a frame start: inside a string its quotes would be escaped.
   As many prefixes as frames, and the read starting with one, means one per frame, at its
   start.
3. A padded template's suffix, quotes and all, can likewise stand only outside strings: as many
   as frames means one per frame.
4. So every frame is prefix, free text, (suffix, free text,) end; the fixed texts together hold
   ``count * quotes`` quotes.
5. Every quote beyond those must therefore be inside a free text, and a free text ends at its
   first unescaped quote: the frames are plain exactly when every extra quote is escaped.
   (One frame with quote-free content needs none of this.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FrameTemplate", "escaped_quotes"]

# OpenAI's padding: a random-length string closing every chunk.
_PADDING_KEY = b',"obfuscation":"'
_PADDED_END = b'"}\n\n'
# Where a content frame's text starts: OpenAI's shape, and the one that repeats the role in
# every delta (OpenRouter).
_CONTENT_KEYS = (b'"delta":{"content":"', b'"delta":{"role":"assistant","content":"')


@dataclass(frozen=True, slots=True)
class FrameTemplate:
    """The two (padded: three) fixed texts of the stream's plain content frames."""

    prefix: bytes
    suffix: bytes
    end: bytes  # b"" unless padded
    quotes: int  # quotes in prefix + suffix + end

    @classmethod
    def learn(cls, out: bytes, first_trigger: Callable[[bytes], int]) -> FrameTemplate | None:
        """The template of the first content frame in ``out`` (whole frames), if it may be one
        (see the preconditions in the module docstring)."""
        for key in _CONTENT_KEYS:
            at = out.find(key)
            while at >= 0 and out[at + len(key) : at + len(key) + 1] == b'"':  # empty content
                at = out.find(key, at + len(key))
            if at >= 0:
                break
        else:
            return None
        boundary = out.rfind(b"\n\n", 0, at)
        begin = boundary + 2 if boundary >= 0 else 0  # where the frame starts
        frame = out[begin : out.find(b"\n\n", at) + 2]
        start = at - begin + len(key)
        end = start
        while True:  # the closing quote: one not preceded by an odd run of backslashes
            end = frame.find(b'"', end)
            if end < 0:
                return None
            before = end  # count the backslashes before it without copying the content
            while before > start and frame[before - 1] == 0x5C:
                before -= 1
            if (end - before) % 2 == 0:
                break
            end += 1
        if b"\\" in frame[:start] or b"\\" in frame[end:] or first_trigger(frame) >= 0:
            return None
        prefix, suffix, last = frame[:start], frame[end:], b""
        pad = suffix.find(_PADDING_KEY)
        if pad >= 0 and suffix.endswith(_PADDED_END):
            suffix, last = suffix[: pad + len(_PADDING_KEY)], _PADDED_END
        return cls(prefix, suffix, last, prefix.count(b'"') + suffix.count(b'"') + last.count(b'"'))

    def plain(self, frames: bytes) -> bool:
        """Whether ``frames`` (whole frames) are all template + free text (the module docstring's
        numbered argument)."""
        prefix, suffix, end = self.prefix, self.suffix, self.end
        last = end or suffix
        if not (frames.startswith(prefix) and frames.endswith(last)):
            return False
        if not end and frames.find(b'"', len(prefix), len(frames) - len(suffix)) < 0:
            return True  # one frame, quote-free content
        newlines = frames.count(b"\n")
        count = frames.count(last)
        if newlines != 2 * count or frames.count(prefix) != count or (end and frames.count(suffix) != count):
            return False
        extra = frames.count(b'"') - count * self.quotes
        if extra <= 0 or b"\\" not in frames:
            return extra == 0
        return escaped_quotes(frames) == extra

    def run(self, out: bytes) -> tuple[int, int] | None:
        """Where the run of plain frames in ``out`` (whole frames) starts and ends, if it has one.

        A big read (a whole stream arriving at once) is mostly such a run between a few other
        frames (the role frame first; finish, usage and [DONE] last): only those need a search.
        """
        start = out.find(self.prefix)
        if self.end:  # the run ends with the frame of the last padded suffix
            at = out.rfind(self.suffix)
            end = out.find(b"\n\n", at) + 2 if at >= 0 else -1
        else:
            end = out.rfind(self.suffix) + len(self.suffix)
        if 0 <= start < end and (start == 0 or out[start - 2 : start] == b"\n\n") and self.plain(out[start:end]):
            return start, end
        return None


def escaped_quotes(data: bytes) -> int:
    """How many quotes in ``data`` follow an odd run of backslashes (escaped ones).

    Inclusion-exclusion over run lengths: quotes after at least 1 backslash, less those after
    at least 2, plus those after at least 3... Each count ends at a distinct quote, so the
    counts are exact, and they stop at the first zero (usually the second).
    """
    total, sign, needle = 0, 1, b'\\"'
    while (found := data.count(needle)) > 0:
        total += sign * found
        sign, needle = -sign, b"\\" + needle
    return total
