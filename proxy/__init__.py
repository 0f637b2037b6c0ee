"""sse-proxy: a lean, very fast OpenAI-compatible LLM router on aiohttp."""

__version__ = "0.1.0"
