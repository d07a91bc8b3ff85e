"""Parsing of v3 server messages and building of client messages (no I/O).

Follows the v3 wire protocol (Begin / Turn / Termination / Error / Warning, discriminated by
`type`). Unknown types are returned as `Unknown` and ignored by callers, as the protocol
requires. A malformed message raises `ProtocolError` with a one-line description; the
session logs it and carries on rather than dropping the connection.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


class ProtocolError(ValueError):
    """A server message that does not follow the v3 protocol."""


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    start_ms: int
    end_ms: int
    confidence: float
    is_final: bool


@dataclass(frozen=True, slots=True)
class Begin:
    id: str
    expires_at: int | None
    configuration: dict[str, Any]

    @property
    def model(self) -> str | None:
        model = self.configuration.get("model")
        return model if isinstance(model, str) else None


@dataclass(frozen=True, slots=True)
class Turn:
    turn_order: int
    end_of_turn: bool
    turn_is_formatted: bool
    transcript: str
    end_of_turn_confidence: float
    words: tuple[Word, ...]
    utterance: str = ""
    language_code: str | None = None
    language_confidence: float | None = None


@dataclass(frozen=True, slots=True)
class Termination:
    audio_duration_seconds: float | None
    session_duration_seconds: float | None


@dataclass(frozen=True, slots=True)
class ServerError:
    code: int | None
    message: str


@dataclass(frozen=True, slots=True)
class ServerWarning:
    code: int | None
    message: str


@dataclass(frozen=True, slots=True)
class Unknown:
    type: str
    raw: dict[str, Any]


ServerMessage = Begin | Turn | Termination | ServerError | ServerWarning | Unknown


def _field(data: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    if name not in data:
        raise ProtocolError(f"{what} message without {name!r}")
    value = data[name]
    # bool is an int subclass: never accept it where a number is expected
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ProtocolError(f"{what}.{name} should be {_kind_name(kind)}, got {value!r}")
    if not isinstance(value, kind):
        raise ProtocolError(f"{what}.{name} should be {_kind_name(kind)}, got {value!r:.60}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _optional(data: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(name)
    if value is None or isinstance(value, bool) or not isinstance(value, kind):
        return None
    return value


_NUMBER = (int, float)


def _parse_word(raw: Any, index: int) -> Word:
    if not isinstance(raw, dict):
        raise ProtocolError(f"Turn.words[{index}] should be an object")
    what = f"Turn.words[{index}]"
    return Word(
        text=_field(raw, "text", str, what),
        start_ms=int(_field(raw, "start", _NUMBER, what)),
        end_ms=int(_field(raw, "end", _NUMBER, what)),
        confidence=float(_field(raw, "confidence", _NUMBER, what)),
        is_final=bool(raw.get("word_is_final", True)),
    )


def _parse_turn(data: dict[str, Any]) -> Turn:
    words_raw = _field(data, "words", list, "Turn")
    return Turn(
        turn_order=_field(data, "turn_order", int, "Turn"),
        end_of_turn=_field(data, "end_of_turn", bool, "Turn"),
        turn_is_formatted=_field(data, "turn_is_formatted", bool, "Turn"),
        transcript=_field(data, "transcript", str, "Turn"),
        end_of_turn_confidence=float(_field(data, "end_of_turn_confidence", _NUMBER, "Turn")),
        words=tuple(_parse_word(w, i) for i, w in enumerate(words_raw)),
        utterance=_optional(data, "utterance", str) or "",
        language_code=_optional(data, "language_code", str),
        language_confidence=_optional(data, "language_confidence", _NUMBER),
    )


def _parse_begin(data: dict[str, Any]) -> Begin:
    expires = data.get("expires_at")
    if isinstance(expires, bool) or not isinstance(expires, int | float | None):
        raise ProtocolError(f"Begin.expires_at should be Unix seconds, got {expires!r:.60}")
    configuration = data.get("configuration")
    return Begin(
        id=_field(data, "id", str, "Begin"),
        expires_at=None if expires is None else int(expires),
        configuration=configuration if isinstance(configuration, dict) else {},
    )


def parse_server_message(text: str | bytes) -> ServerMessage:
    """Parse one text frame from the server."""
    if isinstance(text, bytes):
        raise ProtocolError("binary frame from the server (v3 sends JSON text frames only)")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(f"server sent invalid JSON: {text[:80]!r}") from exc
    if not isinstance(data, dict):
        raise ProtocolError(f"server message is not a JSON object: {text[:80]!r}")
    kind = data.get("type")
    if kind is None and "error" in data:  # older servers: bare {"error": "..."}
        return ServerError(None, str(data["error"]))
    if kind is None and "message_type" in data:
        raise ProtocolError(
            f"v2-style message ({data['message_type']!r}): streaming.url points at a legacy "
            "v2 realtime server, use wss://streaming.assemblyai.com/v3/ws"
        )
    if kind == "Turn":
        return _parse_turn(data)
    if kind == "Begin":
        return _parse_begin(data)
    if kind == "Termination":
        return Termination(
            audio_duration_seconds=_optional(data, "audio_duration_seconds", _NUMBER),
            session_duration_seconds=_optional(data, "session_duration_seconds", _NUMBER),
        )
    if kind == "Error":
        return ServerError(_optional(data, "error_code", int), str(data.get("error", "")))
    if kind == "Warning":
        return ServerWarning(_optional(data, "warning_code", int), str(data.get("warning", "")))
    if not isinstance(kind, str):
        raise ProtocolError(f"server message without a string 'type': {text[:80]!r}")
    return Unknown(kind, data)


# -- client messages ----------------------------------------------------------------------

TERMINATE = json.dumps({"type": "Terminate"})
FORCE_ENDPOINT = json.dumps({"type": "ForceEndpoint"})
KEEP_ALIVE = json.dumps({"type": "KeepAlive"})


def update_configuration(**fields: float | int | bool | list[str]) -> str:
    """An UpdateConfiguration message with the given (endpointing) fields."""
    return json.dumps({"type": "UpdateConfiguration", **fields})
