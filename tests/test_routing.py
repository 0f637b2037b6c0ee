"""Routing decisions as pure functions: resolution, weights, stickiness, health, keys, the attempt
sequence (retries, backoff, Retry-After, budget) and config validation. No network, no sleeping:
``asyncio.sleep`` in ``proxy.routing`` is replaced by a recorder that advances a fake clock."""

from __future__ import annotations

import itertools
import random
import tomllib
import types
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from proxy.config import Config, ConfigError, HealthRule, build
from proxy.errors import BadRequest, MissingKey, NotFound, ProxyError, UpstreamError
from proxy.routing import Attempts, Router, Target, rendezvous_order, validate, weighted_order
from proxy.routing import attempts as attempts_module

MESSAGES = [{"role": "user", "content": "hi"}]
PROVIDERS: dict[str, Any] = {
    "mock": {"chunk_delay_ms": 0},
    "multi": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_keys": ["k1", "k2", "k3"]},
}


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(
    policies: dict[str, Any] | None = None,
    aliases: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    providers: dict[str, Any] | None = None,
) -> Config:
    data: dict[str, Any] = {"providers": {**PROVIDERS, **(providers or {})}}
    if policies:
        data["policies"] = policies
    if aliases:
        data["aliases"] = aliases
    return build(data, "<test>", env or {})


def body(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": MESSAGES, **extra}


def err(status: int, retry_after: float | None = None) -> ProxyError:
    e = UpstreamError(f"upstream returned HTTP {status}", status=status)
    e.retry_after = retry_after
    return e


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> tuple[list[float], Clock]:
    """Delays ``Attempts`` asked to sleep; the fake clock advances by each one."""
    clock = Clock()
    delays: list[float] = []

    async def fake_sleep(delay: float) -> None:
        delays.append(delay)
        clock.now += delay

    monkeypatch.setattr(attempts_module, "asyncio", types.SimpleNamespace(sleep=fake_sleep))
    return delays, clock


async def walk(attempts: Attempts, fail: Callable[[Target, int], ProxyError | None]) -> tuple[list[str], Any]:
    """Drive ``attempts`` like the handler: labels tried in order, and how it ended."""
    tried: list[str] = []
    while True:
        try:
            target = await attempts.next()
        except ProxyError as exc:
            return tried, exc
        tried.append(target.label)
        error = fail(target, len(tried))
        if error is None:
            attempts.succeeded(target)
            return tried, target
        try:
            attempts.failed(target, error)
        except ProxyError as exc:
            return tried, exc


async def chain_of(router: Router, model: str, **extra: Any) -> list[str]:
    """Every model the request would try, in order (each fails with a non-retryable 404)."""
    tried, _ = await walk(router.attempts(body(model, **extra)), lambda t, n: err(404))
    return tried


# -- resolution --------------------------------------------------------------------------------------


def test_provider_model_keeps_slashes_in_the_upstream_id() -> None:
    router = Router(make())
    target = router.target("openrouter/meta-llama/llama-3.3-70b-instruct:free")
    assert target.provider.name == "openrouter"
    assert target.model == "meta-llama/llama-3.3-70b-instruct:free"
    assert target.label == "openrouter/meta-llama/llama-3.3-70b-instruct:free"


@pytest.mark.parametrize("name", ["/gpt-4o", "openai/", ""])
def test_malformed_model_is_a_400_naming_the_param(name: str) -> None:
    with pytest.raises(BadRequest) as info:
        Router(make()).target(name)
    assert info.value.status == 400 and info.value.param == "model"
    assert "provider/model" in info.value.message


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("claude-sonnet-4-5", "anthropic/claude-sonnet-4-5"),
        ("claude-haiku-4-5-20251001", "anthropic/claude-haiku-4-5-20251001"),
        ("gpt-4o", "openai/gpt-4o"),
        ("chatgpt-4o-latest", "openai/chatgpt-4o-latest"),
        ("o3", "openai/o3"),
        ("o4-mini", "openai/o4-mini"),
        ("gemini-2.5-flash", "gemini/gemini-2.5-flash"),
        ("magistral-medium-latest", "mistral/magistral-medium-latest"),
        ("codestral-latest", "mistral/codestral-latest"),
    ],
)
def test_a_bare_model_id_goes_to_the_provider_its_prefix_names(name: str, label: str) -> None:
    target = Router(make()).target(name)
    assert (target.label, target.model) == (label, name)


def test_an_alias_of_a_bare_id_wins_over_the_prefix() -> None:
    router = Router(make(aliases={"claude-sonnet-4-5": "mock/echo"}))
    (step,) = router._steps("claude-sonnet-4-5", {})
    assert step.target.label == "mock/echo"


