"""Routing: from a client's ``model`` string to the provider attempts that may serve it.

``graph`` turns a resolved model tree into steps, ``attempts`` runs them (retries, backoff,
moving on), ``state`` keeps health and key rotation behind a Protocol, ``router`` ties them
together. Routing imports config; config never imports routing.
"""

from proxy.config.graph import check as validate
from proxy.routing.attempts import Attempts, classify
from proxy.routing.graph import Step, Target
from proxy.routing.order import rendezvous_order, weighted_order
from proxy.routing.router import Router
from proxy.routing.state import LocalState, RoutingState

__all__ = [
    "Attempts",
    "LocalState",
    "Router",
    "RoutingState",
    "Step",
    "Target",
    "classify",
    "rendezvous_order",
    "validate",
    "weighted_order",
]
