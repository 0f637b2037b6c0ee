"""How deeply a parsed JSON value nests, checked before anything recurses into it.

orjson reads up to 1024 levels but writes at most 254, and every upstream body is written
with orjson: a client body nested deeper parses, then fails inside a provider's mapper as a
500. ``MAX_DEPTH`` leaves room for the few levels a mapper wraps around a client's value (a
tool schema sits deeper in a Gemini body than in the client's), and is far beyond any real
schema or message. The walk visits each container once, level by level, in list
comprehensions: about a third of the time orjson takes to parse the same body.
"""

from __future__ import annotations

__all__ = ["MAX_DEPTH", "too_deep"]

MAX_DEPTH = 128


def too_deep(value: object, limit: int = MAX_DEPTH) -> bool:
    """True when ``value`` has dicts or lists nested more than ``limit`` levels (the value itself
    is level 1; scalars count for nothing)."""
    if type(value) is not dict and type(value) is not list:
        return False
    level: list[object] = [value]
    for _ in range(limit):
        level = [
            child
            for node in level
            for child in (node.values() if type(node) is dict else node)  # type: ignore[attr-defined]
            if type(child) is dict or type(child) is list
        ]
        if not level:
            return False
    return True
