"""The ``mock`` kind: the built-in mock model, served in-process (see ``proxy.transport.mock``)."""

from __future__ import annotations

from proxy.transport.mock import ADAPTER

__all__ = ["ADAPTER"]
