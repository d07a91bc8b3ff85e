"""The v3 streaming URL and its query parameters (no I/O)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


@dataclass(frozen=True, slots=True)
class StreamParams:
    sample_rate: int
    speech_model: str
    format_turns: bool
    end_of_turn_confidence_threshold: float
    min_turn_silence: int
    max_turn_silence: int
    encoding: str = "pcm_s16le"
    inactivity_timeout: int | None = None
    keyterms_prompt: tuple[str, ...] = ()

    def query(self) -> dict[str, str]:
        """Every parameter sent explicitly: server defaults have changed over time."""
        q = {
            "sample_rate": str(self.sample_rate),
            "encoding": self.encoding,
            "speech_model": self.speech_model,
            "format_turns": "true" if self.format_turns else "false",
            "end_of_turn_confidence_threshold": f"{self.end_of_turn_confidence_threshold:g}",
            "min_turn_silence": str(self.min_turn_silence),
            "max_turn_silence": str(self.max_turn_silence),
        }
        if self.inactivity_timeout is not None:
            q["inactivity_timeout"] = str(self.inactivity_timeout)
        if self.keyterms_prompt:
            q["keyterms_prompt"] = json.dumps(list(self.keyterms_prompt))
        return q


def streaming_url(base: str, params: StreamParams, token: str) -> str:
    """The WebSocket URL for one session, with the single-use token in `token=`."""
    parts = urlsplit(base)
    query: dict[str, str] = dict(parse_qsl(parts.query))
    query.update(params.query())
    query["token"] = token
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def redact_url(url: str, secret_keys: Mapping[str, None] | None = None) -> str:
    """The URL with token-like query values replaced, for logs and errors."""
    keys = secret_keys or {"token": None, "api_key": None, "key": None, "authorization": None}
    parts = urlsplit(url)
    query = [(k, "***" if k.lower() in keys else v) for k, v in parse_qsl(parts.query)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
