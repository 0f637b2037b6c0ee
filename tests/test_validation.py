"""Request-body type checks, against the rule they implement written the slow, obvious way."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.errors import BadRequest
from proxy.protocols.openai_chat.validate import _FIELDS, validate_chat_request

MESSAGES = [{"role": "user", "content": "hi"}]
JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(-2, 2, allow_nan=False),
    st.text(max_size=3),
    st.lists(st.integers(-1000, 1000), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(-1000, 1000), max_size=2),
)


def reference_accepts(name: str, value: Any) -> bool:
    types, _ = _FIELDS[name]
    if value is None:
        return name not in ("model", "messages")
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


@given(name=st.sampled_from(sorted(set(_FIELDS) - {"model", "messages", "n"})), value=JSON_VALUES)
def test_each_field_takes_exactly_its_json_types(name: str, value: Any) -> None:
    body = orjson.loads(orjson.dumps({"model": "p/m", "messages": MESSAGES, name: value}))  # as a client sends it
    if reference_accepts(name, value):
        try:
            validate_chat_request(body)
        except BadRequest as err:  # the right type, a wrong value: still about this field, never its type
            assert err.param is not None and err.param.startswith(name), err
            assert not err.message.startswith(f"'{name}' must be {_FIELDS[name][1]}, got "), err
    else:
        with pytest.raises(BadRequest) as info:
            validate_chat_request(body)
        assert info.value.param == name and "must be" in info.value.message


@pytest.mark.parametrize("value", [True, 1.5, "2"])
def test_n_must_be_an_integer_not_a_boolean(value: Any) -> None:
    with pytest.raises(BadRequest, match="'n' must be an integer, got"):
        validate_chat_request({"model": "p/m", "messages": MESSAGES, "n": value})


def test_model_and_messages_may_not_be_null() -> None:
    for name in ("model", "messages"):
        with pytest.raises(BadRequest, match=f"'{name}' must be"):
            validate_chat_request({"model": "p/m", "messages": MESSAGES, name: None})


def test_validation_reads_the_shapes_inside_the_body() -> None:
    """Only the outline here; tests/test_request_verdicts.py holds the whole table."""
    cases = [
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
        ({"tools": [{"type": "function", "function": {"name": ""}}]}, "tools[0].function.name"),
        ({"temperature": -0.1}, "temperature"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].name"),
        ({"messages": [{"role": "user", "content": "x", "name": 5}]}, "messages[0].name"),
    ]
    for fields, param in cases:
        with pytest.raises(BadRequest) as info:
            validate_chat_request({"model": "p/m", "messages": MESSAGES, **fields})
        assert info.value.param == param
