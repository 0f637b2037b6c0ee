"""Configured secrets never leave: one ``Scrubber`` built from the config replaces every provider
key and client access key in text that is relayed or logged.

It runs only where text from elsewhere becomes an error message (an upstream error body, a
mid-stream error event, the quote of a non-event-stream body) and in log records: never per
chunk of normal content. One precompiled alternation, longest secret first, so a key that
contains another is replaced whole.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from proxy.config import Config

__all__ = ["MIN_SECRET_LEN", "REDACTED", "ScrubFilter", "Scrubber", "install_log_scrubber"]

REDACTED = "[redacted]"
# Shorter values are no real secrets (placeholders such as "ollama"); scrubbing them would
# garble ordinary words in error messages.
MIN_SECRET_LEN = 8


class Scrubber:
    """``scrub(text)`` with every secret replaced by ``[redacted]``; the identity without secrets."""

    __slots__ = ("_pattern",)

    def __init__(self, secrets: Iterable[str]) -> None:
        unique = sorted({s for s in secrets if len(s) >= MIN_SECRET_LEN}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, unique))) if unique else None

    @classmethod
    def from_config(cls, config: Config) -> Scrubber:
        provider_keys = (key for p in config.providers.values() for key in p.api_keys)
        access_keys = (key.secret for key in config.access.keys)
        return cls([*provider_keys, *access_keys])

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(REDACTED, text)


class ScrubFilter(logging.Filter):
    """A handler filter: the record's message (and traceback) with the secrets scrubbed.

    The message is formatted once here and its arguments dropped, so every formatter after it
    (plain text or JSON) sees the scrubbed text.
    """

    def __init__(self, scrubber: Scrubber) -> None:
        super().__init__()
        self.scrubber = scrubber

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.scrubber(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrubber(record.exc_text)
        return True


def install_log_scrubber(scrubber: Scrubber, logger: logging.Logger | None = None) -> None:
    """Add (or update) the scrub filter on every handler of ``logger`` (the root logger)."""
    for handler in (logger or logging.getLogger()).handlers:
        for existing in handler.filters:
            if isinstance(existing, ScrubFilter):
                existing.scrubber = scrubber
                break
        else:
            handler.addFilter(ScrubFilter(scrubber))
