"""Parsing of v3 server messages and building of client messages (no I/O).

Follows the v3 wire protocol (Begin / Turn / SpeakerRevision / Termination / Error /
Warning, discriminated by `type`). Unknown types are returned as `Unknown` and ignored by
callers, as the protocol requires. A malformed message (a missing field, a wrong type, a
number that is not finite or out of range: see `limits.py`) raises `ProtocolError` with a
one-line description; the session logs it and skips the message rather than dropping the
connection. Text is made safe (lone surrogates replaced) and bounded here, so nothing
downstream can fail on it. An optional field that is unusable (a speaker label or language
code that is not one, a confidence out of range) is dropped and the message used without
it (`fields.py`). A Turn that was changed says so (`truncated`, `repairs`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from edgecap.providers.assemblyai.fields import NUMBER, Repairs, field, optional
from edgecap.providers.assemblyai.limits import (
    MAX_AUDIO_MS,
    MAX_CLOSE_CODE,
    MAX_ID_CHARS,
    MAX_SECONDS,
    MAX_TEXT_CHARS,
    MAX_TURN_ORDER,
    MAX_UNIX_SECONDS,
    MAX_WORDS,
    line,
    number,
    optional_number,
    show,
    unicode_safe,
)
from edgecap.providers.assemblyai.revision import parse_speaker_revision
from edgecap.providers.turn import (
    ProtocolError,
    RevisedWord,
    SpeakerRevision,
    Turn,
    TurnRevision,
    Word,
)


@dataclass(frozen=True, slots=True)
class Begin:
    id: str
    expires_at: int | None
    configuration: dict[str, Any]

    @property
    def model(self) -> str | None:
        model = self.configuration.get("model")
        return line(model, MAX_ID_CHARS) if isinstance(model, str) else None


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


ServerMessage = Begin | Turn | SpeakerRevision | Termination | ServerError | ServerWarning | Unknown


def _parse_word(raw: Any, index: int, previous_start: int, texts: Repairs) -> Word:
    what = f"Turn.words[{index}]"
    if not isinstance(raw, dict):
        raise ProtocolError(f"{what} should be an object")
    start = int(number(field(raw, "start", NUMBER, what), f"{what}.start", 0, MAX_AUDIO_MS))
    end = int(number(field(raw, "end", NUMBER, what), f"{what}.end", 0, MAX_AUDIO_MS))
    if end < start:
        raise ProtocolError(f"{what} ends ({end} ms) before it starts ({start} ms)")
    if start < previous_start:
        raise ProtocolError(
            f"{what} starts at {start} ms, before the word ahead of it ({previous_start} ms): "
            "words out of order"
        )
    confidence = number(field(raw, "confidence", NUMBER, what), f"{what}.confidence", 0, 1)
    return Word(
        text=texts.text(field(raw, "text", str, what), MAX_TEXT_CHARS, f"{what}.text"),
        start_ms=start,
        end_ms=end,
        confidence=float(confidence),
        is_final=bool(raw.get("word_is_final", True)),
        speaker=texts.label(raw, "speaker", what),
    )


def _parse_words(words_raw: list[Any], texts: Repairs) -> tuple[tuple[Word, ...], bool]:
    """The words that fit the limits (in order), and whether any were dropped."""
    words: list[Word] = []
    chars = 0
    for index, raw in enumerate(words_raw[:MAX_WORDS]):
        word = _parse_word(raw, index, words[-1].start_ms if words else 0, texts)
        chars += len(word.text)
        if chars > MAX_TEXT_CHARS:
            break
        words.append(word)
    if len(words) < len(words_raw):
        texts.note(f"word list cut from {len(words_raw)} to {len(words)} words")
        return tuple(words), True
    return tuple(words), False


def _parse_turn(data: dict[str, Any]) -> Turn:
    texts = Repairs()
    order = number(field(data, "turn_order", int, "Turn"), "Turn.turn_order", 0, MAX_TURN_ORDER)
    words, words_cut = _parse_words(field(data, "words", list, "Turn"), texts)
    transcript = field(data, "transcript", str, "Turn")
    eot_confidence = number(
        field(data, "end_of_turn_confidence", NUMBER, "Turn"),
        "Turn.end_of_turn_confidence",
        0,
        1,
    )
    return Turn(
        turn_order=int(order),
        end_of_turn=field(data, "end_of_turn", bool, "Turn"),
        turn_is_formatted=field(data, "turn_is_formatted", bool, "Turn"),
        transcript=texts.text(transcript, MAX_TEXT_CHARS, "Turn.transcript"),
        end_of_turn_confidence=float(eot_confidence),
        words=words,
        utterance=texts.text(optional(data, "utterance", str) or "", MAX_TEXT_CHARS, "utterance"),
        language_code=texts.language(data, "language_code", "Turn"),
        language_confidence=texts.fraction(data, "language_confidence", "Turn"),
        speaker_label=texts.label(data, "speaker_label", "Turn"),
        truncated=words_cut or len(transcript) > MAX_TEXT_CHARS,
        repairs=texts.notes(),
    )


def _parse_begin(data: dict[str, Any]) -> Begin:
    expires = data.get("expires_at")
    if expires is not None:
        expires = number(expires, "Begin.expires_at (Unix seconds)", 0, MAX_UNIX_SECONDS)
    session_id = field(data, "id", str, "Begin")
    if not 0 < len(session_id) <= MAX_ID_CHARS:
        raise ProtocolError(
            f"Begin.id should be 1..{MAX_ID_CHARS} characters, got {show(session_id)}"
        )
    configuration = data.get("configuration")
    return Begin(
        id=unicode_safe(session_id)[0],
        expires_at=None if expires is None else int(expires),
        configuration=configuration if isinstance(configuration, dict) else {},
    )


def _code(value: object) -> int | None:
    code = optional_number(value, 0, MAX_CLOSE_CODE)
    return code if isinstance(code, int) else None


def _parse_object(data: dict[str, Any], text: str) -> ServerMessage:
    kind = data.get("type")
    if kind is None and "error" in data:  # older servers: bare {"error": "..."}
        return ServerError(None, line(data["error"]))
    if kind is None and "message_type" in data:
        raise ProtocolError(
            f"v2-style message ({show(data['message_type'])}): streaming.url points at a legacy "
            "v2 realtime server, use wss://streaming.assemblyai.com/v3/ws"
        )
    if kind == "Turn":
        return _parse_turn(data)
    if kind == "Begin":
        return _parse_begin(data)
    if kind == "SpeakerRevision":
        return parse_speaker_revision(data)
    if kind == "Termination":
        return Termination(
            audio_duration_seconds=optional_number(
                data.get("audio_duration_seconds"), 0, MAX_SECONDS
            ),
            session_duration_seconds=optional_number(
                data.get("session_duration_seconds"), 0, MAX_SECONDS
            ),
        )
    if kind == "Error":
        return ServerError(_code(data.get("error_code")), line(data.get("error", "")))
    if kind == "Warning":
        return ServerWarning(_code(data.get("warning_code")), line(data.get("warning", "")))
    if not isinstance(kind, str):
        raise ProtocolError(f"server message without a string 'type': {text[:80]!r}")
    return Unknown(line(kind, MAX_ID_CHARS), data)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_server_message(text: str | bytes) -> ServerMessage:
    """Parse one text frame from the server. Anything unusable raises `ProtocolError`."""
    if isinstance(text, bytes):
        raise ProtocolError("binary frame from the server (v3 sends JSON text frames only)")
    try:
        data = json.loads(text, parse_constant=_not_json)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"server sent invalid JSON ({exc}): {text[:80]!r}") from exc
    if not isinstance(data, dict):
        raise ProtocolError(f"server message is not a JSON object: {text[:80]!r}")
    try:
        return _parse_object(data, text)
    except ProtocolError:
        raise
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # a value no check above anticipated: still one unusable message, not a crash
        raise ProtocolError(f"unusable server message ({exc!r:.120}): {text[:80]!r}") from exc


# -- client messages ----------------------------------------------------------------------

TERMINATE = json.dumps({"type": "Terminate"})
FORCE_ENDPOINT = json.dumps({"type": "ForceEndpoint"})
KEEP_ALIVE = json.dumps({"type": "KeepAlive"})


def update_configuration(**fields: float | int | bool | list[str] | str) -> str:
    """An UpdateConfiguration message with the given fields (endpointing, keyterms...)."""
    return json.dumps({"type": "UpdateConfiguration", **fields})


__all__ = [
    "FORCE_ENDPOINT",
    "KEEP_ALIVE",
    "TERMINATE",
    "Begin",
    "ProtocolError",
    "RevisedWord",
    "ServerError",
    "ServerMessage",
    "ServerWarning",
    "SpeakerRevision",
    "Termination",
    "Turn",
    "TurnRevision",
    "Unknown",
    "Word",
    "parse_server_message",
    "update_configuration",
]
