"""The one resolver of model strings: alias -> ``policy/NAME`` -> ``provider/model``, as a tree.

It lives at the config layer because a config file is only valid when its names resolve (no
unknown member, no cycle), and ``build`` must say so with the file named; routing turns the tree
into ordered attempts per request (``proxy.routing.graph``). Errors are proxy errors (400/404)
so a request for an unknown name gets the same words a bad config file does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from proxy.config.model import POLICY_PREFIX, Config, ConfigError, PolicyConfig, ProviderConfig
from proxy.config.presets import infer_provider
from proxy.errors import BadRequest, NotFound, ProxyError

__all__ = ["Leaf", "Node", "PolicyNode", "Unresolvable", "check", "leaf", "resolve"]


@dataclass(frozen=True, slots=True)
class Leaf:
    """One provider model. ``label`` is what the client wrote (``google/gemini-2.5-flash``)."""

    provider: ProviderConfig
    model: str
    label: str


@dataclass(frozen=True, slots=True)
class PolicyNode:
    """A policy and its resolved members, each with its weight, in file order."""

    name: str
    policy: PolicyConfig
    members: tuple[tuple[str, float, Node], ...]


Node = Leaf | PolicyNode


class Unresolvable(Exception):
    """A cycle, or an unknown name inside a policy or alias: a config problem, found by ``check``.

    A validated config has neither; a request naming an unknown model gets a ProxyError instead.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def leaf(config: Config, name: str) -> Leaf:
    """The provider model ``name`` points to (``provider/model``, or a bare id whose prefix names
    its provider, see ``MODEL_PREFIXES``); 400/404 otherwise."""
    prefix, slash, model = name.partition("/")
    known = ", ".join([*config.providers, *config.provider_aliases])
    if not slash and name:
        inferred = infer_provider(name)
        provider = config.provider(inferred) if inferred is not None else None
        if provider is None:
            choices = [*(f"{p}/..." for p in config.providers), *config.aliases]
            choices += [POLICY_PREFIX + p for p in config.policies]
            raise NotFound(
                f"model {name!r} names no provider, policy or alias (write 'provider/model'); known: "
                + ", ".join(choices),
                param="model",
                code="model_not_found",
            )
        return Leaf(provider, name, f"{provider.name}/{name}")
    if not prefix or not model:
        raise BadRequest(
            f"model {name!r} must be 'provider/model', a policy or an alias; providers: {known}", param="model"
        )
    provider = config.provider(prefix)
    if provider is None:
        raise NotFound(
            f"unknown provider {prefix!r} in model {name!r}; known providers: {known}",
            param="model",
            code="model_not_found",
        )
    return Leaf(provider, model, name)


def resolve(config: Config, name: str, path: tuple[str, ...] = ()) -> Node:
    """The tree ``name`` leads to. Raises NotFound/BadRequest for unknown names, Cycle for cycles."""
    if name in path:
        raise Unresolvable("policies/aliases form a cycle: " + " -> ".join((*path[path.index(name) :], name)))
    if name in config.aliases:
        return resolve(config, config.aliases[name], (*path, name))
    if name.startswith(POLICY_PREFIX):
        policy = config.policy(name)
        if policy is None:
            known = ", ".join(POLICY_PREFIX + p for p in config.policies) or "none configured"
            raise NotFound(f"unknown policy {name!r}; policies: {known}", param="model", code="model_not_found")
        inner = (*path, name)
        return PolicyNode(name, policy, tuple((m, w, _member(config, m, inner)) for m, w in policy.members))
    return leaf(config, name)


def _member(config: Config, name: str, path: tuple[str, ...]) -> Node:
    try:
        return resolve(config, name, path)
    except ProxyError as exc:  # an unknown member: name the policy or alias that refers to it
        raise Unresolvable(f"{path[-1]!r} refers to {name!r}: {exc.message}") from None


def check(config: Config, on_error: Callable[[str], ConfigError] | None = None) -> None:
    """Reject unknown members and cycles among policies and aliases, naming the path and file."""
    fail = on_error or (lambda message: ConfigError(f"{config.source}: {message}"))
    for alias in config.aliases:
        if alias.startswith(POLICY_PREFIX):
            raise fail(f"alias {alias!r} would hide policies: 'policy/' names only policies")
        prefix = alias.split("/", 1)[0]
        if "/" in alias and config.provider(prefix) is not None:
            raise fail(f"alias {alias!r} would hide provider {prefix!r}")
    names = [*config.aliases, *(POLICY_PREFIX + p for p in config.policies)]
    for name in names:
        try:
            resolve(config, name)
        except Unresolvable as exc:
            raise fail(exc.message) from None
        except ProxyError as exc:  # an alias naming a missing target directly
            raise fail(f"{name!r} refers to {config.aliases.get(name, name)!r}: {exc.message}") from None
