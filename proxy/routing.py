"""Routing: from a client's ``model`` string to the provider attempts that serve it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.config import Config


def validate(config: Config) -> None:
    """Check policies and aliases at load time (filled in by the routing work)."""
