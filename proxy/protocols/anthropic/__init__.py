"""Anthropic Messages upstreams: OpenAI chat requests in, Anthropic ``/v1/messages`` out and back.

Request (OpenAI → Anthropic), decisions the OpenAI shape leaves open:

- ``system``/``developer`` messages, wherever they stand, become the top-level ``system``: one
  string joined with blank lines, or a list of text blocks when a part carries ``cache_control``
  (kept, like ``cache_control`` on any text or image part, so prompt caching works).
- Messages are merged into strictly alternating turns; ``tool``/``function`` results go into
  user turns, ahead of any text there. Tool-call ids are made Anthropic-safe (``[A-Za-z0-9_-]``)
  the same way on the ``tool_use`` and its ``tool_result``. Legacy ``function_call`` turns get
  ids ``toolu_legacy_<message index>``; a ``function`` message answers the oldest open call of
  its name. A final assistant (prefill) turn loses its trailing whitespace, which Anthropic rejects.
- Assistant ``thinking_blocks`` (LiteLLM convention) are replayed as the turn's first blocks,
  with only the fields Anthropic accepts (our own stream adds an ``index`` to them).
- ``max_completion_tokens`` wins over ``max_tokens``; without either, option
  ``default_max_tokens`` (4096). Thinking: the client's Anthropic ``thinking`` object passes
  through; else ``thinking_budget`` (an int, at least 1024) sets the budget; else
  ``reasoning_effort`` ``minimal|low`` 1024, ``medium`` 4096, ``high`` 16384 (``none``: off).
  When ``max_tokens`` is not above the budget it becomes budget + ``max_tokens``, so the answer
  keeps the room the client asked for.
- ``temperature`` above 1 (OpenAI allows 2) is clamped to 1, Anthropic's maximum.
- ``response_format``: ``json_object`` appends a system instruction to answer with one JSON
  object. ``json_schema`` adds a tool named ``_proxy_json_response`` whose ``input_schema`` is
  the schema and forces it (``tool_choice: tool``; ``any`` when the client has tools of its
  own and a choice of auto/required; ``auto`` with an instruction when thinking is on, since
  Anthropic forbids forced tools with thinking). That tool's input comes back as ``content``
  and its ``tool_use`` stop as ``finish_reason: stop``: the client sees a plain JSON answer.
- Dropped as harmless: ``logprobs``, ``top_logprobs``, ``presence_penalty``,
  ``frequency_penalty``, ``seed``, ``logit_bias``, ``metadata``, ``store``, ``service_tier``,
  ``stream_options``. ``n > 1`` is a 400 (one answer would be wrong). ``top_k`` passes through.

Stream (Anthropic SSE → OpenAI chunks): ``message_start`` writes nothing; the role rides on
the first content chunk. Until then the client has been sent nothing, so an ``error`` event
right after ``message_start`` (typically ``overloaded_error``) fails the attempt before the
first byte and the router can still retry it or fall back. Every text, thinking or argument
delta is one chunk, sent at once. A tool call with no argument fragments gets ``"{}"`` at its
block's end. A thinking block's signature (and a redacted thinking block) becomes
``delta.thinking_blocks`` with one entry carrying an ``index`` counter, so that openai-python's
stream accumulator merges several blocks instead of failing.

``stop_reason``: ``end_turn``/``stop_sequence``/``pause_turn`` → ``stop`` (a paused server-tool
turn can be continued by sending it back), ``max_tokens``/``model_context_window_exceeded`` →
``length``, ``tool_use`` → ``tool_calls``, ``refusal`` → ``content_filter`` with the refusal's
explanation (when given) as ``delta.refusal``. Events after ``message_stop`` are ignored.

Errors: Anthropic error types map to OpenAI's (``code`` keeps Anthropic's type); an HTTP 529
(overloaded) is reported as 503.
"""
