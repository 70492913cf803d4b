"""Errors of the local stack, each with what to do about it."""

from __future__ import annotations

from tokenops.errors import TokenopsError


class StackError(TokenopsError):
    """A local-stack component could not be set up, started or stopped."""


class PortInUseError(StackError):
    def __init__(self, component: str, port: int, setting: str, host: str = "127.0.0.1") -> None:
        super().__init__(
            f"{component} cannot listen on {host}:{port}: the port is already in use",
            hint=f"stop what holds it, or choose another port with {setting}=<port>",
        )
        self.port = port
        self.setting = setting


class MissingToolError(StackError):
    """A program the stack needs (java, mvn, prometheus) is missing or too old."""


class ForeignStateError(StackError):
    """The state directory holds data the stack did not create; it is never deleted silently."""
