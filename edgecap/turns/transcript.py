"""The published transcript turn (`edgecap.turn/1`), built from a final Turn (no I/O).

The Turn was checked when it was parsed (finite numbers in range, valid and bounded text:
`edgecap.providers.assemblyai.limits`), and the JSON is written with `allow_nan=False`, so
the payload is always strict JSON in UTF-8.

With speaker labels a turn may be published again: a `SpeakerRevision` from the server
changes the labels of a turn already published, and `revise_turn` gives the same turn (same
`id`) with the new labels and `revision` one higher. Fields that only some sessions have
(`speaker`, `language_confidence`, `revision` above 0, ...) are left out when absent, so a
payload without them is the same, byte for byte, as before they existed.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from edgecap.providers.turn import RevisedWord, Turn
from edgecap.turns.timeline import AudioTimeline

SCHEMA = "edgecap.turn/1"


def iso_utc(ts: float) -> str:
    """ISO-8601 UTC with millisecond precision and a Z suffix."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def turn_id(session_id: str, turn_order: int) -> str:
    """Stable id: the same turn always gets the same id, so subscribers can de-duplicate."""
    return f"{session_id}:{turn_order}"


@dataclass(frozen=True, slots=True)
class TranscriptTurn:
    id: str
    device_id: str
    session_id: str
    turn_order: int
    text: str
    confidence: float | None
    end_of_turn_confidence: float
    words: tuple[dict[str, Any], ...]
    language_code: str | None
    started_at: float | None
    ended_at: float | None
    speech_model: str
    formatted: bool
    gap_before_ms: int | None = None
    """Captured audio dropped before this turn (an outage outlasted the replay buffer)."""
    truncated: bool = False
    """The server's text or word list exceeded the limits and was cut (protocol/limits.py)."""
    speaker: str | None = None
    """The turn's speaker label with `speaker_labels`; None without (left out of the JSON)."""
    language_confidence: float | None = None
    revision: int = 0
    """0 when first published; each speaker revision publishes the turn again, one higher."""
    provider: str | None = None
    """The speech provider that transcribed it ("assemblyai", "openai")."""

    def payload(self) -> dict[str, Any]:
        optional: dict[str, Any] = {}
        if self.speaker is not None:
            optional["speaker"] = self.speaker
        if self.language_confidence is not None:
            optional["language_confidence"] = self.language_confidence
        if self.revision:
            optional["revision"] = self.revision
        if self.provider is not None:
            optional["provider"] = self.provider
        if self.gap_before_ms is not None:
            optional["gap_before_ms"] = self.gap_before_ms
        if self.truncated:
            optional["truncated"] = True
        return {
            "schema": SCHEMA,
            "id": self.id,
            "device_id": self.device_id,
            "session_id": self.session_id,
            "turn_order": self.turn_order,
            "text": self.text,
            "confidence": self.confidence,
            "end_of_turn_confidence": self.end_of_turn_confidence,
            "words": list(self.words),
            "language_code": self.language_code,
            "started_at": None if self.started_at is None else iso_utc(self.started_at),
            "ended_at": None if self.ended_at is None else iso_utc(self.ended_at),
            "speech_model": self.speech_model,
            "formatted": self.formatted,
            **optional,
        }

    def to_json(self) -> bytes:
        return json.dumps(
            self.payload(), ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode()


def build_transcript_turn(
    turn: Turn,
    *,
    device_id: str,
    session_id: str,
    speech_model: str,
    timeline: AudioTimeline,
    provider: str | None = None,
) -> TranscriptTurn:
    words = tuple(
        {"text": w.text, "start_ms": w.start_ms, "end_ms": w.end_ms, "confidence": w.confidence}
        | ({} if w.speaker is None else {"speaker": w.speaker})
        for w in turn.words
    )
    confidence = (
        round(sum(w.confidence for w in turn.words) / len(turn.words), 6) if turn.words else None
    )
    start_ms = turn.words[0].start_ms if turn.words else turn.audio_start_ms
    end_ms = turn.words[-1].end_ms if turn.words else turn.audio_end_ms
    started = timeline.wall_at(start_ms) if start_ms is not None else None
    ended = timeline.wall_at(end_ms) if end_ms is not None else None
    return TranscriptTurn(
        provider=provider,
        id=turn_id(session_id, turn.turn_order),
        device_id=device_id,
        session_id=session_id,
        turn_order=turn.turn_order,
        text=turn.transcript,
        confidence=confidence,
        end_of_turn_confidence=turn.end_of_turn_confidence,
        words=words,
        language_code=turn.language_code,
        started_at=started,
        ended_at=ended,
        speech_model=speech_model,
        formatted=turn.turn_is_formatted,
        truncated=turn.truncated,
        speaker=turn.speaker_label,
        language_confidence=turn.language_confidence,
    )


def revise_turn(
    turn: TranscriptTurn, speaker: str | None, words: Sequence[RevisedWord] = ()
) -> TranscriptTurn | None:
    """`turn` with the revised labels and `revision` one higher, or None when they change
    nothing. `speaker` None keeps the turn's label; each revised word relabels the word of
    the turn with the same start and end (in order, when several share them); words of the
    turn that none matches keep their label."""
    new_words = _relabel(turn.words, words)
    new_speaker = turn.speaker if speaker is None else speaker
    if new_speaker == turn.speaker and new_words == turn.words:
        return None
    return replace(turn, speaker=new_speaker, words=new_words, revision=turn.revision + 1)


def _relabel(
    words: tuple[dict[str, Any], ...], revised: Sequence[RevisedWord]
) -> tuple[dict[str, Any], ...]:
    if not revised:
        return words
    speakers: defaultdict[tuple[int, int], deque[str | None]] = defaultdict(deque)
    for r in revised:
        speakers[(r.start_ms, r.end_ms)].append(r.speaker)
    relabelled = []
    for word in words:
        waiting = speakers.get((word["start_ms"], word["end_ms"]))
        label = waiting.popleft() if waiting else None
        if label is None or label == word.get("speaker"):
            relabelled.append(word)
        else:
            relabelled.append({**word, "speaker": label})
    return tuple(relabelled)
