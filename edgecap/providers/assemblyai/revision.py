"""The `SpeakerRevision` message: speaker labels of earlier turns, revised (no I/O).

With `speaker_labels=true` the server labels each turn as it goes ("A", "B", ...) and, once
it has heard more of the conversation (at the latest just before `Termination`), sends a
`SpeakerRevision` with the turns whose labels changed:

    {"type": "SpeakerRevision",
     "revisions": [{"turn_order": 3, "speaker_label": "B",
                    "words": [{"text": "hello", "start": 1000, "end": 1200,
                               "confidence": 0.9, "word_is_final": true, "speaker": "B"}]}]}

Each entry names an earlier turn by its `turn_order` and carries the turn's new
`speaker_label` and its words with their new `speaker`; text and word times are those of
the original turn. Turns whose labels did not change are left out.

Sources: AssemblyAI's announcement (https://www.assemblyai.com/blog/introducing-speakerrevision:
one message at the end of the stream, a `revisions` array, one entry per changed turn,
`turn_order` maps back to the turn) and its Python SDK (AssemblyAI/assemblyai-python-sdk,
`assemblyai/streaming/v3/models.py`, `SpeakerRevisionItem(turn_order, speaker_label:
Optional[str], words: List[Word])`, "emitted once per offline-recluster resolve"). The
field-level reference (https://www.assemblyai.com/docs/streaming/diarization-and-multichannel,
the streaming API spec) could not be read when this was written. So, defensively: more than
one such message per session is accepted, an entry without `speaker_label` revises only its
words, and of a word only what is needed to find it and relabel it (its times and `speaker`)
is kept.

Hostile input: `revisions` that is not a list makes the message malformed; an entry that is
unusable (no valid `turn_order`) is skipped, a label that is not one is dropped, a word
without valid times is dropped, each with a note in `repairs`; counts are bounded
(`limits.py`).
"""

from __future__ import annotations

from typing import Any

from edgecap.providers.assemblyai.fields import NUMBER, Repairs, field
from edgecap.providers.assemblyai.limits import (
    MAX_AUDIO_MS,
    MAX_REVISION_WORDS,
    MAX_REVISIONS,
    MAX_TURN_ORDER,
    number,
    show,
)
from edgecap.providers.turn import ProtocolError, RevisedWord, SpeakerRevision, TurnRevision


def parse_speaker_revision(data: dict[str, Any]) -> SpeakerRevision:
    raw = field(data, "revisions", list, "SpeakerRevision")
    notes = Repairs()
    revisions: list[TurnRevision] = []
    words_left = MAX_REVISION_WORDS
    for index, entry in enumerate(raw[:MAX_REVISIONS]):
        what = f"SpeakerRevision.revisions[{index}]"
        try:
            revision = _parse_entry(entry, what, notes, words_left)
        except ProtocolError as exc:
            notes.note(f"{what} skipped: {exc}")
            continue
        words_left -= len(revision.words)
        revisions.append(revision)
    if len(raw) > MAX_REVISIONS:
        notes.note(f"revisions cut from {len(raw)} to {MAX_REVISIONS} entries")
    return SpeakerRevision(tuple(revisions), notes.notes())


def _parse_entry(entry: Any, what: str, notes: Repairs, words_left: int) -> TurnRevision:
    if not isinstance(entry, dict):
        raise ProtocolError(f"should be an object, got {show(entry)}")
    order = number(field(entry, "turn_order", int, what), f"{what}.turn_order", 0, MAX_TURN_ORDER)
    label = notes.label(entry, "speaker_label", what)
    raw_words = entry.get("words")
    if raw_words is None:
        return TurnRevision(int(order), label)
    if not isinstance(raw_words, list):
        notes.note(f"{what}.words dropped: should be a list, got {show(raw_words)}")
        return TurnRevision(int(order), label)
    words: list[RevisedWord] = []
    for index, raw in enumerate(raw_words[:words_left]):
        word = _parse_word(raw, f"{what}.words[{index}]", notes)
        if word is not None:
            words.append(word)
    if len(raw_words) > words_left:
        notes.note(f"{what}.words cut from {len(raw_words)} to {words_left} words")
    return TurnRevision(int(order), label, tuple(words))


def _parse_word(raw: Any, what: str, notes: Repairs) -> RevisedWord | None:
    try:
        if not isinstance(raw, dict):
            raise ProtocolError(f"should be an object, got {show(raw)}")
        start = int(number(field(raw, "start", NUMBER, what), f"{what}.start", 0, MAX_AUDIO_MS))
        end = int(number(field(raw, "end", NUMBER, what), f"{what}.end", 0, MAX_AUDIO_MS))
        if end < start:
            raise ProtocolError(f"ends ({end} ms) before it starts ({start} ms)")
    except ProtocolError as exc:
        notes.note(f"{what} dropped: {exc}")
        return None
    return RevisedWord(start, end, notes.label(raw, "speaker", what))
