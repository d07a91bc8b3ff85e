"""The v3 streaming URL and its query parameters (no I/O)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


@dataclass(frozen=True, slots=True)
class StreamParams:
    """The session's query parameters. None: not sent (the model's own default)."""

    sample_rate: int
    speech_model: str
    format_turns: bool | None
    end_of_turn_confidence_threshold: float | None
    min_turn_silence: int | None
    max_turn_silence: int | None
    encoding: str = "pcm_s16le"
    inactivity_timeout: int | None = None
    keyterms_prompt: tuple[str, ...] = ()
    prompt: str | None = None
    language_detection: bool | None = None
    language_code: str | None = None
    language_codes: tuple[str, ...] = ()
    mode: str | None = None
    vad_threshold: float | None = None
    voice_focus: str | None = None
    speaker_labels: bool | None = None
    max_speakers: int | None = None

    def query(self) -> dict[str, str]:
        """Every configured parameter sent explicitly: server defaults have changed over
        time, and the server ignores what it does not know (so nothing is left implicit)."""
        q = {
            "sample_rate": str(self.sample_rate),
            "encoding": self.encoding,
            "speech_model": self.speech_model,
        }
        optional: dict[str, object] = {
            "format_turns": self.format_turns,
            "end_of_turn_confidence_threshold": self.end_of_turn_confidence_threshold,
            "min_turn_silence": self.min_turn_silence,
            "max_turn_silence": self.max_turn_silence,
            "inactivity_timeout": self.inactivity_timeout,
            "keyterms_prompt": list(self.keyterms_prompt) or None,
            "prompt": self.prompt,
            "language_detection": self.language_detection,
            "language_code": self.language_code,
            "language_codes": list(self.language_codes) or None,
            "mode": self.mode,
            "vad_threshold": self.vad_threshold,
            "voice_focus": self.voice_focus,
            "speaker_labels": self.speaker_labels,
            "max_speakers": self.max_speakers,
        }
        for key, value in optional.items():
            if value is not None:
                q[key] = _query_value(value)
        return q


LIVE_FIELDS = frozenset(
    {
        "end_of_turn_confidence_threshold",
        "min_turn_silence",
        "max_turn_silence",
        "keyterms_prompt",
        "prompt",
        "mode",
        "vad_threshold",
    }
)
"""What UpdateConfiguration changes on a running session (no reconnect)."""

LiveValue = float | int | bool | list[str] | str


def live_changes(old: StreamParams, new: StreamParams) -> tuple[dict[str, LiveValue], list[str]]:
    """What changed between two sessions' parameters: the fields UpdateConfiguration can
    send now (`keyterms_prompt = []` clears the terms), and the names that only a new
    session applies (a new model, sample rate, language or speaker options, or a value
    going back to the model's default, which cannot be sent)."""
    live: dict[str, LiveValue] = {}
    later: list[str] = []
    for name in StreamParams.__dataclass_fields__:
        before, after = getattr(old, name), getattr(new, name)
        if before == after:
            continue
        if name in LIVE_FIELDS and after is not None:
            live[name] = list(after) if isinstance(after, tuple) else after
        else:
            later.append(name)
    return live, later


def _query_value(value: object) -> str:
    """Booleans as true/false, lists as JSON text (as the SDKs send them), numbers short."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def streaming_url(base: str, params: StreamParams, token: str | None) -> str:
    """The WebSocket URL for one session, with the single-use token in `token=` (none when
    the credential travels in a header or a subprotocol)."""
    parts = urlsplit(base)
    query: dict[str, str] = dict(parse_qsl(parts.query))
    query.update(params.query())
    if token is not None:
        query["token"] = token
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def redact_url(url: str, secret_keys: Mapping[str, None] | None = None) -> str:
    """The URL with token-like query values replaced, for logs and errors."""
    keys = secret_keys or {"token": None, "api_key": None, "key": None, "authorization": None}
    parts = urlsplit(url)
    query = [(k, "***" if k.lower() in keys else v) for k, v in parse_qsl(parts.query)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
