"""The registry of wire protocols (``kind`` in the config) and the module of each.

Adding a provider kind is one module exporting ``ADAPTER``, one line here and one fixture folder.
Modules load on first use, so a kind costs nothing until a request needs it.
"""

from __future__ import annotations

import importlib
from functools import cache

from proxy.providers.base import Adapter

__all__ = ["KINDS", "adapter"]

_MODULES = {
    "openai": "proxy.providers.openai",
    "anthropic": "proxy.providers.anthropic",
    "gemini": "proxy.providers.gemini",
    "mock": "proxy.providers.mock",
}
KINDS = frozenset(_MODULES)


@cache
def adapter(kind: str) -> Adapter:
    """The adapter of ``kind`` (one of ``KINDS``)."""
    module = importlib.import_module(_MODULES[kind])
    result: Adapter = module.ADAPTER
    return result