@pytest.mark.parametrize("name", ["policy", "o3x", "llama-3.3", "claude"])
def test_a_bare_id_with_no_known_prefix_is_a_404_listing_what_exists(name: str) -> None:
    with pytest.raises(NotFound) as info:
        Router(make(aliases={"fast": "mock/echo"})).target(name)
    assert info.value.status == 404 and info.value.param == "model" and info.value.code == "model_not_found"
    assert "mock/..." in info.value.message and "fast" in info.value.message


def test_unknown_provider_is_a_404_listing_the_known_ones() -> None:
    with pytest.raises(NotFound) as info:
        Router(make()).target("nope/gpt-4o")
    e = info.value
    assert e.status == 404 and e.code == "model_not_found" and e.param == "model"
    assert "'nope'" in e.message and "openai" in e.message and "mock" in e.message


async def test_unknown_policy_is_a_404_listing_the_policies() -> None:
    router = Router(make({"known": {"type": "fallback", "models": ["mock/a"]}}))
    with pytest.raises(NotFound) as info:
        router.attempts(body("policy/nope"))
    assert info.value.status == 404 and info.value.code == "model_not_found"
    assert "policy/known" in info.value.message
    with pytest.raises(NotFound, match="none configured"):
        Router(make()).attempts(body("policy/nope"))


async def test_aliases_and_nested_policies_resolve_in_order() -> None:
    config = make(
        {
            "inner": {"type": "fallback", "models": ["mock/b", "mock/c"]},
            "lb": {"type": "loadbalance", "models": {"policy/inner": 1}},
            "outer": {"type": "fallback", "models": ["mock/a", "in", "mock/d"]},
        },
        {"in": "policy/lb", "top": "also", "also": "policy/outer", "plain": "mock/z"},
    )
    router = Router(config)
    assert await chain_of(router, "policy/outer") == ["mock/a", "mock/b", "mock/c", "mock/d"]
    assert await chain_of(router, "top") == ["mock/a", "mock/b", "mock/c", "mock/d"]
    assert await chain_of(router, "plain") == ["mock/z"]
    assert await chain_of(router, "mock/x/y") == ["mock/x/y"]


async def test_a_loadbalance_member_may_be_a_fallback_policy() -> None:
    config = make(
        {
            "reliable": {"type": "fallback", "models": ["mock/r1", "mock/r2"]},
            "spread": {"type": "loadbalance", "models": {"policy/reliable": 1, "mock/solo": 1}, "sticky_key": "user"},
        }
    )
    router = Router(config)
    chains = {tuple(await chain_of(router, "policy/spread", user=f"u{i}")) for i in range(200)}
    assert chains == {("mock/r1", "mock/r2", "mock/solo"), ("mock/solo", "mock/r1", "mock/r2")}


def test_models_lists_providers_policies_and_aliases() -> None:
    config = make({"p": {"type": "fallback", "models": ["mock/a"]}}, {"fast": "policy/p"})
    ids = dict(Router(config).models())
    assert ids["policy/p"] == "sse-proxy" and ids["fast"] == "sse-proxy"
    assert ids["mock/echo"] == "mock"
    assert "openai/gpt-4o" not in ids  # no key: not usable


# -- weighted choice ---------------------------------------------------------------------------------

# Chi-square critical values at p = 0.001: a correct implementation fails one seed in a thousand.
CHI2_999 = {1: 10.83, 2: 13.82, 3: 16.27, 5: 20.52}


def chi2(observed: Counter[Any], expected: dict[Any, float]) -> float:
    assert set(observed) <= set(expected), set(observed) - set(expected)
    return sum((observed[k] - e) ** 2 / e for k, e in expected.items())


def plackett_luce(members: Sequence[tuple[str, float]]) -> dict[tuple[str, ...], float]:
    """Probability of each full order under weighted sampling without replacement."""
    probs = {}
    for perm in itertools.permutations(members):
        p, left = 1.0, sum(w for _, w in members)
        for _, w in perm:
            p *= w / left
            left -= w
        probs[tuple(name for name, _ in perm)] = p
    return probs


MEMBERS3 = [("openai/gpt-4o-mini", 5.0), ("groq/llama", 3.0), ("mock/c", 2.0)]
N = 6000


def test_weighted_order_first_choice_follows_the_weights() -> None:
    rng = random.Random(1234)
    members = [("openai/gpt-4o-mini", 70.0), ("groq/llama-3.3-70b-versatile", 30.0)]
    firsts = Counter(weighted_order(members, rng)[0] for _ in range(N))
    assert chi2(firsts, {m: N * w / 100 for m, w in members}) < CHI2_999[1], firsts


def test_weighted_order_whole_order_is_weighted_sampling_without_replacement() -> None:
    rng = random.Random(99)
    orders = Counter(tuple(weighted_order(MEMBERS3, rng)) for _ in range(N))
    expected = {order: N * p for order, p in plackett_luce(MEMBERS3).items()}
    assert chi2(orders, expected) < CHI2_999[5], orders


