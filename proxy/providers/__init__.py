"""The registry of wire protocols (``kind`` in the config) and the module of each.

Adding a provider kind is one module exporting ``PROVIDER``, one line here and one fixture folder.
Modules load on first use, so a kind costs nothing until a request needs it.
"""

from __future__ import annotations

import importlib
from functools import cache

from proxy.providers.base import Provider

__all__ = ["KINDS", "provider_kind"]

_MODULES = {
    "openai": "proxy.providers.openai",
    "anthropic": "proxy.providers.anthropic",
    "gemini": "proxy.providers.gemini",
    "mock": "proxy.providers.mock",
}
KINDS = frozenset(_MODULES)


@cache
def provider_kind(kind: str) -> Provider:
    """The ``Provider`` of ``kind`` (one of ``KINDS``)."""
    module = importlib.import_module(_MODULES[kind])
    result: Provider = module.PROVIDER
    return result
