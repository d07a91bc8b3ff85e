"""What the engine needs of a speech provider's protocol (no I/O).

A provider is a pure protocol object plus the engine's WebSocket transport
(`engine.session`): the object says how to connect (URL, headers, subprotocols for the way
in that is configured), what the control messages look like and how to read a refused
upgrade or a close. AssemblyAI v3 (`providers.assemblyai.protocol`) is the first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from edgecap.providers.failures import Classified


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    url: str = field(repr=False)
    """May carry a secret (a single-use token in the query)."""
    shown: str
    """The URL for logs and errors: secrets replaced."""
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    subprotocols: tuple[str, ...] = field(default=(), repr=False)


class StreamingProvider(Protocol):
    @property
    def name(self) -> str: ...

    def connect_request(self, credential: str) -> ConnectRequest:
        """How to open a session with `credential` (a token, or the configured key)."""
        ...

    def terminate_message(self) -> str: ...

    def update_message(self, **fields: float | int | bool | list[str] | str) -> str:
        """A live configuration change (no reconnect)."""
        ...

    def force_endpoint_message(self) -> str: ...

    def keepalive_message(self) -> str: ...

    def classify_upgrade(self, status: int) -> Classified:
        """The upgrade was refused with this HTTP status."""
        ...

    def classify_close(self, code: int | None, reason: str, *, after_terminate: bool) -> Classified:
        """The connection was closed (the Error frame's code and text when there was one)."""
        ...
