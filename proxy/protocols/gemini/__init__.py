"""Google Gemini upstreams: OpenAI chat requests in, ``generateContent`` out, and back.

Request (OpenAI → Gemini), decisions the OpenAI shape leaves open:

- ``system``/``developer`` messages, wherever they stand, become ``systemInstruction``: one text
  part, the texts joined with blank lines.
- ``assistant`` → role ``model``; ``tool``/``function`` results → ``functionResponse`` parts in a
  ``user`` turn (``name`` looked up from the earlier assistant call with that id, else the message's
  own ``name``; ``response`` is the content parsed when it is a JSON object, else
  ``{"content": text}``; images in a tool result follow it as their own parts). Consecutive turns of
  one role are merged, empty text parts dropped. Tool-call ids are not sent (Gemini pairs calls and
  results by order and name); ``reasoning_content`` of earlier turns is not replayed (the thought
  signatures carry that context).
- Thought signatures: a tool call's ``extra_content.google.thought_signature`` (Google's own
  OpenAI-compatibility field) becomes the ``thoughtSignature`` of its ``functionCall`` part; the
  same field on an assistant message goes on the message's last text part. For Gemini 3 models a
  replayed call without one (history from another model) gets Google's documented
  ``skip_thought_signature_validator`` sentinel, unless an earlier call of the same turn carries a
  real one (Gemini signs only the first call of a parallel batch); without it Gemini 3 answers 400.
- ``image_url``: ``data:`` URLs → ``inlineData``; http(s) URLs → ``fileData`` with the MIME type
  taken from the extension (png, jpg, jpeg, webp, heic, heif), or none for a Gemini Files-API URL;
  anything else is a 400. ``input_audio`` and ``file`` parts with ``file_data`` → ``inlineData``.
- Tools are sent as ``parametersJsonSchema`` (full JSON Schema: ``additionalProperties``, ``anyOf``,
  type lists, ``$ref`` are accepted there, unlike the OpenAPI-subset ``parameters`` field, which
  rejects them with "Unknown name ..."). ``$schema`` keys are removed and a scalar ``const`` becomes
  a one-value ``enum`` (both rejected by Gemini). The same cleaning applies to a ``json_schema``
  ``response_format``, sent as ``responseJsonSchema``. ``tool_choice`` ``none|auto|required|{name}``
  (legacy ``function_call`` likewise) → ``NONE|AUTO|ANY|ANY`` + ``allowedFunctionNames``.
  ``parallel_tool_calls`` has no Gemini equivalent: it is accepted and ignored.
- Thinking: ``thinking_budget`` (an int: ``-1`` dynamic, ``0`` off, else tokens) wins over
  ``reasoning_effort`` ``none`` 0, ``minimal`` 512, ``low`` 1024, ``medium`` 8192, ``high`` 24576
  (Google's own OpenAI-compatibility budgets). A non-zero budget sets ``includeThoughts`` so that the
  thought summaries stream as ``reasoning_content``.
- Mapped: ``temperature``, ``top_p``, ``top_k``, ``stop``, ``max_completion_tokens`` (wins over
  ``max_tokens``), ``seed``, non-zero ``presence_penalty``/``frequency_penalty`` (dropped for
  gemini-2.5 models, whose Developer API rejects them). Dropped as harmless: ``logprobs``,
  ``top_logprobs``, ``user``, ``metadata``, ``store``, ``service_tier``, ``stream_options``. A 400
  because the answer would be wrong: ``n > 1``, a non-empty ``logit_bias``, audio ``modalities``.
- Provider option ``safety_settings`` (a list) is sent as ``safetySettings``.

Stream (``data: {GenerateContentResponse}`` frames, CRLF-framed, no terminator): text parts →
``content`` and ``thought`` parts → ``reasoning_content``, one chunk per part as it arrives; a
``thoughtSignature`` on such a part rides along as ``delta.extra_content.google.thought_signature``
(an empty text part that only carries one becomes a chunk with just that field). A whole
``functionCall`` → one tool-call delta with its arguments serialised (``{}`` when none), id
``functionCall.id`` when Gemini gives one, else ``call_<prefix>_<index>``. The finish chunk is
written when ``finishReason`` arrives; usage keeps arriving after it, so the usage chunk and
``[DONE]`` are written at upstream EOF (``finish``). A stream that ends before a ``finishReason``
was truncated. An error object (``data: {"error": ...}``, or the raw JSON error body Gemini appends
without SSE framing when it fails mid-stream) ends the stream with that error.

``finishReason``: ``STOP`` → ``stop`` (``tool_calls`` after a call), ``MAX_TOKENS`` → ``length``;
safety-type reasons, ``OTHER`` and unknown future reasons → ``content_filter`` (Gemini ended the
answer early for its own reasons: ``stop`` would claim a complete answer).
``MALFORMED_FUNCTION_CALL``, ``UNEXPECTED_TOOL_CALL``, ``TOO_MANY_TOOL_CALLS`` and
``MALFORMED_RESPONSE`` are errors (502, retryable: the output is unusable, and before the first
byte another attempt may succeed); ``MISSING_THOUGHT_SIGNATURE`` is a 400. A blocked prompt
(``promptFeedback.blockReason``, no candidates) → ``delta.refusal`` naming the reason, then
``finish_reason: content_filter``.

Usage: ``prompt_tokens = promptTokenCount + toolUsePromptTokenCount``, ``completion_tokens =
candidatesTokenCount + thoughtsTokenCount``, ``cached_tokens = cachedContentTokenCount``,
``reasoning_tokens = thoughtsTokenCount``; the last ``usageMetadata`` wins (running totals).

Errors: Google's ``{"error": {"code", "message", "status"}}`` (or a list of one) keeps the HTTP
status, with ``status`` mapped to an OpenAI type and kept as ``code``; a ``RetryInfo`` delay sets
``retry_after``. Two exceptions, so the router falls back instead of blaming the client: an invalid
API key (400 ``API_KEY_INVALID``) is a 401 and ``FAILED_PRECONDITION`` (billing/region) a 403.
"""