def test_rendezvous_first_choice_follows_the_weights_over_distinct_keys() -> None:
    firsts = Counter(rendezvous_order(MEMBERS3, f"user-{i}")[0] for i in range(N))
    assert chi2(firsts, {m: N * w / 10 for m, w in MEMBERS3}) < CHI2_999[2], firsts
    orders = Counter(tuple(rendezvous_order(MEMBERS3, f"key:{i}")) for i in range(N))
    expected = {order: N * p for order, p in plackett_luce(MEMBERS3).items()}
    assert chi2(orders, expected) < CHI2_999[5], orders


def test_weights_are_normalised() -> None:
    scaled = [(m, w * 1000) for m, w in MEMBERS3]
    fractions = [(m, w / 10) for m, w in MEMBERS3]
    for i in range(500):
        key = f"k{i}"
        assert rendezvous_order(MEMBERS3, key) == rendezvous_order(scaled, key) == rendezvous_order(fractions, key)
    a, b, c = random.Random(5), random.Random(5), random.Random(5)
    for _ in range(500):
        assert weighted_order(MEMBERS3, a) == weighted_order(scaled, b) == weighted_order(fractions, c)


def test_every_member_appears_once_in_every_order() -> None:
    rng = random.Random(3)
    for i in range(300):
        assert sorted(rendezvous_order(MEMBERS3, str(i))) == sorted(m for m, _ in MEMBERS3)
        assert sorted(weighted_order(MEMBERS3, rng)) == sorted(m for m, _ in MEMBERS3)


def test_same_sticky_key_always_lands_on_the_same_model() -> None:
    for i in range(300):
        key = f"user-{i}"
        first = rendezvous_order(MEMBERS3, key)
        assert all(rendezvous_order(MEMBERS3, key) == first for _ in range(5))
        assert rendezvous_order(list(reversed(MEMBERS3)), key) == first  # member order in the file is irrelevant


SPREAD = {"type": "loadbalance", "models": {"mock/mini": 70, "mock/llama": 30}, "sticky_key": "user"}


async def test_router_spreads_users_by_weight_and_keeps_each_on_one_model() -> None:
    router = Router(make({"spread": SPREAD}), rng=random.Random(0))
    firsts = {}
    for i in range(3000):
        target = await router.attempts(body("policy/spread", user=f"user-{i}")).next()
        firsts[f"user-{i}"] = target.label
    counts = Counter(firsts.values())
    assert chi2(counts, {"mock/mini": 2100, "mock/llama": 900}) < CHI2_999[1], counts
    for user, first in list(firsts.items())[:200]:
        for _ in range(3):
            assert (await router.attempts(body("policy/spread", user=user)).next()).label == first


async def test_sticky_key_paths_and_metadata_user_id() -> None:
    nested = {**SPREAD, "sticky_key": "metadata.tenant"}
    router = Router(make({"spread": SPREAD, "tenant": nested}))
    for i in range(100):
        expected = rendezvous_order([("mock/mini", 70.0), ("mock/llama", 30.0)], f"t{i}")[0]
        by_user = await router.attempts(body("policy/spread", user=f"t{i}")).next()
        by_metadata = await router.attempts(body("policy/spread", metadata={"user_id": f"t{i}"})).next()
        by_tenant = await router.attempts(body("policy/tenant", metadata={"tenant": f"t{i}"})).next()
        assert by_user.label == by_metadata.label == by_tenant.label == expected


async def test_without_a_sticky_value_the_choice_is_weighted_random() -> None:
    router = Router(make({"spread": SPREAD}), rng=random.Random(42))
    counts = Counter([(await router.attempts(body("policy/spread")).next()).label for _ in range(3000)])
    assert chi2(counts, {"mock/mini": 2100, "mock/llama": 900}) < CHI2_999[1], counts


async def test_loadbalance_members_follow_as_fallbacks() -> None:
    router = Router(make({"spread": SPREAD}))
    for i in range(50):
        assert sorted(await chain_of(router, "policy/spread", user=f"u{i}")) == ["mock/llama", "mock/mini"]


# -- health ------------------------------------------------------------------------------------------

LB3 = {"mock/a": 50, "mock/b": 30, "mock/c": 20}
MEMBERS_LB3 = [(m, float(w)) for m, w in LB3.items()]
HEALTH = HealthRule(failure_threshold=2, cooldown_s=10)
HEALTH_KEYS = {"failure_threshold": 2, "cooldown_s": 10}


