"""Is an address or a ``Host`` header loopback? For the listen check (cli) and the DNS-rebinding
check (browser): names are compared, never resolved."""

from __future__ import annotations

import functools
import ipaddress

__all__ = ["host_of", "is_loopback"]


@functools.lru_cache(maxsize=256)  # checked on every request (the Host header); bounded
def is_loopback(host: str) -> bool:
    """``localhost`` (and ``*.localhost``), 127.0.0.0/8, ::1 (bracketed or not); not 0.0.0.0."""
    name = host.strip().rstrip(".").lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_of(header: str) -> str:
    """The host part of a ``Host`` header (the port dropped; IPv6 literals keep their brackets)."""
    header = header.strip()
    if header.startswith("["):
        end = header.find("]")
        return header if end < 0 else header[: end + 1]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header
