"""Every error the proxy reports, as one tree.

::

    ProxyError                    an OpenAI-shaped error with an HTTP status
    ├── BadRequest                400 invalid_request_error: the client's body is wrong
    │   └── UnsupportedByProvider 400 the body is fine, but this provider cannot serve it
    │                             (a fallback moves on to the next model)
    ├── NotFound                  404 the model names no known provider, policy or alias
    ├── PayloadTooLarge           413 the request body is over the configured size
    ├── MissingKey                401 the provider needs a key that is not configured
    ├── UpstreamError             the provider answered with an error status (same status)
    ├── UpstreamUnavailable       502 connect error, reset before the response
    ├── UpstreamTimeout           504 no response or no first byte in time
    └── StreamError               the stream failed after it started (truncated,
                                  malformed, a provider error event, idle timeout)

An error carries meaning only (``status``, ``type``, ``param``, ``code``, ``retry_after``): each
front door renders it in its own wire format, as an HTTP body before the stream and as an error
event after it. The message of an error never contains a provider key: keys are only ever
placed in upstream request headers.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BadRequest",
    "MissingKey",
    "NotFound",
    "PayloadTooLarge",
    "ProxyError",
    "StreamError",
    "UnsupportedByProvider",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "error_type",
]


_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    504: "timeout_error",
}


def error_type(status: int) -> str:
    """OpenAI's error ``type`` for an HTTP status, when the provider gave none we can map."""
    return _TYPE_BY_STATUS.get(status, "api_error" if status >= 500 else "invalid_request_error")


class ProxyError(Exception):
    """Base of all errors the proxy reports to a client."""

    status: int = 500
    type: str = "api_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        param: str | None = None,
        code: str | int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        self.param = param
        self.code = code
        self.retry_after: float | None = None  # seconds, from the provider's Retry-After header

    @property
    def retryable(self) -> bool:
        """True when another attempt (same model later, or another model) may succeed."""
        return self.status in (408, 409, 429) or self.status >= 500

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.message!r})"


class BadRequest(ProxyError):
    status = 400
    type = "invalid_request_error"


class UnsupportedByProvider(BadRequest):
    """A well-formed request that this provider cannot serve (``n > 1`` on Anthropic, a tool
    type Gemini lacks). Unlike other 400s it moves a fallback on to the next model; it reaches
    the client only when no model could serve the request."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("code", "unsupported_by_provider")
        super().__init__(message, **kwargs)


class NotFound(ProxyError):
    status = 404
    type = "invalid_request_error"


class PayloadTooLarge(ProxyError):
    status = 413
    type = "invalid_request_error"


class MissingKey(ProxyError):
    status = 401
    type = "authentication_error"


class UpstreamError(ProxyError):
    """The provider answered with an error status; ``status`` is the provider's."""


class UpstreamUnavailable(ProxyError):
    status = 502
    type = "upstream_error"


class UpstreamTimeout(ProxyError):
    status = 504
    type = "timeout_error"


class StreamError(ProxyError):
    """The upstream stream failed after it began.

    ``output`` holds the OpenAI frames a translator had already produced from the same input
    before it met the failure: the relay writes them first, then this error's frame.
    """

    status = 502
    type = "upstream_error"

    def __init__(self, message: str, *, output: bytes = b"", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.output = output