def test_only_the_unhealthy_members_keys_move_and_return_after_cooldown() -> None:
    clock = Clock()
    router = Router(make(), clock=clock)
    keys = [f"user-{i}" for i in range(3000)]
    before = {k: router.order_members(MEMBERS_LB3, k, HEALTH) for k in keys}
    b = router.target("mock/b")

    router.record(b, err(500))
    assert {k: router.order_members(MEMBERS_LB3, k, HEALTH) for k in keys} == before  # below the threshold
    router.record(b, err(503))
    assert not router.healthy("mock/b", HEALTH)
    during = {k: router.order_members(MEMBERS_LB3, k, HEALTH) for k in keys}
    for k in keys:
        if before[k][0] == "mock/b":
            assert during[k][0] != "mock/b" and during[k][-1] == "mock/b"  # skipped, kept as a last resort
            assert during[k][0] == before[k][1]  # its users move to their own second choice
        else:
            assert during[k][0] == before[k][0]
    moved = sum(before[k][0] == "mock/b" for k in keys)
    assert 0 < moved < len(keys)

    clock.now += 9.9
    assert not router.healthy("mock/b", HEALTH)
    clock.now += 0.1
    assert router.healthy("mock/b", HEALTH)  # the cool-down passed: tried again
    assert {k: router.order_members(MEMBERS_LB3, k, HEALTH) for k in keys} == before

    router.record(b, err(500))  # failed again after the cool-down: rests again at once
    assert not router.healthy("mock/b", HEALTH)
    clock.now += 10
    router.record(b, None)  # a success forgets the failures
    router.record(b, err(500))
    assert router.healthy("mock/b", HEALTH)


def test_failures_must_be_consecutive() -> None:
    router = Router(make(), clock=Clock())
    b = router.target("mock/b")
    for _ in range(5):
        router.record(b, err(500))
        router.record(b, None)
    assert router.healthy("mock/b", HEALTH)


def test_all_unhealthy_are_still_tried_heaviest_first() -> None:
    router = Router(make(), clock=Clock())
    for m in LB3:
        for _ in range(2):
            router.record(router.target(m), err(500))
    assert router.order_members(MEMBERS_LB3, "anyone", HEALTH) == ["mock/a", "mock/b", "mock/c"]
    assert router.order_members(MEMBERS_LB3, None, HEALTH) == ["mock/a", "mock/b", "mock/c"]


async def test_failed_attempts_make_a_member_unhealthy_through_the_policy() -> None:
    clock = Clock()
    policy = {"type": "loadbalance", "models": LB3, "sticky_key": "user", **HEALTH_KEYS}
    router = Router(make({"lb": policy}), clock=clock)
    user = next(f"u{i}" for i in range(1000) if rendezvous_order(MEMBERS_LB3, f"u{i}")[0] == "mock/b")
    for _ in range(2):
        attempts = router.attempts(body("policy/lb", user=user))
        tried, served = await walk(attempts, lambda t, n: err(502) if n == 1 else None)
        assert tried[0] == "mock/b" and served.label == tried[1]
    tried, _ = await walk(router.attempts(body("policy/lb", user=user)), lambda t, n: None)
    assert tried[0] != "mock/b"
    clock.now += 10
    tried, _ = await walk(router.attempts(body("policy/lb", user=user)), lambda t, n: None)
    assert tried == ["mock/b"]


async def test_client_mistakes_do_not_make_a_model_unhealthy() -> None:
    router = Router(make({"lb": {"type": "loadbalance", "models": LB3, "sticky_key": "user", **HEALTH_KEYS}}))
    for _ in range(5):
        tried, outcome = await walk(router.attempts(body("mock/b")), lambda t, n: err(400))
        assert tried == ["mock/b"] and outcome.status == 400
    assert router.healthy("mock/b", HEALTH)


def test_a_nested_member_is_healthy_while_any_of_its_models_is() -> None:
    config = make(
        {
            "inner": {"type": "fallback", "models": ["mock/x", "mock/y"]},
            "lb": {"type": "loadbalance", "models": {"policy/inner": 1, "mock/z": 1}},
        },
        {"ix": "policy/inner"},
    )
    router = Router(config, clock=Clock())
    for _ in range(2):
        router.record(router.target("mock/x"), err(500))
    assert router.healthy("policy/inner", HEALTH) and router.healthy("ix", HEALTH)
    for _ in range(2):
        router.record(router.target("mock/y"), err(500))
    assert not router.healthy("policy/inner", HEALTH) and not router.healthy("ix", HEALTH)
    members = [("policy/inner", 100.0), ("mock/z", 1.0)]
    assert all(router.order_members(members, f"k{i}", HEALTH)[0] == "mock/z" for i in range(100))


# -- several keys ------------------------------------------------------------------------------------


def keys_used(router: Router, target: Target, n: int) -> list[str | None]:
    return [router.with_key(target).provider.api_key for _ in range(n)]


