"""Agent CLIs as real clients in the test suite (issue 11): find or install Claude Code, run it
headless and offline against a base URL on 127.0.0.1, and a fake Anthropic Messages API that
records what the CLI sends and answers from a script.

The harness takes the base URL and the model as parameters, so the same run can target the fake
Anthropic server directly (to learn the wire) or the proxy's ``/v1/messages`` (to test it).
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
INSTALL_SCRIPT = ROOT / "scripts" / "install-agent-clis"
PREFIX = Path(os.environ.get("AGENT_CLIS_PREFIX", ROOT / ".agent-clis"))
CLAUDE_BIN = PREFIX / "node_modules" / ".bin" / "claude"

# Every switch the CLI has for traffic that is not the model call: telemetry, error reports,
# update checks, feature flags, and the "non-essential" group (model catalog, release notes,
# MCP registry...). With these the only host it talks to is ANTHROPIC_BASE_URL.
QUIET_ENV = {
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_UPDATES": "1",
    "DISABLE_GROWTHBOOK": "1",
    "DISABLE_INSTALLATION_CHECKS": "1",
    "DISABLE_COST_WARNINGS": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
    "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
    "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": "1",
    # Root may not pass --dangerously-skip-permissions (extra_args) unless the CLI believes it
    # is sandboxed; the default runs do not need it, --allowedTools is enough headless.
    "IS_SANDBOX": "1",
}


def claude_binary() -> Path:
    """The installed ``claude``; installs it with the project's script when node is present but
    the CLI is not, and skips the test (with the reason) when node/npm are missing or the
    install fails (no registry)."""
    if CLAUDE_BIN.exists():
        return CLAUDE_BIN
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"Node/npm not found: {', '.join(missing)} missing from PATH; Claude Code tests need them")
    done = subprocess.run([str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0 or not CLAUDE_BIN.exists():
        pytest.skip(f"Claude Code could not be installed by {INSTALL_SCRIPT.name}: {done.stderr.strip()[-500:]}")
    return CLAUDE_BIN


@dataclass
class CliRun:
    """One finished CLI run: what it printed and how it ended, and the ``--output-format json``
    result parsed (None when stdout was not JSON)."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    result: dict[str, Any] | None

    @property
    def text(self) -> str:
        """The final answer the CLI printed (``result`` of the JSON output)."""
        return str((self.result or {}).get("result", ""))

    def explain(self) -> str:
        """Everything needed to see why a run went wrong, for assertion messages."""
        return f"argv={self.argv}\nexit={self.returncode}\nstdout={self.stdout[-3000:]}\nstderr={self.stderr[-3000:]}"


