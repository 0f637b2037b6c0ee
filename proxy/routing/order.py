"""Orders of a loadbalance's members: weighted random, or sticky by a request's key."""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["rendezvous_order", "sticky_value", "weighted_order"]


def rendezvous_order(members: Sequence[tuple[str, float]], key: str) -> list[str]:
    """Members ordered by weighted rendezvous hashing of ``key`` (first = the sticky choice).

    Score ``-w / ln(u)`` with ``u`` uniform in (0, 1) from a hash of (key, member): the
    probability a member ranks first is its share of the weights, and removing a member
    moves only the keys that ranked it first.
    """
    scored = []
    for name, weight in members:
        digest = hashlib.blake2b(f"{key}\x00{name}".encode(), digest_size=8).digest()
        u = (int.from_bytes(digest, "big") + 0.5) / 2**64
        scored.append((-weight / math.log(u), name))
    scored.sort(reverse=True)
    return [name for _, name in scored]


def weighted_order(members: Sequence[tuple[str, float]], rng: random.Random) -> list[str]:
    """Members in a random weighted order (weighted sampling without replacement)."""
    keyed = [(rng.random() ** (1.0 / weight), name) for name, weight in members if weight > 0]
    keyed.sort(reverse=True)
    return [name for _, name in keyed]


def sticky_value(body: Mapping[str, Any], sticky_key: str | None) -> str | None:
    """The request's value at ``sticky_key`` (a dotted path; ``user`` falls back to
    ``metadata.user_id``), or None when it has none."""
    if not sticky_key:
        return None
    value: Any = body
    for part in sticky_key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None and sticky_key == "user":
        metadata = body.get("metadata")
        value = metadata.get("user_id") if isinstance(metadata, Mapping) else None
    return None if value is None else str(value)
