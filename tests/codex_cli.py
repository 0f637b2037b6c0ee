"""Codex CLI as a real client in the test suite (issue 12): find or install it, run ``codex exec``
headless and offline against a Responses API base URL on 127.0.0.1, and a fake Responses API
that records what the CLI sends and streams scripted answers exactly as OpenAI's API does.

The harness takes the base URL and the model as parameters, so the same run can target the fake
server directly (to learn the wire) or the proxy's ``/v1/responses`` (to test it).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.support import refusing_port

ROOT = Path(__file__).resolve().parent.parent
INSTALL_SCRIPT = ROOT / "scripts" / "install-codex"
PREFIX = Path(os.environ.get("CODEX_PREFIX", Path(os.environ.get("AGENT_CLIS_PREFIX", ROOT / ".agent-clis")) / "codex"))
CODEX_BIN = PREFIX / "node_modules" / ".bin" / "codex"
PROVIDER = "x"  # the [model_providers.x] entry every run uses
API_KEY_ENV = "SSE_PROXY_TEST_KEY"
API_KEY = "dummy-codex-key"

# Features that would add tools, background calls or a compressed body to a plain exec run.
# Each is a real flag of `codex features list` (0.171.0); an unknown name would be an error.
DISABLED_FEATURES = (
    "apps",
    "plugins",
    "remote_plugin",
    "browser_use",
    "browser_use_external",
    "computer_use",
    "image_generation",
    "multi_agent_v2",
    "skill_search",
    "tool_suggest",
    "goals",
    "enable_request_compression",
    "api_key_model_discovery",
    "shell_snapshot",
    "daemon_auto_start",
    "unbounded_connection_retries",
)


def codex_binary() -> Path:
    """The installed ``codex``; installs it with the project's script when node is present but
    the CLI is not, and skips the test (with the reason) when node/npm are missing or the
    install fails (no registry)."""
    if CODEX_BIN.exists():
        return CODEX_BIN
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"Node/npm not found: {', '.join(missing)} missing from PATH; Codex CLI tests need them")
    done = subprocess.run([str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0 or not CODEX_BIN.exists():
        pytest.skip(f"Codex CLI could not be installed by {INSTALL_SCRIPT.name}: {done.stderr.strip()[-500:]}")
    return CODEX_BIN


def config_toml(base_url: str, model: str) -> str:
    """``$CODEX_HOME/config.toml`` for one run: a custom Responses provider at ``base_url``
    (``.../v1``; Codex appends ``/responses``) keyed by a dummy variable, no retries (a failed
    turn must fail the test at once, not after backoff), and everything that is not the model
    call switched off: analytics, feedback, update checks, MCP servers, notifications."""
    features = "\n".join(f"{name} = false" for name in DISABLED_FEATURES)
    return f"""\
model = {json.dumps(model)}
model_provider = "{PROVIDER}"
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false
hide_agent_reasoning = true

[model_providers.{PROVIDER}]
name = "sse-proxy test provider"
base_url = {json.dumps(base_url)}
wire_api = "responses"
env_key = "{API_KEY_ENV}"
request_max_retries = 0
stream_max_retries = 0
stream_idle_timeout_ms = 20000

[analytics]
enabled = false

[feedback]
enabled = false

[history]
persistence = "none"

[agents]
enabled = false

[features]
{features}
"""


def codex_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a run: nothing inherited but PATH, so the user's own config, keys
    and proxies cannot leak in; HOME and CODEX_HOME are fresh, so no login or config is found."""
    nowhere = f"http://127.0.0.1:{refusing_port()}"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CODEX_HOME": str(home / ".codex"),
        "TERM": "dumb",
        "NO_COLOR": "1",
        API_KEY_ENV: API_KEY,
        # Traffic to any host but 127.0.0.1 goes to a port that refuses it, so a forgotten
        # switch fails fast here instead of reaching for the network.
        "HTTPS_PROXY": nowhere,
        "HTTP_PROXY": nowhere,
        "ALL_PROXY": nowhere,
        "NO_PROXY": "127.0.0.1,localhost",
        "RUST_LOG": "error",
    }
    env.update(extra or {})
    return env