def test_keys_rotate_and_a_rate_limited_key_is_skipped_until_retry_after() -> None:
    clock = Clock()
    router = Router(make(), clock=clock)
    target = router.target("multi/gpt-4o")
    assert keys_used(router, target, 6) == ["k1", "k2", "k3", "k1", "k2", "k3"]
    k2 = router.with_key(target)
    k2 = router.with_key(target)
    assert k2.provider.api_key == "k2" and k2.label == "multi/gpt-4o" and k2.model == "gpt-4o"
    router.key_limited(k2, 5.0)
    assert router.has_free_key(target)
    assert keys_used(router, target, 4) == ["k3", "k1", "k3", "k1"]
    clock.now += 5
    assert keys_used(router, target, 3) == ["k2", "k3", "k1"]


def test_with_every_key_limited_the_first_to_recover_is_used() -> None:
    clock = Clock()
    router = Router(make(), clock=clock)
    target = router.target("multi/gpt-4o")
    for wait in (30, 5, 60):  # k1, k2, k3 in turn
        router.key_limited(router.with_key(target), wait)
    assert not router.has_free_key(target)
    assert keys_used(router, target, 2) == ["k2", "k2"]


def test_a_429_without_retry_after_rests_the_key_for_the_cooldown() -> None:
    clock = Clock()
    router = Router(make(), clock=clock)
    target = router.target("multi/gpt-4o")
    router.key_limited(router.with_key(target), None)  # k1
    clock.now += 29
    assert "k1" not in keys_used(router, target, 4)
    clock.now += 1
    assert "k1" in keys_used(router, target, 3)


def test_api_key_envs_spread_over_the_keys_they_name() -> None:
    provider = {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_envs": ["K_A", "K_B", "K_C"]}
    router = Router(make(providers={"pool": provider}, env={"K_A": "a", "K_B": "b"}))
    assert keys_used(router, router.target("pool/m"), 4) == ["a", "b", "a", "b"]


def test_single_key_providers_are_bound_once_and_keyless_ones_fail_clearly() -> None:
    router = Router(make(env={"OPENAI_API_KEY": "sk-one"}))
    assert keys_used(router, router.target("openai/gpt-4o"), 2) == ["sk-one", "sk-one"]
    with pytest.raises(MissingKey, match="ANTHROPIC_API_KEY") as info:
        router.with_key(router.target("anthropic/claude-sonnet-4-5"))
    assert info.value.status == 401


async def test_a_429_on_one_key_retries_at_once_on_another(sleeps: tuple[list[float], Clock]) -> None:
    delays, clock = sleeps
    config = make({"p": {"type": "fallback", "models": ["multi/m", "mock/b"], "retries": 1, "backoff_ms": [500]}})
    router = Router(config, clock=clock, rng=random.Random(0))
    attempts = router.attempts(body("policy/p"))
    first = await attempts.next()
    attempts.failed(first, err(429, retry_after=20.0))
    second = await attempts.next()
    assert (first.provider.api_key, second.provider.api_key) == ("k1", "k2")
    assert second.label == "multi/m" and delays == []  # the 429 and its Retry-After bind k1 only
    assert attempts.count == 2


async def test_a_429_on_a_single_key_waits_its_retry_after(sleeps: tuple[list[float], Clock]) -> None:
    delays, clock = sleeps
    config = make({"p": {"type": "fallback", "models": ["mock/a", "mock/b"], "retries": 1, "backoff_ms": [100]}})
    router = Router(config, clock=clock)
    tried, _ = await walk(router.attempts(body("policy/p")), lambda t, n: err(429, 3.0) if n == 1 else None)
    assert tried == ["mock/a", "mock/a"] and delays == [3.0]


# -- the attempt sequence ----------------------------------------------------------------------------


def chain(
    clock: Clock | None = None,
    retries: int = 0,
    backoff: Sequence[int] = (100, 200),
    models: Sequence[str] = ("mock/a", "mock/b", "mock/c"),
    **extra: Any,
) -> Router:
    policy = {"type": "fallback", "models": list(models), "retries": retries, "backoff_ms": list(backoff), **extra}
    return Router(make({"p": policy}), clock=clock or Clock(), rng=random.Random(7))


async def test_each_model_is_tried_one_plus_retries_times_with_jittered_backoff(
    sleeps: tuple[list[float], Clock],
) -> None:
    delays, clock = sleeps
    router = chain(clock, retries=2)
    last: list[ProxyError] = []

    def fail(t: Target, n: int) -> ProxyError:
        last.append(err(500))
        return last[-1]

    attempts = router.attempts(body("policy/p"))
    tried, outcome = await walk(attempts, fail)
    assert tried == ["mock/a"] * 3 + ["mock/b"] * 3 + ["mock/c"] * 3
    assert outcome is last[-1]  # the last error is what the client gets
    assert attempts.count == 9
    assert len(delays) == 6  # between tries of one model only, never when moving on
    for i, delay in enumerate(delays):
        base = (0.1, 0.2)[i % 2]
        assert 0.9 * base <= delay <= 1.1 * base
    assert len(set(delays)) == 6  # jittered


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 529])
async def test_transient_errors_are_retried_on_the_same_model(status: int, sleeps: tuple[list[float], Clock]) -> None:
    router = chain(retries=1, backoff=[0])  # a zero backoff never sleeps
    tried, target = await walk(router.attempts(body("policy/p")), lambda t, n: err(status) if n < 4 else None)
    assert tried == ["mock/a", "mock/a", "mock/b", "mock/b"] and target.label == "mock/b"


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_provider_trouble_moves_on_without_retry(status: int, sleeps: tuple[list[float], Clock]) -> None:
    delays, _ = sleeps
    router = chain(retries=3)
    attempts = router.attempts(body("policy/p"))
    tried, target = await walk(attempts, lambda t, n: err(status) if n < 3 else None)
    assert tried == ["mock/a", "mock/b", "mock/c"] and target.label == "mock/c"
    assert delays == [] and attempts.count == 3


