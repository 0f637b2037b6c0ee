"""The built-in mock provider: ``mock/<anything>`` answers with no key and no network.

It streams OpenAI frames in-process through the same relay and pass-through translator as a
real OpenAI upstream: an echo of the last user message (or a fixed text) word by word, at a
configurable pace (options ``first_token_ms``, ``chunk_delay_ms``, ``text``); the usage chunk
when ``stream_options.include_usage`` is set; and, when the request offers tools (or legacy
functions) and ``tool_choice`` is not ``none``, a call of the first (or the chosen) tool with
arguments made from its JSON schema, streamed in fragments.

Some model names make it fail on purpose, to try error handling and fallbacks with no key:
``mock/fail-<status>`` answers that HTTP status, ``mock/fail-mid`` sends an error frame after
two words, ``mock/truncate`` ends without ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from proxy.config import ProviderConfig
from proxy.protocols.openai_chat.encode import DONE, ChatEncoder, usage_dict
from proxy.protocols.stream import StreamContext, Usage
from proxy.transport.base import UpstreamRequest

JSONBody = dict[str, Any]

__all__ = ["MockResponse", "MockTransport"]

DEFAULT_TEXT = "Hello from the sse-proxy mock provider. Ask for a real model as provider/model."
_WORDS = re.compile(r"\s*\S+")


def _last_user_text(messages: Any) -> str | None:
    for message in reversed(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return None


def _example(schema: Any) -> Any:
    """A value that satisfies a simple JSON schema (enough for a demo call)."""
    if not isinstance(schema, dict):
        return "mock"
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {name: _example(sub) for name, sub in props.items()}
    return {"integer": 1, "number": 1.5, "boolean": True, "array": [], "null": None}.get(str(kind), "mock")


def _chosen_tool(body: JSONBody) -> tuple[str, str] | None:
    """(name, arguments JSON) of the tool the mock calls, or None to answer in text."""
    choice = body.get("tool_choice", body.get("function_call"))
    if choice == "none":
        return None
    declared = [t.get("function", {}) for t in body.get("tools") or () if isinstance(t, dict)]
    declared += [f for f in body.get("functions") or () if isinstance(f, dict)]
    if not declared:
        return None
    wanted = None
    if isinstance(choice, dict):
        wanted = (choice.get("function") or choice).get("name")
    function = next((f for f in declared if f.get("name") == wanted), declared[0])
    return str(function.get("name", "tool")), orjson.dumps(_example(function.get("parameters"))).decode()


class _Plan:
    """What the mock will say, derived once from the request."""

    def __init__(self, body: JSONBody, options: Mapping[str, Any]) -> None:
        self.tool = _chosen_tool(body)
        text = _last_user_text(body.get("messages")) or str(options.get("text", DEFAULT_TEXT))
        self.words = _WORDS.findall(text) or [str(options.get("text", DEFAULT_TEXT))]
        self.prompt_tokens = sum(len(_WORDS.findall(str(m.get("content", "")))) for m in body.get("messages") or ())
        self.completion_tokens = len(self.words) if self.tool is None else 5


class MockResponse:
    """An in-process ``UpstreamResponse``."""

    def __init__(self, req: UpstreamRequest, provider: ProviderConfig) -> None:
        self.body: JSONBody = orjson.loads(req.body)
        self.model = str(self.body.get("model", ""))
        self.options = provider.options
        self.ctx = StreamContext(
            id=str(req.headers.get("id", "chatcmpl-mock")),
            created=int(req.headers.get("created", 0)),
            model=self.model,
            include_usage=bool((self.body.get("stream_options") or {}).get("include_usage")),
            legacy_functions=bool(self.body.get("functions")) and not self.body.get("tools"),
            call_id_prefix=str(req.headers.get("call_id_prefix", "mock")),
        )
        stream = self.body.get("stream") is True
        self.headers: Mapping[str, str] = {"Content-Type": "text/event-stream" if stream else "application/json"}
        self.status = 200
        match = re.fullmatch(r"fail-(\d{3})", self.model)
        if match:
            self.status = int(match.group(1))
        self._closed = False
        self.received = 0

    async def read(self) -> bytes:
        if self.status != 200:
            text = f"mock failure with HTTP {self.status}"
            return orjson.dumps({"error": {"message": text, "type": "mock_error", "param": None, "code": None}})
        plan = _Plan(self.body, self.options)
        message: JSONBody = {"role": "assistant", "content": None, "refusal": None}
        reason = "stop"
        if plan.tool is None:
            message["content"] = "".join(plan.words)
        elif self.ctx.legacy_functions:
            message["function_call"] = {"name": plan.tool[0], "arguments": plan.tool[1]}
            reason = "function_call"
        else:
            call = {"id": f"call_{self.ctx.call_id_prefix}_0", "type": "function"}
            message["tool_calls"] = [{**call, "function": {"name": plan.tool[0], "arguments": plan.tool[1]}}]
            reason = "tool_calls"
        usage = usage_dict(Usage(plan.prompt_tokens, plan.completion_tokens))
        return completion_body(self.ctx, message, reason, usage)

    async def chunks(self) -> AsyncIterator[bytes]:
        delay = float(self.options.get("chunk_delay_ms", 20)) / 1000
        first = float(self.options.get("first_token_ms", 0)) / 1000
        if first:
            await asyncio.sleep(first)
        for i, frame in enumerate(self._frames()):
            if self._closed:
                return
            if i and delay:
                await asyncio.sleep(delay)
            self.received += len(frame)
            yield frame

    def _frames(self) -> list[bytes]:
        plan = _Plan(self.body, self.options)
        writer = ChatEncoder(self.ctx)
        frames: list[bytes] = []
        if plan.tool is None:
            frames += [writer.text(word) for word in plan.words]
        else:
            name, arguments = plan.tool
            index, head = 0, writer.tool_call_start(f"call_{self.ctx.call_id_prefix}_0", name)
            frames.append(head)
            frames += [writer.tool_call_arguments(index, arguments[i : i + 8]) for i in range(0, len(arguments), 8)]
        if self.model == "fail-mid":
            error = {"error": {"message": "mock failure mid-stream", "type": "mock_error", "param": None, "code": None}}
            return [*frames[:2], b"data: " + orjson.dumps(error) + b"\n\n"]
        frames.append(writer.finish("stop"))
        frames.append(writer.usage(Usage(plan.prompt_tokens, plan.completion_tokens)))
        if self.model != "truncate":
            frames.append(DONE)
        return [f for f in frames if f]

    def close(self) -> None:
        self._closed = True


class MockTransport:
    """The mock model as an in-process transport for ``mock://<model>`` requests."""

    async def open(self, req: UpstreamRequest, provider: ProviderConfig) -> MockResponse:
        return MockResponse(req, provider)


def completion_body(ctx: StreamContext, message: JSONBody, reason: str, usage: JSONBody) -> bytes:
    body = {
        "id": ctx.id,
        "object": "chat.completion",
        "created": ctx.created,
        "model": ctx.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reason}],
        "usage": usage,
    }
    return orjson.dumps(body)
