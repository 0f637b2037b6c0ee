"""How OpenAI-compatible upstreams deviate from OpenAI's shape, as one table.

Each ``Quirk`` is the bytes that betray it (``triggers``: a frame or body holding none of them
cannot have it, so it is never parsed for it) and the function that fixes it in a parsed stream
chunk or whole body. The stream path (``passthrough``) and the whole-body path
(``translate_response``) share the table; ``Fixing`` tells a fixer which one it works on
(a chunk's ``delta`` or a body's ``message``) and carries the stream's state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from proxy.errors import StreamError, UpstreamError

__all__ = ["QUIRKS", "Fixing", "Quirk", "fix", "fix_body", "needs_fix", "triggers"]

JSONBody = dict[str, Any]


@dataclass(slots=True)
class Fixing:
    """Where the fixers work: a stream's chunks (``delta``) or a whole body (``message``), and
    the stream's tool-call counter (calls without ``index`` are numbered in arrival order)."""

    stream: bool
    next_tool: int = 0

    @property
    def key(self) -> str:
        return "delta" if self.stream else "message"


@dataclass(frozen=True, slots=True)
class Quirk:
    """One deviation. ``deviates`` is a finer byte check for a stream frame holding a trigger
    that OpenAI's own frames hold too (tool-call fragments, token logprobs); ``None`` when a
    trigger alone is reason enough to parse."""

    name: str
    triggers: tuple[bytes, ...]
    fix: Callable[[JSONBody, Fixing], None]
    deviates: Callable[[bytes], bool] | None = None


def _messages(data: JSONBody, fixing: Fixing) -> Iterator[JSONBody]:
    for choice in data.get("choices") or ():
        if isinstance(choice, dict) and isinstance(message := choice.get(fixing.key), dict):
            yield message


def _error(data: JSONBody, fixing: Fixing) -> None:
    """An error object in place of a chunk (``{"error": ...}``, vLLM's ``{"object": "error"}``)."""
    if not (data.get("error") or data.get("object") == "error"):
        return
    err = data.get("error", data)
    if not isinstance(err, dict):
        message, etype, code = f"upstream error: {err}", "upstream_error", None
    else:
        default = "the upstream reported an error mid-stream" if fixing.stream else "the upstream reported an error"
        message = str(err.get("message") or default)
        etype, code = str(err.get("type") or "upstream_error"), err.get("code")
    if fixing.stream:
        raise StreamError(message, type=etype, code=code)
    raise UpstreamError(message, status=502, type=etype, code=code)


def _tool_calls(data: JSONBody, fixing: Fixing) -> None:
    """Mistral: stream tool calls without ``index``, calls without ``type``."""
    for message in _messages(data, fixing):
        for call in message.get("tool_calls") or ():
            if not isinstance(call, dict):
                continue
            if fixing.stream:
                if "index" not in call:
                    call["index"] = fixing.next_tool
                fixing.next_tool = max(fixing.next_tool, int(call["index"]) + 1)
            if "type" not in call and ("id" in call or not fixing.stream):  # a stream names it once
                call["type"] = "function"


def _tool_calls_deviate(frame: bytes) -> bool:
    # Every complete tool call has its own "index" besides the choice's: fewer means missing.
    return frame.count(b'"index"') <= frame.count(b'"function"')


def _model_length(data: JSONBody, fixing: Fixing) -> None:
    """Mistral: ``finish_reason: "model_length"`` is OpenAI's ``length``."""
    for choice in data.get("choices") or ():
        if isinstance(choice, dict) and choice.get("finish_reason") == "model_length":
            choice["finish_reason"] = "length"


def _groq_usage(data: JSONBody, fixing: Fixing) -> None:
    """Groq: usage under ``x_groq.usage`` is lifted to the top level."""
    groq = data.get("x_groq")
    if isinstance(groq, dict) and groq.get("usage") and not data.get("usage"):
        data["usage"] = groq["usage"]


def _content_parts(data: JSONBody, fixing: Fixing) -> None:
    """Magistral: content as a list of ``thinking``/``text`` parts → ``reasoning_content`` + ``content``."""
    for message in _messages(data, fixing):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        text, thinking = [], []
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "thinking":
                inner = part.get("thinking")
                if isinstance(inner, list):
                    thinking += [p.get("text", "") for p in inner if isinstance(p, dict)]
                elif isinstance(inner, str):
                    thinking.append(inner)
            elif part.get("type") == "text":
                text.append(str(part.get("text", "")))
        message["content"] = "".join(text) if text else None
        if thinking:
            message["reasoning_content"] = "".join(thinking)


_PARTS = (b'"content":[', b'"content": [')
_LOGPROBS = (b'"logprobs":{"content":[', b'"logprobs": {"content": [')


def _content_parts_deviate(frame: bytes) -> bool:
    # Token logprobs hold a "content" list too; only a delta's own content list needs a rewrite.
    return any(frame.count(parts) > frame.count(logprobs) for parts, logprobs in zip(_PARTS, _LOGPROBS, strict=True))


def _reasoning(data: JSONBody, fixing: Fixing) -> None:
    """Groq, OpenRouter: ``reasoning`` is mirrored into ``reasoning_content`` (DeepSeek's name)."""
    for message in _messages(data, fixing):
        reasoning = message.get("reasoning")
        if isinstance(reasoning, str) and message.get("reasoning_content") is None:
            message["reasoning_content"] = reasoning


# In order: an error is raised before anything is fixed; content parts before reasoning, which
# must not overwrite the reasoning they give.
QUIRKS = (
    Quirk("error object (vLLM, any upstream mid-stream)", (b'"error"',), _error),
    Quirk("tool calls without index or type (Mistral)", (b'"tool_calls"',), _tool_calls, _tool_calls_deviate),
    Quirk("finish_reason model_length (Mistral)", (b"model_length",), _model_length),
    Quirk("usage under x_groq (Groq)", (b'"x_groq"',), _groq_usage),
    Quirk("content as a list of parts (Magistral)", _PARTS, _content_parts, _content_parts_deviate),
    Quirk("reasoning instead of reasoning_content (Groq, OpenRouter)", (b'"reasoning":',), _reasoning),
)


def triggers() -> tuple[bytes, ...]:
    """Every quirk's trigger bytes."""
    return tuple(t for quirk in QUIRKS for t in quirk.triggers)


def needs_fix(frame: bytes) -> bool:
    """Whether a stream frame shows a quirk (byte checks only)."""
    for quirk in QUIRKS:
        for trigger in quirk.triggers:
            if trigger in frame:
                if quirk.deviates is None or quirk.deviates(frame):
                    return True
                break
    return False


def fix(data: JSONBody, fixing: Fixing) -> None:
    """Every quirk fixed in ``data`` (a parsed chunk or body), in place; an error object raises."""
    for quirk in QUIRKS:
        quirk.fix(data, fixing)


def fix_body(body: bytes) -> bytes:
    """A whole (non-stream) body: itself when it holds no trigger, else parsed and fixed."""
    if not any(t in body for quirk in QUIRKS for t in quirk.triggers):
        return body
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if not isinstance(data, dict):
        return body
    fix(data, Fixing(stream=False))
    return orjson.dumps(data)