@pytest.mark.parametrize("status", [400, 413, 422])
async def test_client_mistakes_end_the_request_at_once(status: int, sleeps: tuple[list[float], Clock]) -> None:
    delays, _ = sleeps
    router = chain(retries=3)
    attempts = router.attempts(body("policy/p"))
    mistake = err(status)
    tried, outcome = await walk(attempts, lambda t, n: mistake)
    assert tried == ["mock/a"] and outcome is mistake and attempts.count == 1 and delays == []


async def test_failures_before_the_first_frame_move_on() -> None:
    from proxy.errors import StreamError, UpstreamTimeout, UpstreamUnavailable

    failures = [UpstreamUnavailable("refused"), UpstreamTimeout("slow"), StreamError("died")]
    router = chain(models=["mock/a", "mock/b", "mock/c", "mock/d"])
    tried, target = await walk(router.attempts(body("policy/p")), lambda t, n: failures[n - 1] if n <= 3 else None)
    assert tried == ["mock/a", "mock/b", "mock/c", "mock/d"] and target.label == "mock/d"


async def test_retry_after_is_honoured_when_longer_than_the_backoff(sleeps: tuple[list[float], Clock]) -> None:
    delays, _ = sleeps
    router = chain(retries=2, backoff=[100])
    retry_after = {1: 2.5, 2: 0.0}
    tried, _ = await walk(router.attempts(body("policy/p")), lambda t, n: err(503, retry_after[n]) if n < 3 else None)
    assert tried == ["mock/a"] * 3
    assert delays[0] == 2.5 and 0.09 <= delays[1] <= 0.11  # Retry-After: 0 leaves the backoff


async def test_retrying_is_bounded_by_max_retry_s(sleeps: tuple[list[float], Clock]) -> None:
    delays, clock = sleeps
    router = chain(clock, retries=10, backoff=[500], max_retry_s=1.2)
    tried, _ = await walk(router.attempts(body("policy/p")), lambda t, n: err(500) if t.label == "mock/a" else None)
    assert tried == ["mock/a"] * 3 + ["mock/b"]  # two pauses of 0.5 s ± 10 % fit in 1.2 s, a third never does
    assert len(delays) == 2 and sum(delays) <= 1.2


async def test_a_retry_after_beyond_the_budget_moves_on_at_once(sleeps: tuple[list[float], Clock]) -> None:
    delays, clock = sleeps
    router = chain(clock, retries=3, max_retry_s=5)
    tried, target = await walk(router.attempts(body("policy/p")), lambda t, n: err(429, 60.0) if n == 1 else None)
    assert tried == ["mock/a", "mock/b"] and target.label == "mock/b" and delays == []


async def test_moving_on_never_waits_for_the_previous_models_retry_after(sleeps: tuple[list[float], Clock]) -> None:
    delays, clock = sleeps
    router = chain(clock, retries=0, max_retry_s=5)
    tried, _ = await walk(router.attempts(body("policy/p")), lambda t, n: err(503, 4.0) if n < 3 else None)
    assert tried == ["mock/a", "mock/b", "mock/c"] and delays == []