@dataclass
class CodexRun:
    """One finished ``codex exec --json`` run: how it ended, the JSONL events it printed, and
    the last agent message (``--output-last-message``)."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    events: list[dict[str, Any]]
    text: str

    def items(self, kind: str) -> list[dict[str, Any]]:
        """The completed thread items of one type (``agent_message``, ``command_execution``)."""
        return [e["item"] for e in self.events if e.get("type") == "item.completed" and e["item"].get("type") == kind]

    def explain(self) -> str:
        """Everything needed to see why a run went wrong, for assertion messages."""
        return f"argv={self.argv}\nexit={self.returncode}\nstdout={self.stdout[-3000:]}\nstderr={self.stderr[-3000:]}"


async def run_codex(
    prompt: str,
    *,
    base_url: str,
    model: str,
    workdir: Path,
    timeout: float = 60.0,
    extra_env: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
) -> CodexRun:
    """Run ``codex exec`` headless and wait for it (asyncio, so a fake server in the same loop
    keeps answering). Approvals and the sandbox are off (the tests run as root, where the
    bubblewrap sandbox cannot start), sessions are not written, no git repository is needed.
    The CLI and any shell its tool started are killed (process group) after ``timeout``."""
    home = workdir / "home"
    cwd = workdir / "cwd"
    (home / ".codex").mkdir(parents=True, exist_ok=True)
    cwd.mkdir(parents=True, exist_ok=True)
    (home / ".codex" / "config.toml").write_text(config_toml(base_url, model))
    last = workdir / "last-message.txt"
    argv = [
        str(codex_binary()),
        "exec",
        "--strict-config",  # a key this version does not know is an error, not silently ignored
        "--json",
        "--ephemeral",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
        "--color",
        "never",
        "--cd",
        str(cwd),
        "--output-last-message",
        str(last),
        *(extra_args or []),
        prompt,
    ]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=codex_env(home, extra_env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = await proc.communicate()
        raise AssertionError(f"codex did not finish in {timeout}s\nstdout={out!r}\nstderr={err!r}") from None
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    text = last.read_text() if last.exists() else ""
    return CodexRun(argv, proc.returncode or 0, stdout, stderr, events, text)


# --- A fake OpenAI Responses API -----------------------------------------------------------


@dataclass
class Seen:
    """One request the fake Responses server received, as sent."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def responses_call(self) -> bool:
        return self.method == "POST" and self.path.endswith("/responses")


@dataclass
class Message:
    """A scripted assistant message with one ``output_text`` part."""

    text: str


@dataclass
class FunctionCall:
    """A scripted ``function_call`` item; ``arguments`` is sent as a JSON string."""

    name: str
    arguments: dict[str, Any]
    call_id: str = ""


@dataclass
class CustomToolCall:
    """A scripted ``custom_tool_call`` item (free-form ``input``, e.g. Codex's ``apply_patch``)."""

    name: str
    input: str
    call_id: str = ""


@dataclass
class Reasoning:
    """A scripted ``reasoning`` item: a summary streamed as text, and an opaque
    ``encrypted_content`` a stateless client must send back on the next turn."""

    summary: str
    encrypted_content: str = "gAAAAB-fake-encrypted-reasoning"


@dataclass
class Failure:
    """Ends a scripted stream with ``response.failed`` (what follows it is not sent)."""

    message: str
    code: str = "server_error"


@dataclass
class ApiError:
    """A scripted answer that is not a stream: an HTTP error with OpenAI's error JSON."""

    status: int
    message: str
    code: str = "invalid_request_error"
    param: str | None = None


Output = Message | FunctionCall | CustomToolCall | Reasoning | Failure
Script = Callable[[dict[str, Any]], list[Output] | ApiError]


def function_outputs(body: dict[str, Any], kind: str = "function_call_output") -> dict[str, str]:
    """``call_id`` -> output of every ``function_call_output`` (or ``kind``) item in a
    request's input."""
    found: dict[str, str] = {}
    for item in body.get("input", []):
        if isinstance(item, dict) and item.get("type") == kind:
            output = item.get("output")
            if isinstance(output, list):  # content parts
                output = "".join(str(part.get("text", "")) for part in output if isinstance(part, dict))
            found[str(item.get("call_id"))] = str(output)
    return found


