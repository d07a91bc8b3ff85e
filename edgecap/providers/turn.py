"""What every provider's turns look like to the engine (no I/O).

A provider's protocol object parses its server messages into these: a `Turn` (partial or
final) with its `Word`s, and a `SpeakerRevision` of earlier turns' speakers. The fields
follow AssemblyAI v3, the first provider; another provider fills what it has (a final turn
is `end_of_turn` and `turn_is_formatted`, its confidence 1.0 when it gives none, word times
in ms of the session's audio) and leaves the rest at the defaults. A message that cannot be
used raises `ProtocolError` with a one-line description: the session skips it and goes on.
"""

from __future__ import annotations

from dataclasses import dataclass

AUDIO_SLACK_MS = 1000
"""Word times may exceed the audio sent by this much (rounding); beyond it they are bogus."""


class ProtocolError(ValueError):
    """A server message that does not follow the provider's protocol."""


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    start_ms: int
    end_ms: int
    confidence: float
    is_final: bool
    speaker: str | None = None
    """With `speaker_labels`: who said it ("A", "B", ...; "UNKNOWN", "PENDING")."""


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
    speaker_label: str | None = None
    """With `speaker_labels`: the turn's speaker ("A", "B", ...; "UNKNOWN" when the turn is
    too short to tell, "PENDING" when not decided yet); None otherwise."""
    audio_start_ms: int | None = None
    audio_end_ms: int | None = None
    """Where the turn lies in the session's audio when the provider gives no word times
    (OpenAI: the committed item's span); with words, their times say it."""
    truncated: bool = False
    """The transcript or the word list was cut to the limits (`limits.py`)."""
    repairs: tuple[str, ...] = ()
    """What parsing changed (cuts, replaced characters), for the log; empty when nothing."""


@dataclass(frozen=True, slots=True)
class RevisedWord:
    """A word of a revised turn: which one (its times in session audio) and its speaker."""

    start_ms: int
    end_ms: int
    speaker: str | None


@dataclass(frozen=True, slots=True)
class TurnRevision:
    turn_order: int
    speaker_label: str | None
    """The turn's new label; None when the entry gave none (the turn keeps its label)."""
    words: tuple[RevisedWord, ...] = ()


@dataclass(frozen=True, slots=True)
class SpeakerRevision:
    revisions: tuple[TurnRevision, ...]
    repairs: tuple[str, ...] = ()
    """What parsing dropped (entries, labels, words), for the log; empty when nothing."""


def check_turn_audio(turn: Turn, sent_ms: int) -> None:
    """`ProtocolError` when the turn's words end after the audio sent in the session: the
    server cannot have transcribed audio it never received."""
    end_ms = max((w.end_ms for w in turn.words), default=0)
    if end_ms > sent_ms + AUDIO_SLACK_MS:
        raise ProtocolError(
            f"Turn {turn.turn_order} has words up to {end_ms} ms, but only {sent_ms} ms of "
            "audio were sent in this session"
        )
