"""The OpenAI Responses API (``POST /v1/responses``) as a front door's wire format, sans-IO.

Codex and the OpenAI Agents SDK speak only the Responses API. Behind this door, providers that
do not (Anthropic, Gemini, chat-only OpenAI-compatible servers) are translated through the
pipeline's pivot, the OpenAI chat body:

- ``request.py``: ``to_chat`` reads a Responses request into the pivot, and tells the door
  which tools were ``custom`` (their calls must come back as ``custom_tool_call`` items) and
  which hosted tools were left out (the door logs them).
- ``encode.py``: ``ResponsesEncoder`` is the door's ``StreamEncoder`` (neutral stream events in,
  Responses SSE events out); ``encode_response`` writes a whole ``response`` object;
  ``error_body`` / ``ResponsesEncoder.error_frame`` render errors before and after the stream.

Provider signatures (Anthropic thinking signatures, Gemini thought signatures) ride in a
``reasoning`` item's ``encrypted_content`` with a prefix naming their origin, which clients
echo back verbatim on the next turn; ``to_chat`` reads them back into the pivot's
``thinking_blocks`` and Google's ``extra_content``. The prefixes live in ``request.py``.
No aiohttp, no asyncio, no clock: ids and times come from the ``StreamContext``.
"""
