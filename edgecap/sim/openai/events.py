"""Client events in, server events out, for one transcription session (sans-I/O).

:func:`parse_client_event` and :func:`decode_append` read what the client sends (raising
:class:`RealtimeError` for what the real server answers with an ``error`` event);
the other functions turn the input buffer's happenings into the server events a client
sees, in the real server's order: ``speech_started``, (deltas of live models),
``speech_stopped``, ``input_audio_buffer.committed``, ``conversation.item.added``, deltas,
``…transcription.completed`` (or ``.failed``), ``conversation.item.done``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from edgecap.sim.openai.buffer import Commit, LiveDelta, SpeechStarted, SpeechStopped
from edgecap.sim.openai.protocol import (
    Message,
    RealtimeError,
    event,
    invalid_type,
    usage,
    user_item,
)

TRANSCRIPTION = "conversation.item.input_audio_transcription"


def parse_client_event(data: str | bytes) -> tuple[Message, str | None]:
    """A client event and its ``event_id``; :class:`RealtimeError` for a binary message,
    bad JSON or an event without a string ``type``."""
    if isinstance(data, bytes):
        raise RealtimeError("Binary messages are not supported; send JSON client events.")
    try:
        message: Any = json.loads(data)
    except json.JSONDecodeError:
        raise RealtimeError(
            "The client event could not be parsed as JSON.", code="invalid_json"
        ) from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise invalid_type("type", "a string", None)
    client_id = message.get("event_id")
    return message, client_id if isinstance(client_id, str) else None


def decode_append(message: Message) -> bytes:
    """The audio of an ``input_audio_buffer.append``."""
    audio = message.get("audio")
    if not isinstance(audio, str):
        raise invalid_type("audio", "a string", audio)
    try:
        return base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        raise RealtimeError(
            "Invalid 'audio'. Expected base64-encoded audio data.",
            code="invalid_value",
            param="audio",
        ) from None


def recorded_form(message: Message) -> Message:
    """``message`` as kept in the session record (an append's audio elided)."""
    if message.get("type") != "input_audio_buffer.append":
        return message
    return {**message, "audio": f"<{len(str(message.get('audio')))} base64 chars>"}


def speech_event(happening: SpeechStarted | SpeechStopped) -> Message:
    if isinstance(happening, SpeechStarted):
        return event(
            "input_audio_buffer.speech_started",
            audio_start_ms=happening.audio_start_ms,
            item_id=happening.item_id,
        )
    return event(
        "input_audio_buffer.speech_stopped",
        audio_end_ms=happening.audio_end_ms,
        item_id=happening.item_id,
    )


def delta_event(happening: LiveDelta) -> Message:
    return event(
        f"{TRANSCRIPTION}.delta",
        item_id=happening.item_id,
        content_index=0,
        delta=happening.delta,
    )


def committed_events(commit: Commit) -> list[Message]:
    """``input_audio_buffer.committed`` and ``conversation.item.added``."""
    previous = commit.previous_item_id
    return [
        event("input_audio_buffer.committed", previous_item_id=previous, item_id=commit.item_id),
        event(
            "conversation.item.added",
            previous_item_id=previous,
            item=user_item(commit.item_id, None),
        ),
    ]


def transcribed_events(commit: Commit, model: str | None) -> list[Message]:
    """The deltas still to send, ``.completed`` and ``conversation.item.done``."""
    deltas = [delta_event(LiveDelta(commit.item_id, piece)) for piece in commit.deltas]
    seconds = (commit.audio_end_ms - commit.audio_start_ms) / 1000.0
    completed = event(
        f"{TRANSCRIPTION}.completed",
        item_id=commit.item_id,
        content_index=0,
        transcript=commit.transcript,
        usage=usage(model, seconds, commit.transcript),
    )
    done = event(
        "conversation.item.done",
        previous_item_id=commit.previous_item_id,
        item=user_item(commit.item_id, commit.transcript),
    )
    return [*deltas, completed, done]


def failed_event(item_id: str, message: str) -> Message:
    """``…transcription.failed`` for ``item_id``."""
    error = {"type": "server_error", "code": None, "message": message, "param": None}
    return event(f"{TRANSCRIPTION}.failed", item_id=item_id, content_index=0, error=error)
