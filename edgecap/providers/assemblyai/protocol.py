"""AssemblyAI v3 Universal-Streaming as a `StreamingProvider` (no I/O).

Four ways in (`AuthForm`), each a different upgrade request:

- `token_query`: a single-use temporary token in `?token=` (token service, or minted with
  an API key on the device);
- `proxy_header`: through a KeyPool-compatible proxy (`.../v1/assemblyai/v3/ws`), the team
  credential as `Authorization: Bearer <credential>`;
- `proxy_subprotocol`: the same proxy, the credential as the WebSocket subprotocol
  `keypool-token.<credential>` (where headers cannot be set);
- `api_key_header`: the API key itself as `Authorization: <key>` (raw, no Bearer), as a
  server-side client does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edgecap.providers.assemblyai.errors import classify_close, classify_http_status
from edgecap.providers.assemblyai.messages import (
    FORCE_ENDPOINT,
    KEEP_ALIVE,
    TERMINATE,
    update_configuration,
)
from edgecap.providers.assemblyai.url import StreamParams, redact_url, streaming_url
from edgecap.providers.base import ConnectRequest
from edgecap.providers.failures import Classified

AuthForm = Literal["token_query", "proxy_header", "proxy_subprotocol", "api_key_header"]
PROXY_SUBPROTOCOL_PREFIX = "keypool-token."


@dataclass(frozen=True, slots=True)
class AssemblyAIProvider:
    url: str
    params: StreamParams
    auth: AuthForm = "token_query"
    name: str = "assemblyai"

    @property
    def via_proxy(self) -> bool:
        return self.auth in ("proxy_header", "proxy_subprotocol")

    def connect_request(self, credential: str) -> ConnectRequest:
        token = credential if self.auth == "token_query" else None
        url = streaming_url(self.url, self.params, token)
        shown = redact_url(url)
        if self.auth == "proxy_header":
            return ConnectRequest(url, shown, headers=(("Authorization", f"Bearer {credential}"),))
        if self.auth == "proxy_subprotocol":
            return ConnectRequest(url, shown, subprotocols=(PROXY_SUBPROTOCOL_PREFIX + credential,))
        if self.auth == "api_key_header":
            return ConnectRequest(url, shown, headers=(("Authorization", credential),))
        return ConnectRequest(url, shown)

    def terminate_message(self) -> str:
        return TERMINATE

    def update_message(self, **fields: float | int | bool | list[str] | str) -> str:
        return update_configuration(**fields)

    def force_endpoint_message(self) -> str:
        return FORCE_ENDPOINT

    def keepalive_message(self) -> str:
        return KEEP_ALIVE

    def classify_upgrade(self, status: int) -> Classified:
        where = "KeyPool proxy" if self.via_proxy else "streaming server"
        return classify_http_status(status, where=where)

    def classify_close(self, code: int | None, reason: str, *, after_terminate: bool) -> Classified:
        return classify_close(code, reason, after_terminate=after_terminate)
