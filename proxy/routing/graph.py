"""From a resolved model tree (``proxy.config.graph``) to the ordered steps of one request.

Name resolution itself (aliases, ``policy/NAME``, ``provider/model``, cycles, unknown names) is
``proxy.config.graph.resolve``, the one resolver, which config validation uses too. Here a tree
becomes steps: fallbacks in file order, loadbalances in the order ``order`` gives (health and
stickiness are the router's business), each step with its tries and backoff.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from proxy.config.graph import Leaf, Node, PolicyNode

__all__ = ["Order", "Step", "Target", "steps"]

# What one attempt goes to: a provider (maybe bound to one of its keys), the upstream model id,
# and the label the client would write. The same value as a resolved leaf.
Target = Leaf

# A loadbalance's members in the order to try them (health and sticky key applied).
Order = Callable[[PolicyNode], list[Node]]


@dataclass(frozen=True, slots=True)
class Step:
    target: Target
    tries: int = 1
    backoff_ms: tuple[int, ...] = (500, 1000, 2000)


def steps(node: Node, order: Order) -> list[Step]:
    """The steps of ``node``: a leaf is one step; a policy's members' steps follow each other.

    A policy's ``retries`` raise its members' tries (never lower a nested policy's); a fallback's
    backoff applies to every step under it, a loadbalance keeps its members' backoff.
    """
    if isinstance(node, Leaf):
        return [Step(node)]
    policy = node.policy
    tries = 1 + policy.retries
    members = [child for _, _, child in node.members] if policy.type == "fallback" else order(node)
    result = []
    for child in members:
        for step in steps(child, order):
            backoff = step.backoff_ms if policy.backoff_ms is None else policy.backoff_ms
            result.append(Step(step.target, max(step.tries, tries), backoff))
    return result