async def test_the_budget_comes_from_the_policy_an_alias_names(sleeps: tuple[list[float], Clock]) -> None:
    delays, clock = sleeps
    policy = {"type": "fallback", "models": ["mock/a"], "retries": 5, "backoff_ms": [1000], "max_retry_s": 1.5}
    router = Router(make({"p": policy}, {"fast": "policy/p", "faster": "fast"}), clock=clock, rng=random.Random(1))
    for name in ("policy/p", "fast", "faster"):
        delays.clear()
        tried, outcome = await walk(router.attempts(body(name)), lambda t, n: err(500))
        assert tried == ["mock/a"] * 2 and outcome.status == 500  # a second pause of ~1 s would overrun 1.5 s
        assert len(delays) == 1
    delays.clear()
    tried, _ = await walk(router.attempts(body("mock/a")), lambda t, n: err(500))
    assert tried == ["mock/a"] and delays == []  # a plain model: one try


async def test_the_last_error_is_raised_when_every_step_is_spent() -> None:
    router = chain()
    errors = [err(500), err(404), err(503)]
    tried, outcome = await walk(router.attempts(body("policy/p")), lambda t, n: errors[n - 1])
    assert tried == ["mock/a", "mock/b", "mock/c"] and outcome is errors[-1]


async def test_a_model_without_a_key_is_skipped_and_not_counted() -> None:
    config = make(
        {
            "p": {"type": "fallback", "models": ["openai/gpt-4o", "mock/echo"]},
            "keyless": {"type": "fallback", "models": ["openai/gpt-4o", "anthropic/claude-sonnet-4-5"]},
        }
    )
    router = Router(config)
    attempts = router.attempts(body("policy/p"))
    target = await attempts.next()
    assert target.label == "mock/echo" and attempts.count == 1
    with pytest.raises(MissingKey) as info:
        await router.attempts(body("policy/keyless")).next()
    assert info.value.status == 401 and "ANTHROPIC_API_KEY" in info.value.message


async def test_the_issue_example_config(sleeps: tuple[list[float], Clock]) -> None:
    delays, clock = sleeps
    data = tomllib.loads("""
[policies.reliable]
type = "fallback"
models = ["anthropic/claude-sonnet-4-5", "openai/gpt-4o", "gemini/gemini-2.5-pro"]
retries = 1
backoff_ms = [500, 1000, 2000]

[policies.spread]
type = "loadbalance"
models = { "openai/gpt-4o-mini" = 70, "groq/llama-3.3-70b-versatile" = 30 }
sticky_key = "user"

[aliases]
fast = "policy/spread"
""")
    env = {"ANTHROPIC_API_KEY": "a", "OPENAI_API_KEY": "o", "GEMINI_API_KEY": "g", "GROQ_API_KEY": "q"}
    router = Router(build(data, "proxy.toml", env), clock=clock, rng=random.Random(2))
    tried, _ = await walk(router.attempts(body("policy/reliable")), lambda t, n: err(529))
    assert tried == ["anthropic/claude-sonnet-4-5"] * 2 + ["openai/gpt-4o"] * 2 + ["gemini/gemini-2.5-pro"] * 2
    assert len(delays) == 3 and all(0.45 <= d <= 0.55 for d in delays)
    chosen = {(await router.attempts(body("fast", user="alice")).next()).label for _ in range(20)}
    assert len(chosen) == 1 and chosen <= {"openai/gpt-4o-mini", "groq/llama-3.3-70b-versatile"}


# -- config validation -------------------------------------------------------------------------------


