"""The Host-header rule of every tokenops listener, for the ASGI app.

A name that is not in the allow-list is refused (421) so a web page cannot reach the
API through DNS rebinding: a browser sends the attacker's name, while an IP address or
`localhost` cannot be rebound. The same rule as tokenops/listen.py's allow-list; this
module can move there once that is the one listener module.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import ip_address


def host_name(header: str) -> str:
    """The name or address of a Host header, without the port or IPv6 brackets."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def host_allowed(header: str | None, allowed: Iterable[str]) -> bool:
    if not header:
        return False
    name = host_name(header)
    if name == "localhost" or name in {a.lower() for a in allowed}:
        return True
    try:
        ip_address(name)
    except ValueError:
        return False
    return True
