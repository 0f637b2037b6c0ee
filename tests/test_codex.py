"""Codex CLI and the OpenAI Agents SDK as real clients (issue 12), first against a fake OpenAI
Responses API, to pin down what they send and that the harness drives them headless, offline
and fast. Pointing a run at the proxy's ``/v1/responses`` is a change of ``base_url`` (and model).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp.test_utils import TestServer

import tests.codex_cli as codex_cli
from proxy.config import build
from proxy.server import create_app
from tests.agent_cli import Block, FakeAnthropic, Reply, text_reply, tool_results
from tests.codex_cli import (
    API_KEY,
    INSTALL_SCRIPT,
    ApiError,
    CustomToolCall,
    Failure,
    FakeResponses,
    FunctionCall,
    Message,
    Output,
    Reasoning,
    Seen,
    function_outputs,
    run_codex,
)
from tests.support import refusing_port
from tests.test_claude_code import FakeOpenAI, _chunk, openai_pong

MODEL = "up/test-model"  # a provider/model id, as the proxy will be asked for
KNOWN_MODEL = "gpt-5.5"  # one of Codex 0.171's own catalog: gets apply_patch, verbosity, effort
SHELL_TOOL = "exec_command"  # Codex's shell tool (unified exec): {"cmd": "<shell command>"}
TOOL_COMMAND = "echo sse-proxy-$((6*7))"  # only a shell that really ran it prints sse-proxy-42
PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+sse-proxy\n*** End Patch\n"


def base_url(server: TestServer) -> str:
    return str(server.make_url("/v1"))


def pong(body: dict[str, Any]) -> list[Output]:
    return [Message("PONG")]


def shell_then_quote(body: dict[str, Any]) -> list[Output]:
    """Turn 1 calls the shell tool; once its output comes back, quote the output's last line
    (Codex wraps it: ``Chunk ID``, ``Wall time``, exit code, then ``Output:`` and the text)."""
    outputs = function_outputs(body)
    if outputs:
        last = list(outputs.values())[-1].strip().splitlines()[-1]
        return [Message(f"The command printed {last}")]
    return [FunctionCall(SHELL_TOOL, {"cmd": TOOL_COMMAND})]


def assert_codex_call(call: Seen, model: str) -> None:
    """What every /responses call from Codex 0.171 carries, as far as it is stable."""
    assert (call.method, call.path) == ("POST", "/v1/responses")
    headers = call.headers
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert headers["Accept"] == "text/event-stream"
    assert headers["originator"] == "codex_exec"
    assert headers["User-Agent"].startswith("codex_exec/0.171.0")
    assert "Content-Encoding" not in headers  # plain JSON with enable_request_compression off
    assert headers["session-id"] == headers["thread-id"] == call.body["prompt_cache_key"]
    assert orjson.loads(headers["x-codex-turn-metadata"])["model"] == model
    body = call.body
    assert body["model"] == model
    assert body["stream"] is True
    assert body["store"] is False
    assert "instructions" not in body  # the system prompt is the first developer message
    assert body["include"] == ["reasoning.encrypted_content"]
    assert body["tool_choice"] == "auto" and body["parallel_tool_calls"] is True
    assert isinstance(body["reasoning"], dict)
    assert set(body["client_metadata"]) >= {"session_id", "thread_id", "turn_id", "x-codex-turn-metadata"}
    items = body["input"]
    assert all(item.get("id") for item in items)  # every input item carries an id
    first = items[0]
    assert (first["type"], first["role"]) == ("message", "developer")
    assert first["content"][0]["type"] == "input_text" and "Codex" in first["content"][0]["text"]
    tools = {tool.get("name", tool["type"]): tool["type"] for tool in body["tools"]}
    assert tools[SHELL_TOOL] == "function" and tools["web_search"] == "web_search"
    shell = next(tool for tool in body["tools"] if tool.get("name") == SHELL_TOOL)
    assert shell["parameters"]["required"] == ["cmd"]


def user_texts(body: dict[str, Any]) -> list[str]:
    return [
        part["text"]
        for item in body["input"]
        if item.get("role") == "user"
        for part in item["content"]
        if part["type"] == "input_text"
    ]


# --- Codex CLI against the fake Responses API -----------------------------------------------


async def test_text_turn_prints_pong(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeResponses(pong)
    server = await aiohttp_server(fake.app())

    run = await run_codex("Answer with the single word PONG.", base_url=base_url(server), model=MODEL, workdir=tmp_path)

    assert run.returncode == 0, run.explain()
    assert run.text == "PONG", run.explain()
    assert [item["text"] for item in run.items("agent_message")] == ["PONG"]
    # One request and nothing else: no model list, no telemetry, no second call.
    assert [(s.method, s.path) for s in fake.seen] == [("POST", "/v1/responses")]
    (call,) = fake.calls
    assert_codex_call(call, MODEL)
    assert user_texts(call.body)[-1] == "Answer with the single word PONG."
    # An id Codex does not know: a reasoning summary is asked for, no effort, no apply_patch.
    assert call.body["reasoning"] == {"summary": "auto"}
    assert "custom" not in [tool["type"] for tool in call.body["tools"]]
    # Codex read the usage of response.completed (input, cached, output tokens).
    (done,) = [e for e in run.events if e["type"] == "turn.completed"]
    assert (done["usage"]["input_tokens"], done["usage"]["cached_input_tokens"]) == (1200, 300)
    assert done["usage"]["output_tokens"] == 20


async def test_tool_turn_runs_the_shell_and_quotes_its_output(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeResponses(shell_then_quote)
    server = await aiohttp_server(fake.app())

    run = await run_codex("Run the echo.", base_url=base_url(server), model=MODEL, workdir=tmp_path)

    assert run.returncode == 0, run.explain()
    assert run.text == "The command printed sse-proxy-42", run.explain()
    (command,) = run.items("command_execution")
    assert command["aggregated_output"] == "sse-proxy-42\n" and command["exit_code"] == 0
    first, second = fake.calls
    for call in (first, second):
        assert_codex_call(call, MODEL)
    assert first.body["prompt_cache_key"] == second.body["prompt_cache_key"]
    # The second call echoes our function_call item (with its id) and answers it by call_id.
    call_item, output_item = second.body["input"][-2:]
    assert call_item["type"] == "function_call" and call_item["name"] == SHELL_TOOL
    assert call_item["call_id"] == fake.call_ids[0] and call_item["id"].startswith("fc_fake")
    assert orjson.loads(call_item["arguments"]) == {"cmd": TOOL_COMMAND}
    assert output_item["type"] == "function_call_output" and output_item["call_id"] == fake.call_ids[0]
    assert isinstance(output_item["output"], str) and output_item["output"].endswith("Output:\nsse-proxy-42\n")
    assert second.body["input"][: len(first.body["input"])] == first.body["input"]  # the whole history again


async def test_a_known_model_gets_apply_patch_verbosity_and_effort(aiohttp_server: Any, tmp_path: Path) -> None:
    """The request for one of Codex's own model ids (the proxy can route it by an alias): a
    ``custom`` tool with a Lark grammar, ``text.verbosity`` and ``reasoning.effort``."""
    fake = FakeResponses(pong)
    server = await aiohttp_server(fake.app())

    run = await run_codex("Say PONG.", base_url=base_url(server), model=KNOWN_MODEL, workdir=tmp_path)

    assert run.returncode == 0 and run.text == "PONG", run.explain()
    (call,) = fake.calls
    assert_codex_call(call, KNOWN_MODEL)
    (patch,) = [tool for tool in call.body["tools"] if tool["type"] == "custom"]
    assert patch["name"] == "apply_patch"
    assert patch["format"]["type"] == "grammar" and patch["format"]["syntax"] == "lark"
    assert call.body["text"] == {"verbosity": "low"}
    assert call.body["reasoning"]["effort"] in {"low", "medium", "high"}


def reason_then_patch(body: dict[str, Any]) -> list[Output]:
    """Turn 1 reasons and calls the free-form ``apply_patch`` tool; turn 2 quotes its result."""
    outputs = function_outputs(body, "custom_tool_call_output")
    if outputs:
        return [Message(f"Patched: {list(outputs.values())[-1].strip().splitlines()[-1]}")]
    return [Reasoning("Planning the patch."), CustomToolCall("apply_patch", PATCH)]


async def test_a_custom_tool_call_applies_the_patch_and_reasoning_round_trips(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    """A ``custom_tool_call`` of ``apply_patch`` really edits the working directory, and the next
    call sends back, in order: our reasoning item with its ``encrypted_content`` (and
    ``content: null``), the custom call as we sent it, and a ``custom_tool_call_output``."""
    fake = FakeResponses(reason_then_patch)
    server = await aiohttp_server(fake.app())

    run = await run_codex("Add hello.txt.", base_url=base_url(server), model=KNOWN_MODEL, workdir=tmp_path)

    assert run.returncode == 0, run.explain()
    assert (tmp_path / "cwd" / "hello.txt").read_text() == "sse-proxy\n"
    assert run.text == "Patched: A hello.txt", run.explain()
    assert [item["text"] for item in run.items("reasoning")] == ["Planning the patch."]
    _, second = fake.calls
    reasoning, custom, output = second.body["input"][-3:]
    assert reasoning == {
        "type": "reasoning",
        "id": reasoning["id"],
        "summary": [{"type": "summary_text", "text": "Planning the patch."}],
        "content": None,
        "encrypted_content": "gAAAAB-fake-encrypted-reasoning",
    }
    assert reasoning["id"].startswith("rs_fake")
    assert (custom["type"], custom["name"], custom["input"]) == ("custom_tool_call", "apply_patch", PATCH)
    assert custom["call_id"] == output["call_id"] == fake.call_ids[0]
    assert output["type"] == "custom_tool_call_output" and output["output"].endswith("A hello.txt\n")


async def test_a_stream_without_output_item_done_prints_nothing(aiohttp_server: Any, tmp_path: Path) -> None:
    """Codex builds its items from ``response.output_item.done`` only: deltas alone show
    nothing and the run still exits 0. A front door must send every ``output_item.done``."""
    fake = FakeResponses(pong, omit=frozenset({"response.output_item.done"}))
    server = await aiohttp_server(fake.app())

    run = await run_codex("Say PONG.", base_url=base_url(server), model=MODEL, workdir=tmp_path)

    assert run.returncode == 0, run.explain()
    assert run.text == "" and run.items("agent_message") == [], run.explain()


async def test_a_stream_without_response_completed_fails_the_turn(aiohttp_server: Any, tmp_path: Path) -> None:
    """Without ``response.completed`` the turn fails (after the configured retries: none here)."""
    fake = FakeResponses(pong, omit=frozenset({"response.completed"}))
    server = await aiohttp_server(fake.app())

    run = await run_codex("Say PONG.", base_url=base_url(server), model=MODEL, workdir=tmp_path, timeout=30)

    assert run.returncode == 1, run.explain()
    assert [e["type"] for e in run.events][-1] == "turn.failed", run.explain()
    assert len(fake.calls) == 1  # stream_max_retries = 0: no second try


@pytest.mark.parametrize("status", [400, 404])
async def test_an_error_before_the_stream_shows_its_message(aiohttp_server: Any, tmp_path: Path, status: int) -> None:
    """A 4xx with OpenAI's error JSON fails the turn with ``error.message`` as Codex's own
    message (for 429 and 5xx Codex shows a generic text of its own instead)."""
    message = "unknown model 'up/nope'; known: up/test-model"
    fake = FakeResponses(lambda body: ApiError(status, message, "model_not_found", "model"))
    server = await aiohttp_server(fake.app())

    run = await run_codex("Say PONG.", base_url=base_url(server), model="up/nope", workdir=tmp_path, timeout=30)

    assert run.returncode == 1, run.explain()
    (failed,) = [e for e in run.events if e["type"] == "turn.failed"]
    assert failed["error"]["message"] == message
    assert len(fake.calls) == 1


async def test_response_failed_mid_stream_fails_the_turn_with_its_message(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeResponses(lambda body: [Message("half an answ"), Failure("upstream broke mid-stream")])
    server = await aiohttp_server(fake.app())

    run = await run_codex("Say PONG.", base_url=base_url(server), model=MODEL, workdir=tmp_path, timeout=30)

    assert run.returncode == 1, run.explain()
    (failed,) = [e for e in run.events if e["type"] == "turn.failed"]
    assert failed["error"]["message"].endswith("upstream broke mid-stream")
    assert run.text == ""


async def test_nothing_listening_fails_at_once(tmp_path: Path) -> None:
    """With retries off a dead base URL fails the run in well under the timeout, instead of
    Codex retrying without end (its default ``unbounded_connection_retries``)."""
    dead = f"http://127.0.0.1:{refusing_port()}/v1"

    run = await run_codex("Say PONG.", base_url=dead, model=MODEL, workdir=tmp_path, timeout=20)

    assert run.returncode == 1, run.explain()
    (failed,) = [e for e in run.events if e["type"] == "turn.failed"]
    assert "Connection failed" in failed["error"]["message"]


# --- The fake server itself, checked with the real openai SDK (no Node needed) ---------------


def sdk(server: TestServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url(server), api_key="dummy", max_retries=0)


async def test_fake_responses_streams_what_the_openai_sdk_reads(aiohttp_server: Any) -> None:
    outputs: list[Output] = [
        Reasoning("Thinking it over."),
        Message("Let me look."),
        FunctionCall("lookup", {"q": "x" * 20}),
        CustomToolCall("apply_patch", PATCH),
    ]
    fake = FakeResponses(lambda body: outputs)
    server = await aiohttp_server(fake.app())
    client = sdk(server)

    seen_types: list[str] = []
    numbers: list[int] = []
    async with client.responses.stream(model=MODEL, input="go") as stream:
        async for event in stream:
            seen_types.append(event.type)
            numbers.append(event.sequence_number)
        final = await stream.get_final_response()

    assert numbers == list(range(len(numbers)))
    assert seen_types[:2] == ["response.created", "response.in_progress"]
    assert seen_types[-1] == "response.completed"
    assert seen_types.count("response.output_item.done") == 4
    for kind in ("function_call_arguments", "custom_tool_call_input", "reasoning_summary_text", "output_text"):
        assert f"response.{kind}.done" in seen_types
    reasoning, message, call, custom = final.output
    assert reasoning.type == "reasoning" and reasoning.summary[0].text == "Thinking it over."
    assert reasoning.encrypted_content == "gAAAAB-fake-encrypted-reasoning"
    assert message.type == "message" and final.output_text == "Let me look."
    assert call.type == "function_call" and call.name == "lookup" and call.call_id == fake.call_ids[0]
    assert orjson.loads(call.arguments) == {"q": "x" * 20}
    assert custom.type == "custom_tool_call" and custom.input == PATCH and custom.call_id == fake.call_ids[1]
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.input_tokens_details.cached_tokens) == (1200, 300)
    assert final.usage.total_tokens == 1220
    await client.close()


async def test_fake_responses_answers_without_stream_and_404s_elsewhere(aiohttp_server: Any) -> None:
    fake = FakeResponses(pong)
    server = await aiohttp_server(fake.app())
    client = sdk(server)

    plain = await client.responses.create(model=MODEL, input="hi")
    async with aiohttp.ClientSession() as session, session.get(base_url(server) + "/nothing") as missing:
        status, error = missing.status, await missing.json()

    assert plain.status == "completed" and plain.output_text == "PONG"
    assert status == 404 and set(error["error"]) == {"message", "type", "param", "code"}
    assert [s.body.get("stream") if s.body else None for s in fake.seen] == [None, None]
    await client.close()


# --- The OpenAI Agents SDK: Agent + function_tool on OpenAIResponsesModel -------------------


def agent_script(body: dict[str, Any]) -> list[Output]:
    """Call the ``add`` tool once; after its output comes back, answer with it."""
    outputs = function_outputs(body)
    if outputs:
        return [Message(f"The sum is {next(iter(outputs.values()))}.")]
    return [FunctionCall("add", {"a": 40, "b": 2})]


@pytest.mark.parametrize("streamed", [False, True])
async def test_agents_sdk_completes_a_tool_loop(aiohttp_server: Any, streamed: bool) -> None:
    agents = pytest.importorskip("agents", reason="openai-agents is not installed (pip install openai-agents)")
    fake = FakeResponses(agent_script)
    server = await aiohttp_server(fake.app())
    calls: list[tuple[int, int]] = []

    @agents.function_tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        calls.append((a, b))
        return a + b

    client = sdk(server)
    model = agents.OpenAIResponsesModel(model=MODEL, openai_client=client)
    agent = agents.Agent(name="adder", instructions="Use the add tool.", model=model, tools=[add])
    config = agents.RunConfig(tracing_disabled=True)
    if streamed:
        result: Any = agents.Runner.run_streamed(agent, "What is 40 + 2?", run_config=config)
        async for _ in result.stream_events():
            pass
    else:
        result = await agents.Runner.run(agent, "What is 40 + 2?", run_config=config)

    assert result.final_output == "The sum is 42."
    assert calls == [(40, 2)]
    first, second = fake.calls
    assert [s.path for s in fake.seen] == ["/v1/responses", "/v1/responses"]
    for call in (first, second):
        assert call.body["model"] == MODEL and call.body["instructions"] == "Use the add tool."
        assert bool(call.body.get("stream")) is streamed
        (tool,) = call.body["tools"]
        assert (tool["type"], tool["name"]) == ("function", "add")
        assert set(tool["parameters"]["properties"]) == {"a", "b"}
    assert first.body["input"] == [{"content": "What is 40 + 2?", "role": "user"}]
    call_item, output_item = second.body["input"][-2:]
    assert call_item["type"] == "function_call" and call_item["call_id"] == fake.call_ids[0]
    assert output_item == {"type": "function_call_output", "call_id": fake.call_ids[0], "output": "42"}
    await client.close()


# --- Finding and installing the CLI ----------------------------------------------------------


def test_install_script_exits_0_with_a_message_without_node(tmp_path: Path) -> None:
    done = subprocess.run(
        ["/bin/bash", str(INSTALL_SCRIPT)],
        env={"PATH": str(tmp_path), "CODEX_PREFIX": str(tmp_path / "prefix")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "node/npm not found" in done.stdout
    assert not (tmp_path / "prefix").exists()


def test_install_script_skips_when_the_pinned_version_is_installed() -> None:
    codex_cli.codex_binary()  # installs, or skips this test without Node
    done = subprocess.run(
        [str(INSTALL_SCRIPT)],
        env={**os.environ, "CODEX_PREFIX": str(codex_cli.PREFIX)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "already in" in done.stdout


def test_the_installed_cli_is_the_native_binary_of_the_pinned_version() -> None:
    """The npm package's ``codex`` is a Node wrapper that execs a static Rust binary from the
    platform package; the binary itself answers ``--version`` without Node on PATH."""
    codex_cli.codex_binary()
    (native,) = (codex_cli.PREFIX / "node_modules" / "@openai").glob("codex-linux-*/vendor/*/bin/codex")
    done = subprocess.run(
        [str(native), "--version"], env={"PATH": "/nonexistent"}, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "codex-cli 0.171.0"


def test_codex_binary_skips_with_the_reason_without_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codex_cli, "CODEX_BIN", tmp_path / "absent" / "codex")
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(pytest.skip.Exception, match="Node/npm not found"):
        codex_cli.codex_binary()


# --- Through the proxy: /v1/responses (issue 12; run once the front door is served) ------------


async def proxy_serving_responses(aiohttp_server: Any, providers: dict[str, Any]) -> TestServer:
    """The proxy on a real socket with ``providers``; skips the test while the proxy has no
    ``POST /v1/responses`` route, so these tests start running when the front door lands."""
    app = create_app(build({"providers": providers}, "<test>", {}))
    if not any(resource.canonical == "/v1/responses" for resource in app.router.resources()):
        pytest.skip("the proxy does not serve POST /v1/responses yet (issue 12)")
    server: TestServer = await aiohttp_server(app)
    return server


async def chat_upstream(aiohttp_server: Any, fake: FakeOpenAI) -> dict[str, Any]:
    """A chat-completions-only OpenAI-compatible upstream as provider ``up``."""
    upstream = await aiohttp_server(fake.app())
    return {"up": {"kind": "openai", "base_url": str(upstream.make_url("/v1")), "api_key": "upstream-key"}}


def chat_shell_then_quote(body: dict[str, Any], turn: int) -> list[Any]:
    """The chat upstream's side of the shell turn: call ``exec_command``, then quote the last
    line of the tool message."""
    results = [m for m in body["messages"] if m["role"] == "tool"]
    usage = {"prompt_tokens": 1000, "completion_tokens": 9, "total_tokens": 1009}
    if results:
        text = results[-1]["content"]
        if isinstance(text, list):
            text = "".join(part.get("text", "") for part in text)
        line = text.strip().splitlines()[-1]
        return [_chunk({"role": "assistant", "content": f"The command printed {line}"}), _chunk({}, "stop")]
    call = {"index": 0, "id": "call_up_1", "type": "function", "function": {"name": SHELL_TOOL, "arguments": ""}}
    arguments = orjson.dumps({"cmd": TOOL_COMMAND}).decode()
    return [
        _chunk({"role": "assistant", "tool_calls": [call]}),
        *(
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[i : i + 7]}}]})
            for i in range(0, len(arguments), 7)
        ),
        _chunk({}, "tool_calls"),
        _chunk(None, usage=usage),
    ]


async def test_through_the_proxy_codex_text_turn_from_a_chat_upstream(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeOpenAI(openai_pong)
    proxy = await proxy_serving_responses(aiohttp_server, await chat_upstream(aiohttp_server, fake))

    run = await run_codex("Answer with the single word PONG.", base_url=base_url(proxy), model=MODEL, workdir=tmp_path)

    assert run.returncode == 0, run.explain()
    assert run.text == "PONG", run.explain()
    (sent,) = fake.bodies
    assert sent["model"] == "test-model" and sent["stream"] is True
    roles = [m["role"] for m in sent["messages"]]
    assert roles[0] in {"system", "developer"} and roles[-1] == "user"
    names = [tool["function"]["name"] for tool in sent["tools"]]
    assert SHELL_TOOL in names and "web_search" not in names  # the hosted tool is dropped


async def test_through_the_proxy_codex_tool_turn_runs_the_shell(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeOpenAI(chat_shell_then_quote)
    proxy = await proxy_serving_responses(aiohttp_server, await chat_upstream(aiohttp_server, fake))

    run = await run_codex("Run the echo.", base_url=base_url(proxy), model=MODEL, workdir=tmp_path)

    assert run.returncode == 0, run.explain()
    assert run.text == "The command printed sse-proxy-42", run.explain()
    first, second = fake.bodies
    assert SHELL_TOOL in [tool["function"]["name"] for tool in first["tools"]]
    assistant = next(m for m in second["messages"] if m["role"] == "assistant" and m.get("tool_calls"))
    (call,) = assistant["tool_calls"]
    assert call["function"]["name"] == SHELL_TOOL
    assert orjson.loads(call["function"]["arguments"]) == {"cmd": TOOL_COMMAND}
    (result,) = [m for m in second["messages"] if m["role"] == "tool"]
    assert result["tool_call_id"] == call["id"] and "sse-proxy-42" in str(result["content"])


def anthropic_add_then_answer(body: dict[str, Any]) -> Reply:
    results = tool_results(body)
    if results:
        return text_reply(f"The sum is {results[-1]}.")
    return Reply([Block("tool_use", name="add", input={"a": 40, "b": 2})], stop_reason="tool_use")


async def test_through_the_proxy_agents_sdk_tool_loop_on_an_anthropic_upstream(aiohttp_server: Any) -> None:
    agents = pytest.importorskip("agents", reason="openai-agents is not installed (pip install openai-agents)")
    fake = FakeAnthropic(anthropic_add_then_answer)
    upstream = await aiohttp_server(fake.app())
    provider = {"base_url": f"http://127.0.0.1:{upstream.port}", "api_key": "upstream-key"}
    proxy = await proxy_serving_responses(aiohttp_server, {"anthropic": provider})

    @agents.function_tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    client = sdk(proxy)
    model = agents.OpenAIResponsesModel(model="anthropic/claude-test", openai_client=client)
    agent = agents.Agent(name="adder", instructions="Use the add tool.", model=model, tools=[add])
    result = await agents.Runner.run(agent, "What is 40 + 2?", run_config=agents.RunConfig(tracing_disabled=True))

    assert result.final_output == "The sum is 42."
    first, second = fake.messages
    assert first.body["model"] == "claude-test"
    assert [tool["name"] for tool in first.body["tools"]] == ["add"]
    assert tool_results(second.body) == ["42"]
    await client.close()
