"""The mock's schema-example generator, and its planner on any body shape (sans-IO, no proxy)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.lib._pydantic import to_strict_json_schema
from pydantic import AnyUrl, BaseModel, Field

from proxy.errors import BadRequest
from proxy.protocols.stream import StreamContext
from proxy.transport.mock import answer_body, answer_frames, plan_answer, schema_example


class Leaf(BaseModel):
    label: Literal["leaf"]
    weight: Annotated[int, Field(gt=5, multiple_of=3)]


class Tree(BaseModel):
    name: Annotated[str, Field(min_length=10, max_length=12)]
    children: list[Tree]
    parent: Tree | None
    leaves: Annotated[list[Leaf], Field(min_length=2)]


class Everything(BaseModel):
    id: uuid.UUID
    day: dt.date
    at: dt.datetime
    site: AnyUrl
    pair: tuple[int, str]
    counts: dict[str, int]
    unique: set[str]
    ratio: Annotated[float, Field(ge=-1, lt=-0.5)]
    flag: bool
    nothing: None
    tree: Tree
    maybe: int | str | None = None


@pytest.mark.parametrize("model", [Leaf, Tree, Everything])
@pytest.mark.parametrize("strict", [False, True], ids=["pydantic", "openai-strict"])
def test_pydantic_models_validate_the_example(model: type[BaseModel], strict: bool) -> None:
    schema = to_strict_json_schema(model) if strict else model.model_json_schema()
    value = schema_example(schema)
    model.model_validate(value)  # raises if the example does not fit
    model.model_validate_json(orjson.dumps(value))


ZOD = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "email": {"type": "string", "format": "email"},
        "site": {"type": "string", "format": "uri"},
        "when": {"type": "string", "format": "date-time"},
        "kind": {"type": "string", "const": "user"},
        "score": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1},
        "note": {"type": ["null", "string"]},
        "level": {"type": "integer", "minimum": 3, "maximum": 7},
        "items": {"type": "array", "items": {"$ref": "#/definitions/Item"}, "minItems": 2},
        "same": {"$ref": "#/properties/kind"},
        "either": {"oneOf": [{"type": "boolean"}, {"type": "string"}]},
        "mixed": {"allOf": [{"$ref": "#/definitions/Item"}, {"properties": {"extra": {"type": "number"}}}]},
        "colors": {"type": "array", "items": {"enum": ["r", "g", "b"]}, "minItems": 3, "uniqueItems": True},
        "nothing": {"type": "null"},
    },
    "required": ["id", "email"],
    "additionalProperties": False,
    "definitions": {
        "Item": {
            "type": "object",
            "properties": {"sku": {"type": "string", "minLength": 6}, "n": {"type": "integer"}},
            "required": ["sku", "n"],
            "additionalProperties": False,
        }
    },
}


def test_zod_style_schema() -> None:
    item = {"sku": "mockkk", "n": 1}
    assert schema_example(ZOD) == {
        "id": "00000000-0000-4000-8000-000000000000",
        "email": "mock@example.com",
        "site": "https://example.com/mock",
        "when": "2024-01-01T00:00:00Z",
        "kind": "user",
        "score": 0.5,
        "note": "mock",
        "level": 3,
        "items": [item, item],
        "same": "user",
        "either": True,
        "mixed": {**item, "extra": 1.5},
        "colors": ["r", "g", "b"],
        "nothing": None,
    }


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#"},  # itself, forever
        {"type": "object", "properties": {"next": {"$ref": "#"}}, "required": ["next"]},  # no finite value
        {"$ref": "#/$defs/missing"},
        {"$ref": "https://example.com/schema.json"},
        {"type": "array", "items": {}, "minItems": 10**9},
        {"type": "string", "minLength": 10**9},
        {"type": "integer", "minimum": 1e30},
        # Fan-out: 5**9 required leaves through nine levels of definitions.
        {
            "$defs": {
                f"L{i}": {"properties": {c: {"$ref": f"#/$defs/L{i + 1}"} for c in "abcde"}, "required": list("abcde")}
                for i in range(9)
            },
            "$ref": "#/$defs/L0",
        },
    ],
)
def test_schemas_with_no_sensible_value_are_a_bad_request(schema: dict[str, Any]) -> None:
    with pytest.raises(BadRequest) as info:
        schema_example(schema, "tools[0].function.parameters")
    assert info.value.param == "tools[0].function.parameters"


# --- any body: a BadRequest or an answer, never another exception -------------------------------

WORDS = [
    "type", "properties", "required", "items", "prefixItems", "$ref", "$defs", "definitions", "anyOf", "oneOf",
    "allOf", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "minItems", "maxItems", "minLength", "maxLength", "format", "additionalProperties", "object", "array",
    "string", "integer", "number", "boolean", "null", "date-time", "uuid", "#", "#/$defs/a", "#/definitions/a",
    "#/properties/a", "a", "role", "content", "text", "refusal", "image_url", "user", "assistant", "tool",
    "function", "system", "tool_calls", "tool_call_id", "function_call", "name", "arguments", "id", "parameters",
    "auto", "none", "required", "json_object", "json_schema", "schema",
]  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(WORDS)
    | st.text(max_size=4)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(WORDS), inner, max_size=5),
    max_leaves=30,
)


def sometimes(odd: st.SearchStrategy[Any], usual: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` seven times in eight, else ``odd``: mostly well-formed bodies with a field of any
    shape here and there, so that every check (and what lies past it) is reached."""
    return st.integers(0, 7).flatmap(lambda i: odd if i == 3 else usual)  # not 0: a favourite of hypothesis