def claude_env(
    base_url: str, home: Path, api_key: str = "dummy", extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The whole environment of a run: nothing inherited but PATH, so the user's own settings,
    keys and proxies cannot leak in; HOME is a fresh directory, so no login or config is found."""
    nowhere = f"http://127.0.0.1:{refusing_port()}"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "TERM": "dumb",
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": api_key,
        # Belt and braces: traffic to any host but 127.0.0.1 goes to a port that refuses it,
        # so a forgotten switch fails fast here instead of reaching for the network.
        "HTTPS_PROXY": nowhere,
        "HTTP_PROXY": nowhere,
        "NO_PROXY": "127.0.0.1,localhost",
        **QUIET_ENV,
    }
    env.update(extra or {})
    return env


async def run_claude(
    prompt: str,
    *,
    base_url: str,
    model: str,
    workdir: Path,
    tools: str | None = None,
    timeout: float = 60.0,
    extra_env: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
) -> CliRun:
    """Run ``claude -p`` headless and wait for it (asyncio, so a fake server in the same loop
    keeps answering). ``tools`` ("Bash") is both the set of tools offered and the set allowed
    without a permission prompt, which is all ``-p`` needs to run them, even as root; without
    it the CLI gets no tools at all, which keeps the request small. Killed after ``timeout``."""
    home = workdir / "home"
    cwd = workdir / "cwd"
    home.mkdir(parents=True, exist_ok=True)
    cwd.mkdir(parents=True, exist_ok=True)
    argv = [str(claude_binary()), "-p", prompt, "--model", model, "--output-format", "json", "--no-session-persistence"]
    if tools is None:
        argv += ["--tools", ""]
    else:
        argv += ["--tools", tools, "--allowedTools", tools]
    argv += extra_args or []
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=claude_env(base_url, home, extra=extra_env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and any shell its Bash tool started
        out, err = await proc.communicate()
        raise AssertionError(f"claude did not finish in {timeout}s\nstdout={out!r}\nstderr={err!r}") from None
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    try:
        result = json.loads(stdout)
    except ValueError:
        result = None
    return CliRun(argv, proc.returncode or 0, stdout, stderr, result if isinstance(result, dict) else None)


# --- A fake Anthropic Messages API ---------------------------------------------------------


@dataclass
class Seen:
    """One request the fake Anthropic server received, as sent."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any

    @property
    def messages_call(self) -> bool:
        return self.method == "POST" and self.path == "/v1/messages"


@dataclass
class Block:
    """One content block of a scripted answer: text, or a tool_use with its input."""

    type: str
    text: str = ""
    name: str = ""
    input: dict[str, Any] = field(default_factory=dict)


@dataclass
class Reply:
    """A scripted answer to one ``/v1/messages`` call."""

    content: list[Block]
    stop_reason: str = "end_turn"


Script = Callable[[dict[str, Any]], Reply]


def text_reply(text: str) -> Reply:
    return Reply([Block("text", text=text)])


def tool_results(body: dict[str, Any]) -> list[str]:
    """The text of every ``tool_result`` block in a request's messages, in order."""
    found: list[str] = []
    for message in body.get("messages", []):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for block in content:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                inner = block.get("content")
                if isinstance(inner, list):
                    found.extend(str(part.get("text", "")) for part in inner if isinstance(part, dict))
                else:
                    found.append(str(inner))
    return found


class FakeAnthropic:
    """Anthropic's API as far as Claude Code uses it: streams named SSE events, answers JSON when
    ``stream`` is absent, counts tokens, and answers any other path (preflights) with an empty
    200. Every request is recorded in ``seen``; ``script`` decides each messages answer."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.seen: list[Seen] = []
        self.tool_ids: list[str] = []
        self._ids = itertools.count(1)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        return app

    @property
    def messages(self) -> list[Seen]:
        return [s for s in self.seen if s.messages_call]

    async def _any(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self.seen.append(Seen(request.method, request.path, dict(request.query), dict(request.headers), body))
        if request.method == "POST" and request.path == "/v1/messages/count_tokens":
            return web.json_response({"input_tokens": len(raw) // 4})
        if request.method == "POST" and request.path == "/v1/messages" and isinstance(body, dict):
            reply = self.script(body)
            if body.get("stream"):
                return await self._stream(request, body, reply)
            return web.json_response(self._message(body, reply))
        return web.json_response({})

    def _message(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        for block in reply.content:
            if block.type == "text":
                content.append({"type": "text", "text": block.text})
            else:
                content.append({"type": "tool_use", "id": self._tool_id(), "name": block.name, "input": block.input})
        return {
            "id": f"msg_fake{next(self._ids):04d}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", ""),
            "content": content,
            "stop_reason": reply.stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }

    def _tool_id(self) -> str:
        """A fresh tool_use id, remembered so a test can match the tool_result that answers it."""
        self.tool_ids.append(f"toolu_fake{next(self._ids):04d}")
        return self.tool_ids[-1]

    async def _stream(self, request: web.Request, body: dict[str, Any], reply: Reply) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        start = self._message(body, Reply([]))
        start.update(stop_reason=None, usage={"input_tokens": 10, "output_tokens": 1})
        events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start})]
        for index, block in enumerate(reply.content):
            events += _block_events(index, block, self._tool_id() if block.type == "tool_use" else "")
        events += [
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": 5},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        await response.write(b"".join(_sse(name, data) for name, data in events))
        await response.write_eof()
        return response


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _block_events(index: int, block: Block, tool_id: str) -> list[tuple[str, dict[str, Any]]]:
    """content_block_start, its deltas (text in two pieces, tool input as partial JSON in two
    pieces, as Anthropic cuts them), and content_block_stop."""
    if block.type == "text":
        start: dict[str, Any] = {"type": "text", "text": ""}
        half = len(block.text) // 2
        deltas = [{"type": "text_delta", "text": part} for part in (block.text[:half], block.text[half:])]
    else:
        start = {"type": "tool_use", "id": tool_id, "name": block.name, "input": {}}
        raw = json.dumps(block.input)
        half = len(raw) // 2
        deltas = [{"type": "input_json_delta", "partial_json": part} for part in ("", raw[:half], raw[half:])]
    events: list[tuple[str, dict[str, Any]]] = [
        ("content_block_start", {"type": "content_block_start", "index": index, "content_block": start})
    ]
    events += [("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas]
    events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events
