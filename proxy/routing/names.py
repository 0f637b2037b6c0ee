"""Model ids that could steer an upstream URL are refused before any provider is chosen.

Gemini puts the model in the URL path; other providers may one day. A model id with a dot
segment (``..``), ``?``, ``#``, ``%``, a backslash, whitespace or a control character is never a
real model name: 400, before it can reach a URL, a header (``X-Proxy-Model``) or a log line.
"""

from __future__ import annotations

import re

from proxy.errors import BadRequest

__all__ = ["check_model_id"]

_UNSAFE = re.compile(r"[?#%\\\s\x00-\x1f\x7f-\x9f\u2028\u2029]|(?:^|/)\.{1,2}(?:/|$)")


def check_model_id(name: str) -> None:
    """Raise a 400 for a model id that could change an upstream URL or break a header."""
    if _UNSAFE.search(name):
        raise BadRequest(
            f"the model {name!r} is not a valid model id (no '..' segments, '?', '#', '%', "
            "backslashes, whitespace or control characters)",
            param="model",
            code="invalid_model",
        )
