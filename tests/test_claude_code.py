"""Claude Code as a real client (issue 11), first against a fake Anthropic Messages API, to pin
down what the CLI sends and that the harness drives it headless, offline and fast.

The last tests run the same turns through the proxy: Claude Code -> ``/v1/messages`` -> a fake
OpenAI-compatible upstream, with Claude Code's model id sent there by an ``[aliases]`` entry.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import tests.agent_cli as agent_cli
from proxy.config import build
from proxy.server import create_app
from tests.agent_cli import INSTALL_SCRIPT, Block, FakeAnthropic, Reply, Seen, run_claude, text_reply, tool_results

pytestmark = pytest.mark.slow  # the CLI itself runs (and is installed on first use)

MODEL = "claude-sonnet-4-5"
TOOL_COMMAND = "echo sse-proxy-$((6*7))"


def base_url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


def pong(body: dict[str, Any]) -> Reply:
    return text_reply("PONG")


def bash_then_quote(body: dict[str, Any]) -> Reply:
    """Turn 1 asks for the Bash tool; once its result comes back, quote the output's first line
    (the CLI appends a system reminder after the output)."""
    results = tool_results(body)
    if results:
        return text_reply(f"The command printed {results[-1].splitlines()[0]}")
    return Reply([Block("tool_use", name="Bash", input={"command": TOOL_COMMAND})], stop_reason="tool_use")


def assert_claude_code_call(call: Seen, model: str) -> None:
    """What every messages call from Claude Code 2.1.x carries, as far as it is stable."""
    assert call.query == {"beta": "true"}
    assert call.headers["anthropic-version"] == "2023-06-01"
    assert call.headers["x-api-key"] == "dummy"
    assert "claude-code-20250219" in call.headers["anthropic-beta"].split(",")
    assert call.headers["User-Agent"].startswith("claude-cli/")
    body = call.body
    assert body["model"] == model
    assert body["stream"] is True
    assert isinstance(body["max_tokens"], int) and body["max_tokens"] > 0
    assert body["thinking"]["type"] in {"enabled", "adaptive"}
    assert body["system"] and all(block["type"] == "text" for block in body["system"])
    assert body["messages"][0]["role"] == "user"


async def test_text_turn_prints_pong(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeAnthropic(pong)
    server = await aiohttp_server(fake.app())

    run = await run_claude(
        "Answer with the single word PONG.", base_url=base_url(server), model=MODEL, workdir=tmp_path
    )

    assert run.returncode == 0, run.explain()
    assert run.result is not None and run.result["is_error"] is False, run.explain()
    assert run.text == "PONG"
    # One request and nothing else: no preflight, token count or title call in quiet headless mode.
    assert [(s.method, s.path) for s in fake.seen] == [("POST", "/v1/messages")]
    (call,) = fake.messages
    assert_claude_code_call(call, MODEL)
    assert call.body["tools"] == []
    assert "Answer with the single word PONG." in str(call.body["messages"][0]["content"])


async def test_tool_turn_runs_bash_and_quotes_its_output(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeAnthropic(bash_then_quote)
    server = await aiohttp_server(fake.app())

    run = await run_claude("Run the echo.", base_url=base_url(server), model=MODEL, workdir=tmp_path, tools="Bash")

    assert run.returncode == 0, run.explain()
    assert "sse-proxy-42" in run.text, run.explain()
    assert run.result is not None and run.result["num_turns"] == 2
    first, second = fake.messages
    for call in (first, second):
        assert_claude_code_call(call, MODEL)
        assert [tool["name"] for tool in call.body["tools"]] == ["Bash"]
    assert "command" in first.body["tools"][0]["input_schema"]["properties"]
    # The second call carries our tool_use back and the output of a shell that really ran it.
    assistant, answer = second.body["messages"][-2:]
    assert assistant["content"][-1]["type"] == "tool_use"
    assert assistant["content"][-1]["input"] == {"command": TOOL_COMMAND}
    (result,) = [b for b in answer["content"] if b["type"] == "tool_result"]
    assert result["tool_use_id"] == fake.tool_ids[0]
    assert result["is_error"] is False
    assert tool_results(second.body)[-1].startswith("sse-proxy-42\n")


async def test_unknown_model_ids_pass_through_with_a_system_role_message(aiohttp_server: Any, tmp_path: Path) -> None:
    """What the proxy will see: a ``provider/model`` id is sent as is (with adaptive thinking
    and an effort setting), and the environment reminder arrives as a ``"system"`` role message
    inside ``messages``, which the /v1/messages front door must accept."""
    fake = FakeAnthropic(pong)
    server = await aiohttp_server(fake.app())

    run = await run_claude("Say PONG.", base_url=base_url(server), model="up/test-model", workdir=tmp_path)

    assert run.returncode == 0 and run.text == "PONG", run.explain()
    (call,) = fake.messages
    assert_claude_code_call(call, "up/test-model")
    assert call.body["thinking"]["type"] == "adaptive"
    assert "system" in [message["role"] for message in call.body["messages"]]


async def test_model_aliases_resolve_through_the_default_model_variables(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeAnthropic(pong)
    server = await aiohttp_server(fake.app())
    aliases = {"ANTHROPIC_DEFAULT_SONNET_MODEL": "up/big", "ANTHROPIC_DEFAULT_HAIKU_MODEL": "up/small"}

    for alias in ("sonnet", "haiku"):
        run = await run_claude("Say PONG.", base_url=base_url(server), model=alias, workdir=tmp_path, extra_env=aliases)
        assert run.returncode == 0, run.explain()

    assert [call.body["model"] for call in fake.messages] == ["up/big", "up/small"]


# --- The fake server itself, checked with the real anthropic SDK (no Node needed) ------------


async def test_fake_anthropic_streams_what_the_anthropic_sdk_reads(aiohttp_server: Any) -> None:
    fake = FakeAnthropic(bash_then_quote)
    server = await aiohttp_server(fake.app())
    client = anthropic.AsyncAnthropic(base_url=base_url(server), api_key="dummy", max_retries=0)
    request: dict[str, Any] = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "go"}]}

    async with client.messages.stream(**request) as stream:
        message = await stream.get_final_message()
    plain = await client.messages.create(**request)
    counted = await client.messages.count_tokens(model=MODEL, messages=request["messages"])

    for answer in (message, plain):
        assert answer.stop_reason == "tool_use"
        (block,) = answer.content
        assert block.type == "tool_use" and block.name == "Bash" and block.input == {"command": TOOL_COMMAND}
    assert counted.input_tokens > 0
    assert [s.body.get("stream") for s in fake.messages] == [True, None]
    await client.close()


async def test_fake_anthropic_answers_preflights_and_text(aiohttp_server: Any) -> None:
    fake = FakeAnthropic(pong)
    server = await aiohttp_server(fake.app())
    client = anthropic.AsyncAnthropic(base_url=base_url(server), api_key="dummy", max_retries=0)

    async with client.messages.stream(
        model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = await stream.get_final_text()
    async with aiohttp.ClientSession() as session, session.head(base_url(server) + "/api/hello") as head:
        status = head.status

    assert text == "PONG"
    assert status == 200
    assert [(s.method, s.path) for s in fake.seen] == [("POST", "/v1/messages"), ("HEAD", "/api/hello")]
    await client.close()


# --- Finding and installing the CLI ----------------------------------------------------------


def test_install_script_exits_0_with_a_message_without_node(tmp_path: Path) -> None:
    done = subprocess.run(
        ["/bin/bash", str(INSTALL_SCRIPT)],
        env={"PATH": str(tmp_path), "AGENT_CLIS_PREFIX": str(tmp_path / "prefix")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "node/npm not found" in done.stdout
    assert not (tmp_path / "prefix").exists()


def test_install_script_skips_when_the_pinned_version_is_installed() -> None:
    agent_cli.claude_binary()  # installs, or skips this test without Node
    done = subprocess.run(
        [str(INSTALL_SCRIPT)],
        env={**os.environ, "AGENT_CLIS_PREFIX": str(agent_cli.PREFIX)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "already in" in done.stdout


def test_claude_binary_skips_with_the_reason_without_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent_cli, "CLAUDE_BIN", tmp_path / "absent" / "claude")
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(pytest.skip.Exception, match="Node/npm not found"):
        agent_cli.claude_binary()


# --- Through the proxy: /v1/messages -> a fake OpenAI-compatible upstream ----------------------


class FakeOpenAI:
    """A chat-completions server that streams OpenAI chunks, scripted like ``FakeAnthropic``."""

    def __init__(self, script: Any) -> None:
        self.script = script
        self.bodies: list[dict[str, Any]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.bodies.append(body)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for chunk in self.script(body, len(self.bodies)):
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        return response


def _chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: dict[str, int] | None = None) -> Any:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    chunk: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "gpt-x",
        "choices": choices,
    }
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def openai_pong(body: dict[str, Any], turn: int) -> list[Any]:
    return [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "PO"}),
        _chunk({"content": "NG"}),
        _chunk({}, "stop"),
        _chunk(None, usage={"prompt_tokens": 900, "completion_tokens": 2, "total_tokens": 902}),
    ]


def openai_bash_then_quote(body: dict[str, Any], turn: int) -> list[Any]:
    results = [m for m in body["messages"] if m["role"] == "tool"]
    usage = {"prompt_tokens": 1000, "completion_tokens": 9, "total_tokens": 1009}
    if results:
        text = results[-1]["content"]
        if isinstance(text, list):
            text = "".join(part.get("text", "") for part in text)
        return [
            _chunk({"role": "assistant", "content": f"The command printed {text.splitlines()[0]}"}),
            _chunk({}, "stop"),
            _chunk(None, usage=usage),
        ]
    call = {"index": 0, "id": "call_bash_1", "type": "function", "function": {"name": "Bash", "arguments": ""}}
    arguments = orjson.dumps({"command": TOOL_COMMAND}).decode()
    return [
        _chunk({"role": "assistant", "content": "I will run it."}),
        _chunk({"tool_calls": [call]}),
        *(
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[i : i + 7]}}]})
            for i in range(0, len(arguments), 7)
        ),
        _chunk({}, "tool_calls"),
        _chunk(None, usage=usage),
    ]


async def proxy_to(aiohttp_server: Any, fake: FakeOpenAI) -> TestServer:
    upstream = await aiohttp_server(fake.app())
    provider = {"kind": "openai", "base_url": str(upstream.make_url("/v1")), "api_key": "upstream-key"}
    config = build({"providers": {"up": provider}, "aliases": {MODEL: "up/gpt-x"}}, "<test>", {})
    server: TestServer = await aiohttp_server(create_app(config))
    return server


async def test_through_the_proxy_a_text_turn_from_an_openai_upstream(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeOpenAI(openai_pong)
    proxy = await proxy_to(aiohttp_server, fake)

    run = await run_claude("Answer with the single word PONG.", base_url=base_url(proxy), model=MODEL, workdir=tmp_path)

    assert run.returncode == 0, run.explain()
    assert run.text == "PONG", run.explain()
    (sent,) = fake.bodies  # the alias sent Claude Code's model id to the OpenAI upstream
    assert sent["model"] == "gpt-x" and sent["stream"] is True
    assert sent["messages"][0]["role"] == "system"  # Claude Code's system blocks
    assert any(m["role"] == "user" for m in sent["messages"])


async def test_through_the_proxy_a_tool_turn_runs_bash(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeOpenAI(openai_bash_then_quote)
    proxy = await proxy_to(aiohttp_server, fake)

    run = await run_claude("Run the echo.", base_url=base_url(proxy), model=MODEL, workdir=tmp_path, tools="Bash")

    assert run.returncode == 0, run.explain()
    assert "sse-proxy-42" in run.text, run.explain()
    first, second = fake.bodies
    assert [t["function"]["name"] for t in first["tools"]] == ["Bash"]
    assistant = next(m for m in second["messages"] if m["role"] == "assistant" and m.get("tool_calls"))
    (call,) = assistant["tool_calls"]
    assert call["function"]["name"] == "Bash"
    assert orjson.loads(call["function"]["arguments"]) == {"command": TOOL_COMMAND}
    (result,) = [m for m in second["messages"] if m["role"] == "tool"]
    assert result["tool_call_id"] == call["id"]
    assert "sse-proxy-42" in str(result["content"])