@dataclass
class _Events:
    """The events of one streamed response, numbered as they are added."""

    events: list[dict[str, Any]] = field(default_factory=list)

    def add(self, kind: str, **data: Any) -> None:
        self.events.append({"type": kind, "sequence_number": len(self.events), **data})


class FakeResponses:
    """OpenAI's Responses API as far as Codex and the Agents SDK use it: ``POST .../responses``
    streams the scripted output as the API's event sequence (or answers a ``response`` object
    when ``stream`` is false); ``GET .../models`` lists the one model; any other path gets a 404
    in OpenAI's error shape. Every request is recorded in ``seen``. ``omit`` names event types
    left out of every stream, to learn which events a client needs."""

    def __init__(
        self, script: Script, usage: tuple[int, int, int] = (1200, 300, 20), omit: frozenset[str] = frozenset()
    ) -> None:
        self.script = script
        self.usage = usage  # input, cached input, output tokens of every response
        self.omit = omit
        self.seen: list[Seen] = []
        self.call_ids: list[str] = []
        self._ids = itertools.count(1)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        return app

    @property
    def calls(self) -> list[Seen]:
        return [s for s in self.seen if s.responses_call]

    async def _any(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self.seen.append(Seen(request.method, request.path, dict(request.headers), body))
        if request.method == "POST" and request.path.endswith("/responses") and isinstance(body, dict):
            answer = self.script(body)
            if isinstance(answer, ApiError):
                return _error(answer)
            response, events = self._respond(body, answer)
            if body.get("stream"):
                return await self._stream(request, events)
            return web.json_response(response)
        return _error(ApiError(404, f"no route {request.method} {request.path}", "not_found"))

    def _next(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):04d}"

    def _respond(self, body: dict[str, Any], outputs: list[Output]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The final ``response`` object and the whole event sequence that builds it."""
        response = self._response(body)
        stream = _Events()
        stream.add("response.created", response=dict(response))
        stream.add("response.in_progress", response=dict(response))
        done: list[dict[str, Any]] = []
        for index, output in enumerate(outputs):
            if isinstance(output, Failure):
                error = {"code": output.code, "message": output.message}
                response.update(status="failed", output=done, error=error)
                stream.add("response.failed", response=response)
                return response, stream.events
            if isinstance(output, Message):
                done.append(self._message_events(stream, index, output))
            elif isinstance(output, FunctionCall):
                done.append(self._call_events(stream, index, output))
            elif isinstance(output, CustomToolCall):
                done.append(self._custom_events(stream, index, output))
            else:
                done.append(self._reasoning_events(stream, index, output))
        input_tokens, cached, output_tokens = self.usage
        response.update(
            status="completed",
            output=done,
            usage={
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            },
        )
        stream.add("response.completed", response=response)
        return response, stream.events

    def _response(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self._next("resp"),
            "object": "response",
            "created_at": 1_700_000_000,
            "status": "in_progress",
            "model": body.get("model", ""),
            "output": [],
            "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools", []),
            "store": bool(body.get("store", True)),
            "instructions": body.get("instructions"),
            "metadata": {},
            "error": None,
            "incomplete_details": None,
            "usage": None,
        }

    def _message_events(self, stream: _Events, index: int, message: Message) -> dict[str, Any]:
        """A message item: added, its part added, the text in two deltas, then done events."""
        item_id = self._next("msg")
        item = {"id": item_id, "type": "message", "role": "assistant", "status": "in_progress", "content": []}
        stream.add("response.output_item.added", output_index=index, item=item)
        where = {"item_id": item_id, "output_index": index, "content_index": 0}
        stream.add("response.content_part.added", **where, part={"type": "output_text", "text": "", "annotations": []})
        half = len(message.text) // 2
        for piece in (message.text[:half], message.text[half:]):
            stream.add("response.output_text.delta", **where, delta=piece, logprobs=[])
        stream.add("response.output_text.done", **where, text=message.text, logprobs=[])
        part = {"type": "output_text", "text": message.text, "annotations": [], "logprobs": []}
        stream.add("response.content_part.done", **where, part=part)
        final = {**item, "status": "completed", "content": [part]}
        stream.add("response.output_item.done", output_index=index, item=final)
        return final

    def _call_events(self, stream: _Events, index: int, call: FunctionCall) -> dict[str, Any]:
        """A function_call item: added empty, the arguments JSON in 7-character deltas, done."""
        call_id = call.call_id or self._next("call")
        self.call_ids.append(call_id)
        arguments = json.dumps(call.arguments)
        item = {
            "id": self._next("fc"),
            "type": "function_call",
            "status": "in_progress",
            "name": call.name,
            "arguments": "",
            "call_id": call_id,
        }
        stream.add("response.output_item.added", output_index=index, item=item)
        for start in range(0, len(arguments), 7):
            piece = arguments[start : start + 7]
            stream.add("response.function_call_arguments.delta", item_id=item["id"], output_index=index, delta=piece)
        stream.add(
            "response.function_call_arguments.done",
            item_id=item["id"],
            output_index=index,
            name=call.name,
            arguments=arguments,
        )
        final = {**item, "status": "completed", "arguments": arguments}
        stream.add("response.output_item.done", output_index=index, item=final)
        return final

    def _custom_events(self, stream: _Events, index: int, call: CustomToolCall) -> dict[str, Any]:
        """A custom_tool_call item: added empty, its raw input in two deltas, done."""
        call_id = call.call_id or self._next("call")
        self.call_ids.append(call_id)
        item = {
            "id": self._next("ctc"),
            "type": "custom_tool_call",
            "status": "in_progress",
            "name": call.name,
            "input": "",
            "call_id": call_id,
        }
        stream.add("response.output_item.added", output_index=index, item=item)
        where = {"item_id": item["id"], "output_index": index}
        half = len(call.input) // 2
        for piece in (call.input[:half], call.input[half:]):
            stream.add("response.custom_tool_call_input.delta", **where, delta=piece)
        stream.add("response.custom_tool_call_input.done", **where, input=call.input)
        final = {**item, "status": "completed", "input": call.input}
        stream.add("response.output_item.done", output_index=index, item=final)
        return final

    def _reasoning_events(self, stream: _Events, index: int, reasoning: Reasoning) -> dict[str, Any]:
        """A reasoning item: added, one summary part streamed in two deltas, done with the
        ``encrypted_content`` (only the final item carries it, as with OpenAI)."""
        item: dict[str, Any] = {"id": self._next("rs"), "type": "reasoning", "summary": []}
        stream.add("response.output_item.added", output_index=index, item=item)
        where = {"item_id": item["id"], "output_index": index, "summary_index": 0}
        stream.add("response.reasoning_summary_part.added", **where, part={"type": "summary_text", "text": ""})
        half = len(reasoning.summary) // 2
        for piece in (reasoning.summary[:half], reasoning.summary[half:]):
            stream.add("response.reasoning_summary_text.delta", **where, delta=piece)
        stream.add("response.reasoning_summary_text.done", **where, text=reasoning.summary)
        part = {"type": "summary_text", "text": reasoning.summary}
        stream.add("response.reasoning_summary_part.done", **where, part=part)
        final = {**item, "summary": [part], "encrypted_content": reasoning.encrypted_content}
        stream.add("response.output_item.done", output_index=index, item=final)
        return final

    async def _stream(self, request: web.Request, events: list[dict[str, Any]]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        kept = [event for event in events if event["type"] not in self.omit]
        await response.write(b"".join(_sse(event) for event in kept))
        await response.write_eof()
        return response


def _error(error: ApiError) -> web.Response:
    kind = "invalid_request_error" if error.status < 500 else "server_error"
    shape = {"message": error.message, "type": kind, "param": error.param, "code": error.code}
    return web.json_response({"error": shape}, status=error.status)


def _sse(event: dict[str, Any]) -> bytes:
    """One event as OpenAI frames it: ``event:`` with the type, then the JSON ``data:``."""
    return f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()
