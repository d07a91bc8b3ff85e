"""Speaker labels, detected language and ``SpeakerRevision`` for simulated turns (sans-I/O).

With ``speaker_labels=true`` every ``Turn`` carries ``speaker_label`` and each final word
(``word_is_final: true``) a ``speaker``; the labels come from a script (``"A", "B"``,
cycled by ``turn_order`` by default; a script may hold ``"PENDING"``), capped by
``max_speakers``: labels beyond the first ``max_speakers`` distinct ones are merged into
the first. Sources: https://www.assemblyai.com/docs/streaming/diarization-and-multichannel
("each final word in the words array also carries a speaker field"), and
skills/assemblyai/references/streaming.md in AssemblyAI/assemblyai-skill.

With ``language_detection=true`` each final turn (``end_of_turn: true``) carries
``language_code`` and ``language_confidence`` (the same skill reference: "final Turn
messages include the detected language_code and language_confidence").

``SpeakerRevision``, as documented (assemblyai-skill streaming.md "Revised speaker labels";
https://www.assemblyai.com/docs/streaming/message-sequence: "the server may emit a
SpeakerRevision message immediately before Termination"; Python SDK
``assemblyai/streaming/v3/models.py`` ``SpeakerRevisionEvent``, 2026-08)::

    {"type": "SpeakerRevision",
     "revisions": [{"turn_order": 3, "speaker_label": "B",
                    "words": [{"text": "Hello", "start": 1200, "end": 1450, "speaker": "B"},
                              ...]}]}

One entry per earlier turn whose label changed (unchanged turns are left out; no message
at all when nothing changed); ``speaker_label`` is a string or null; text and word
timings never change, only speakers. It is sent after the client's ``Terminate``, after the
flushed turns and just before ``Termination``. The documented example shows words with
``text``, ``start``, ``end`` and ``speaker``; the Python SDK parses them as full ``Word``
objects (``confidence`` and ``word_is_final`` required), so the simulator sends the full
word of the turn's last final with the revised ``speaker``, which satisfies both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Message = dict[str, Any]
DEFAULT_SPEAKERS = ("A", "B")
DEFAULT_REVISED_SPEAKERS = ("B", "A")


def cycled(script: Sequence[str], order: int) -> str:
    """The label of turn ``order`` in a script cycled by turn order."""
    return script[order % len(script)] if script else "A"


def capped(label: str, script: Sequence[str], max_speakers: int | None) -> str:
    """``label``, or the script's first label when it lies beyond ``max_speakers``."""
    if max_speakers is None or label in ("PENDING", "UNKNOWN"):
        return label
    distinct = [s for s in dict.fromkeys(script) if s not in ("PENDING", "UNKNOWN")]
    allowed = distinct[:max_speakers]
    return label if label in allowed or not allowed else allowed[0]


@dataclass(frozen=True)
class TurnExtras:
    """What a session's turns carry beyond the transcript."""

    speaker_labels: bool = False
    speakers: tuple[str, ...] = DEFAULT_SPEAKERS
    max_speakers: int | None = None
    language: str | None = None  # None: language_detection is off
    language_confidence: float = 0.93


class TurnAnnotator:
    """Adds speaker and language fields to a session's ``Turn`` messages and remembers the
    finals, so that the ``SpeakerRevision`` at the end can revise them."""

    def __init__(self, extras: TurnExtras) -> None:
        self.extras = extras
        self._finals: dict[int, Message] = {}  # turn_order -> last final sent

    def label(self, order: int) -> str:
        """The live speaker label of turn ``order``."""
        script = self.extras.speakers
        return capped(cycled(script, order), script, self.extras.max_speakers)

    def annotate(self, message: Message) -> Message:
        """``message`` (a ``Turn``) with the session's extra fields; other messages as is."""
        if message.get("type") != "Turn":
            return message
        extras = self.extras
        out = dict(message)
        if extras.speaker_labels:
            label = self.label(int(out["turn_order"]))
            out["speaker_label"] = label
            out["words"] = [
                {**word, "speaker": label} if word.get("word_is_final") else dict(word)
                for word in out["words"]
            ]
        if extras.language is not None and out["end_of_turn"]:
            out["language_code"] = extras.language
            out["language_confidence"] = extras.language_confidence
        if out["end_of_turn"]:
            self._finals[int(out["turn_order"])] = out
        return out

    def revision(self, revised: Sequence[str] | None) -> Message | None:
        """The ``SpeakerRevision`` for the finals sent so far, relabelled by the script
        ``revised`` (cycled by turn order); ``None`` when diarization is off, ``revised``
        is ``None`` or no label changes."""
        if not self.extras.speaker_labels or revised is None:
            return None
        entries: list[Message] = []
        for order in sorted(self._finals):
            final = self._finals[order]
            label = capped(cycled(revised, order), revised, self.extras.max_speakers)
            if label == final.get("speaker_label"):
                continue
            words = [{**word, "speaker": label} for word in final["words"]]
            entries.append({"turn_order": order, "speaker_label": label, "words": words})
        if not entries:
            return None
        return {"type": "SpeakerRevision", "revisions": entries}
