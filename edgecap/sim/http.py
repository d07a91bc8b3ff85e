"""Plain HTTP answers served from websockets' ``process_request`` hook."""

from __future__ import annotations

import email.utils
import http
import json
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Response

SERVER_HEADER = "edgecap-simulator"


def json_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response:
    """An HTTP response with a JSON body; the connection closes after it."""
    payload = json.dumps(body).encode()
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Simulated"
    response_headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
            ("Cache-Control", "no-store"),
        ]
    )
    for name, value in (headers or {}).items():
        response_headers[name] = value
    return Response(status, phrase, response_headers, payload)


def split_target(target: str) -> tuple[str, dict[str, str]]:
    """Path and query parameters (last value wins) of a request target."""
    parts = urlsplit(target)
    return parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))


def int_param(params: dict[str, str], name: str) -> int | None:
    """An integer query parameter; ``ValueError`` if present but not an integer."""
    if name not in params:
        return None
    try:
        return int(params[name])
    except ValueError:
        raise ValueError(f"{name} must be an integer") from None


class LoopbackServer:
    """`async with` and the bound port, shared by the simulators.

    Subclasses implement `start()` (setting `self._port`) and `stop()`.
    """

    _port: int | None = None
    _kind = "simulator"

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._port is None:
            raise RuntimeError(f"{self._kind} not started")
        return self._port