def odd(usual: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return sometimes(json_values, usual)


names = st.sampled_from(["f", "g"])
schemas = st.dictionaries(st.sampled_from(WORDS), json_values, max_size=6)
function = st.fixed_dictionaries(
    {"name": odd(names)}, optional={"arguments": odd(st.just("{}")), "parameters": odd(schemas)}
)
call = st.fixed_dictionaries(
    {"id": odd(st.sampled_from(["a", "b"])), "type": st.just("function"), "function": odd(function)}
)
part = st.fixed_dictionaries(
    {"type": odd(st.sampled_from(["text", "refusal", "image_url"]))}, optional={"text": odd(st.text(max_size=5))}
)
message = st.fixed_dictionaries(
    {"role": odd(st.sampled_from(["user", "assistant", "tool", "function", "system"]))},
    optional={
        "content": odd(st.none() | st.text(max_size=5) | st.lists(odd(part), max_size=3)),
        "tool_calls": odd(st.lists(odd(call), max_size=2)),
        "function_call": odd(function),
        "tool_call_id": odd(st.sampled_from(["a", "b"])),
        "name": odd(names),
    },
)
tool = st.fixed_dictionaries({"type": odd(st.just("function")), "function": odd(function)})
choice = st.sampled_from(["auto", "none", "required"]) | st.builds(
    lambda name: {"type": "function", "function": {"name": name}}, names
)
response_format = st.sampled_from([{"type": "text"}, {"type": "json_object"}]) | st.builds(
    lambda schema: {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}, odd(schemas)
)
bodies = st.fixed_dictionaries(
    {"messages": odd(st.lists(odd(message), min_size=1, max_size=4))},
    optional={
        "tools": odd(st.lists(odd(tool), max_size=3)),
        "functions": odd(st.lists(odd(function), max_size=2)),
        "tool_choice": odd(choice),
        "function_call": odd(st.sampled_from(["auto", "none"]) | st.builds(lambda n: {"name": n}, names)),
        "response_format": odd(response_format),
        "stream_options": odd(st.just({"include_usage": True})),
    },
)
CTX = StreamContext(id="chatcmpl-mock-x", created=1, model="echo", include_usage=True, call_id_prefix="mockx")


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies, st.sampled_from([{}, {"text": "fixed"}, {"text": 3}]))
def test_any_body_is_answered_or_a_bad_request(body: dict[str, Any], options: dict[str, Any]) -> None:
    body = orjson.loads(orjson.dumps(body))  # what the proxy would have parsed
    try:
        answer = plan_answer(body, options)
    except BadRequest as err:
        assert err.param is None or isinstance(err.param, str)
        return
    for legacy in (False, True):
        ctx = StreamContext(**{**{s: getattr(CTX, s) for s in CTX.__slots__}, "legacy_functions": legacy})
        orjson.loads(answer_body(answer, ctx))
        for frame in answer_frames(answer, ctx):
            assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