def rejected(policies: dict[str, Any] | None = None, aliases: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        make(policies, aliases)
    message = str(info.value)
    assert message.startswith("<test>: "), message
    return message


def test_cycle_through_aliases_is_rejected_naming_it() -> None:
    assert "cycle: a -> b -> c -> a" in rejected(aliases={"a": "b", "b": "c", "c": "a"})
    assert "cycle: me -> me" in rejected(aliases={"me": "me"})


def test_cycle_through_policies_is_rejected_naming_it() -> None:
    message = rejected(
        {
            "p1": {"type": "fallback", "models": ["mock/a", "policy/p2"]},
            "p2": {"type": "loadbalance", "models": {"mock/b": 1, "policy/p1": 1}},
        }
    )
    assert "cycle: policy/p1 -> policy/p2 -> policy/p1" in message
    assert "cycle: policy/self -> policy/self" in rejected({"self": {"type": "fallback", "models": ["policy/self"]}})


def test_cycle_through_an_alias_and_a_policy_is_rejected_naming_it() -> None:
    message = rejected({"p": {"type": "fallback", "models": ["mock/a", "fast"]}}, {"fast": "policy/p"})
    assert "cycle" in message and "fast" in message and "policy/p" in message
    assert "fast -> policy/p -> fast" in message or "policy/p -> fast -> policy/p" in message


def test_a_shared_member_is_not_a_cycle() -> None:
    make(
        {
            "base": {"type": "fallback", "models": ["mock/a"]},
            "x": {"type": "fallback", "models": ["policy/base", "policy/base", "b"]},
            "y": {"type": "loadbalance", "models": {"policy/x": 1, "policy/base": 2}},
        },
        {"b": "policy/base", "c": "b"},
    )


@pytest.mark.parametrize(
    ("policies", "aliases", "needle"),
    [
        ({"p": {"type": "fallback", "models": ["policy/ghost"]}}, None, "unknown policy 'policy/ghost'"),
        ({"p": {"type": "fallback", "models": ["nope/x"]}}, None, "unknown provider 'nope'"),
        ({"p": {"type": "fallback", "models": ["llama-3"]}}, None, "'llama-3'"),
        ({"p": {"type": "loadbalance", "models": {"mock/a": 1, "ghost": 1}}}, None, "'ghost'"),
        (None, {"fast": "policy/ghost"}, "unknown policy 'policy/ghost'"),
        (None, {"fast": "missing"}, "'missing'"),
        (None, {"openai/gpt-4o": "mock/a"}, "would hide provider 'openai'"),
        ({"p": {"type": "fallback", "models": ["mock/a"]}}, {"policy/p": "mock/b"}, "'policy/p'"),
    ],
)
def test_unknown_members_are_rejected(policies: Any, aliases: Any, needle: str) -> None:
    assert needle in rejected(policies, aliases)


@pytest.mark.parametrize(
    ("policy", "needle"),
    [
        ({"models": ["mock/a"]}, "key 'type' must be 'fallback' or 'loadbalance'"),
        ({"type": "roundrobin", "models": ["mock/a"]}, "'roundrobin'"),
        ({"type": "fallback"}, "key 'models' must be a non-empty list"),
        ({"type": "fallback", "models": []}, "key 'models' must be a non-empty list"),
        ({"type": "fallback", "models": {"mock/a": 1}}, "key 'models' must be a non-empty list"),
        ({"type": "fallback", "models": ["mock/a", 3]}, "key 'models' must be a non-empty list"),
        ({"type": "loadbalance", "models": ["mock/a"]}, "key 'models' must be a table"),
        ({"type": "loadbalance", "models": {}}, "key 'models' must be a table"),
        ({"type": "loadbalance", "models": {"mock/a": 0}}, "weight of 'mock/a' must be a positive number"),
        ({"type": "loadbalance", "models": {"mock/a": -1}}, "weight of 'mock/a'"),
        ({"type": "loadbalance", "models": {"mock/a": True}}, "weight of 'mock/a'"),
        ({"type": "loadbalance", "models": {"mock/a": "70"}}, "weight of 'mock/a'"),
        ({"type": "loadbalance", "models": {"mock/a": 1}, "sticky_key": 5}, "key 'sticky_key' must be a string"),
        ({"type": "loadbalance", "models": {"mock/a": 1}, "backoff_ms": [1]}, "unknown key 'backoff_ms'"),
        ({"type": "fallback", "models": ["mock/a"], "sticky_key": "user"}, "unknown key 'sticky_key'"),
        ({"type": "fallback", "models": ["mock/a"], "retries": -1}, "key 'retries' must be a non-negative integer"),
        ({"type": "fallback", "models": ["mock/a"], "retries": True}, "key 'retries'"),
        ({"type": "fallback", "models": ["mock/a"], "retries": 1.5}, "key 'retries'"),
        ({"type": "fallback", "models": ["mock/a"], "backoff_ms": 500}, "key 'backoff_ms' must be a list"),
        ({"type": "fallback", "models": ["mock/a"], "backoff_ms": [-5]}, "key 'backoff_ms'"),
        ({"type": "fallback", "models": ["mock/a"], "max_retry_s": -1}, "key 'max_retry_s' must be a non-negative"),
        ({"type": "loadbalance", "models": {"mock/a": 1}, "cooldown_s": "30"}, "key 'cooldown_s'"),
        ({"type": "loadbalance", "models": {"mock/a": 1}, "failure_threshold": -2}, "key 'failure_threshold'"),
    ],
)
def test_bad_policy_tables_are_rejected(policy: Any, needle: str) -> None:
    message = rejected({"bad": policy})
    assert "[policies.bad]" in message and needle in message, message


@pytest.mark.parametrize("policy", ["fallback", 3, [1]])
def test_a_policy_that_is_not_a_table_is_a_config_error(policy: Any) -> None:
    assert "policies.bad" in rejected({"bad": policy})


def test_validate_accepts_a_built_config_and_names_its_source() -> None:
    config = make({"p": {"type": "fallback", "models": ["mock/a"]}}, {"fast": "policy/p"})
    validate(config)
    bad = Config(providers=config.providers, aliases={"x": "x"}, source="/etc/sse-proxy.toml")
    with pytest.raises(ConfigError, match=r"^/etc/sse-proxy.toml: .*cycle: x -> x"):
        validate(bad)
