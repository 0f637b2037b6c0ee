"""OpenAI Chat Completions: the wire format of /v1/chat/completions and of every OpenAI-compatible upstream."""
