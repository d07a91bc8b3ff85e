"""Plain HTTP answers served from websockets' ``process_request`` hook."""

from __future__ import annotations

import email.utils
import http
import json
from typing import Any
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
