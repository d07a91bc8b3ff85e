"""Speaker labels, language and SpeakerRevision: parsed with the same care as the rest of a
server message (an unusable optional field is dropped and noted, never the whole turn), put
into the published `edgecap.turn/1` only when present (payloads without them are unchanged,
byte for byte), and revised turns republished with the same id and a higher `revision`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edgecap.providers.assemblyai import revision as revision_module
from edgecap.providers.assemblyai.limits import MAX_LABEL_CHARS
from edgecap.providers.assemblyai.messages import (
    ProtocolError,
    RevisedWord,
    SpeakerRevision,
    Turn,
    TurnRevision,
    parse_server_message,
)
from edgecap.turns.revisions import SessionTurns
from edgecap.turns.timeline import AudioTimeline
from edgecap.turns.transcript import TranscriptTurn, build_transcript_turn, revise_turn
from tests.strict_json import strict_loads

pytestmark = pytest.mark.unit


def word(text: str, start: int, end: int, **extra: Any) -> dict[str, Any]:
    return {
        "text": text,
        "start": start,
        "end": end,
        "confidence": 0.9,
        "word_is_final": True,
        **extra,
    }


def turn_frame(order: int = 2, *, words: list[dict[str, Any]] | None = None, **extra: Any) -> str:
    words = words if words is not None else [word("Hi", 100, 300), word("there.", 300, 600)]
    return json.dumps(
        {
            "type": "Turn",
            "turn_order": order,
            "turn_is_formatted": True,
            "end_of_turn": True,
            "transcript": " ".join(w["text"] for w in words),
            "end_of_turn_confidence": 0.7,
            "words": words,
            **extra,
        }
    )


def parse_turn(text: str) -> Turn:
    message = parse_server_message(text)
    assert isinstance(message, Turn)
    return message


def parse_revision(data: Any) -> SpeakerRevision:
    message = parse_server_message(json.dumps({"type": "SpeakerRevision", "revisions": data}))
    assert isinstance(message, SpeakerRevision)
    return message


def published(turn: Turn) -> TranscriptTurn:
    timeline = AudioTimeline()
    timeline.append(60_000, 1_790_000_000.0)
    return build_transcript_turn(
        turn, device_id="pi", session_id="s", speech_model="m", timeline=timeline
    )


# -- parsing: Turn ------------------------------------------------------------------------------


def test_turn_and_word_speaker_labels_are_parsed() -> None:
    turn = parse_turn(
        turn_frame(
            words=[word("Hi", 100, 300, speaker="A"), word("there.", 300, 600, speaker="B")],
            speaker_label="A",
            language_code="pt-BR",
            language_confidence=0.93,
        )
    )
    assert turn.speaker_label == "A"
    assert [w.speaker for w in turn.words] == ["A", "B"]
    assert (turn.language_code, turn.language_confidence) == ("pt-BR", 0.93)
    assert turn.repairs == ()


def test_without_speaker_labels_nothing_is_set() -> None:
    turn = parse_turn(turn_frame())
    assert turn.speaker_label is None
    assert [w.speaker for w in turn.words] == [None, None]
    assert (turn.language_code, turn.language_confidence) == (None, None)


@pytest.mark.parametrize("label", ["UNKNOWN", "PENDING", "Z", "AA", "spk_1", "A" * MAX_LABEL_CHARS])
def test_every_documented_kind_of_label_is_kept(label: str) -> None:
    assert parse_turn(turn_frame(speaker_label=label)).speaker_label == label


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "A" * (MAX_LABEL_CHARS + 1),
        "A\nB",
        "A B",
        "Ä",
        "\ud800",
        7,
        True,
        ["A"],
        {"label": "A"},
        "x" * 1_000_000,
    ],
)
def test_a_hostile_turn_label_is_dropped_and_the_turn_kept(bad: object) -> None:
    turn = parse_turn(turn_frame(speaker_label=bad))
    assert turn.speaker_label is None
    assert turn.transcript == "Hi there."  # the turn itself is used
    assert len(turn.words) == 2
    (note,) = turn.repairs
    assert note.startswith("Turn.speaker_label dropped: should be a speaker label")
    assert len(note) < 200  # a huge value is not copied into the log


def test_a_hostile_word_label_drops_that_label_only() -> None:
    turn = parse_turn(
        turn_frame(words=[word("Hi", 100, 300, speaker=3), word("there.", 300, 600, speaker="B")])
    )
    assert [w.speaker for w in turn.words] == [None, "B"]
    assert turn.repairs[0].startswith("Turn.words[0].speaker dropped")


def test_notes_about_many_bad_labels_are_bounded() -> None:
    words = [word(f"w{i}", 10 * i, 10 * i + 5, speaker="?") for i in range(500)]
    turn = parse_turn(turn_frame(words=words))
    assert all(w.speaker is None for w in turn.words)
    assert len(turn.repairs) == 4
    assert turn.repairs[-1] == "497 more repair(s)"


@pytest.mark.parametrize("code", ["en", "es", "pt-BR", "zh-Hant-TW", "en_us"])
def test_language_codes_are_kept(code: str) -> None:
    assert parse_turn(turn_frame(language_code=code)).language_code == code


@pytest.mark.parametrize(
    ("extra", "note"),
    [
        ({"language_code": 5}, "Turn.language_code dropped"),
        ({"language_code": "e"}, "Turn.language_code dropped"),
        ({"language_code": "en\n"}, "Turn.language_code dropped"),
        ({"language_code": "en-" + "x" * 40}, "Turn.language_code dropped"),
        ({"language_confidence": 1.5}, "Turn.language_confidence dropped"),
        ({"language_confidence": "0.9"}, "Turn.language_confidence dropped"),
        ({"language_confidence": True}, "Turn.language_confidence dropped"),
    ],
)
def test_hostile_language_fields_are_dropped_and_noted(extra: dict[str, Any], note: str) -> None:
    turn = parse_turn(turn_frame(**extra))
    assert (turn.language_code, turn.language_confidence) == (None, None)
    assert turn.repairs[0].startswith(note)


def test_language_confidence_that_is_not_finite_is_dropped() -> None:
    frame = turn_frame().replace('"words"', '"language_confidence":1e400,"words"')
    turn = parse_turn(frame)
    assert turn.language_confidence is None
    assert turn.repairs[0].startswith("Turn.language_confidence dropped")


# -- parsing: SpeakerRevision -------------------------------------------------------------------


def test_speaker_revision_in_its_documented_shape() -> None:
    message = parse_revision(
        [
            {
                "turn_order": 3,
                "speaker_label": "B",
                "words": [word("hello", 1000, 1200, speaker="B"), word("world", 1210, 1400)],
            },
            {"turn_order": 7, "speaker_label": "A", "words": []},
            {"turn_order": 8, "words": [word("ok", 5000, 5100, speaker="C")]},
        ]
    )
    assert message == SpeakerRevision(
        (
            TurnRevision(3, "B", (RevisedWord(1000, 1200, "B"), RevisedWord(1210, 1400, None))),
            TurnRevision(7, "A", ()),
            TurnRevision(8, None, (RevisedWord(5000, 5100, "C"),)),
        )
    )


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        ('{"type":"SpeakerRevision"}', "SpeakerRevision message without 'revisions'"),
        ('{"type":"SpeakerRevision","revisions":{}}', "SpeakerRevision.revisions should be list"),
        ('{"type":"SpeakerRevision","revisions":"A"}', "SpeakerRevision.revisions should be list"),
    ],
)
def test_a_speaker_revision_without_a_list_of_revisions_is_malformed(
    frame: str, fragment: str
) -> None:
    with pytest.raises(ProtocolError, match=fragment):
        parse_server_message(frame)


def test_unusable_revision_entries_are_skipped_and_the_rest_used() -> None:
    message = parse_revision(
        [
            "A",
            {"speaker_label": "A"},
            {"turn_order": "3", "speaker_label": "A"},
            {"turn_order": -1, "speaker_label": "A"},
            {"turn_order": 10**20, "speaker_label": "A"},
            {"turn_order": True, "speaker_label": "A"},
            {"turn_order": 4, "speaker_label": "B"},
        ]
    )
    assert message.revisions == (TurnRevision(4, "B"),)
    assert message.repairs[0] == (
        "SpeakerRevision.revisions[0] skipped: should be an object, got 'A'"
    )
    assert message.repairs[-1] == "3 more repair(s)"


def test_unusable_parts_of_an_entry_are_dropped() -> None:
    message = parse_revision(
        [
            {"turn_order": 1, "speaker_label": "A\u0000", "words": "many"},
            {
                "turn_order": 2,
                "speaker_label": "B",
                "words": [
                    word("a", 100, 50, speaker="B"),  # ends before it starts
                    {"start": 1e20, "end": 10, "speaker": "B"},  # out of range
                    word("b", 200, 300, speaker="\ud800"),
                    word("c", 300, 400, speaker="B"),
                    7,
                ],
            },
        ]
    )
    assert message.revisions == (
        TurnRevision(1, None),
        TurnRevision(2, "B", (RevisedWord(200, 300, None), RevisedWord(300, 400, "B"))),
    )
    assert message.repairs[:2] == (
        "SpeakerRevision.revisions[0].speaker_label dropped: should be a speaker label "
        "(1..16 letters, digits, '_' or '-'), got 'A\\x00'",
        "SpeakerRevision.revisions[0].words dropped: should be a list, got 'many'",
    )


def test_a_huge_speaker_revision_is_cut_to_the_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(revision_module, "MAX_REVISIONS", 3)
    monkeypatch.setattr(revision_module, "MAX_REVISION_WORDS", 4)
    entries = [
        {"turn_order": n, "words": [word("w", 10 * i, 10 * i + 5, speaker="A") for i in range(3)]}
        for n in range(10)
    ]
    message = parse_revision(entries)
    assert [r.turn_order for r in message.revisions] == [0, 1, 2]
    assert [len(r.words) for r in message.revisions] == [3, 1, 0]  # 4 words in all
    assert "revisions cut from 10 to 3 entries" in message.repairs


# -- the published turn -------------------------------------------------------------------------

WITHOUT_LABELS = (
    b'{"schema":"edgecap.turn/1","id":"s:2","device_id":"pi","session_id":"s","turn_order":2,'
    b'"text":"Hi there.","confidence":0.85,"end_of_turn_confidence":0.7,"words":['
    b'{"text":"Hi","start_ms":100,"end_ms":300,"confidence":0.9},'
    b'{"text":"there.","start_ms":300,"end_ms":600,"confidence":0.8}],"language_code":null,'
    b'"started_at":"2026-09-21T14:13:20.100Z","ended_at":"2026-09-21T14:13:20.600Z",'
    b'"speech_model":"m","formatted":true}'
)


def test_a_payload_without_labels_is_byte_for_byte_what_it_was() -> None:
    """The bytes edgecap published before speaker labels existed (same turn, same code path)."""
    words = [word("Hi", 100, 300), word("there.", 300, 600, confidence=0.8)]
    assert published(parse_turn(turn_frame(words=words))).to_json() == WITHOUT_LABELS


def test_a_payload_with_labels_and_language() -> None:
    turn = parse_turn(
        turn_frame(
            words=[word("Hi", 100, 300, speaker="A"), word("there.", 300, 600)],
            speaker_label="A",
            language_code="en",
            language_confidence=0.97,
        )
    )
    payload = strict_loads(published(turn).to_json())
    assert payload["speaker"] == "A"
    assert payload["words"][0]["speaker"] == "A"
    assert "speaker" not in payload["words"][1]  # the server gave this word none
    assert (payload["language_code"], payload["language_confidence"]) == ("en", 0.97)
    assert "revision" not in payload  # the first publication: revision 0, left out


# -- revisions ----------------------------------------------------------------------------------


def labelled(order: int = 2, label: str | None = "A") -> TranscriptTurn:
    speaker = {} if label is None else {"speaker": label}
    extra = {} if label is None else {"speaker_label": label}
    return published(
        parse_turn(
            turn_frame(
                order,
                words=[
                    word("Hi", 100, 300, **speaker),
                    word("there", 300, 600, **speaker),
                    word("you.", 600, 800, **speaker),
                ],
                **extra,
            )
        )
    )


def test_revise_turn_relabels_the_turn_and_its_words_by_time() -> None:
    turn = labelled()
    revised = revise_turn(turn, "B", [RevisedWord(300, 600, "B"), RevisedWord(600, 800, "C")])
    assert revised is not None
    assert (revised.id, revised.revision, revised.speaker) == (turn.id, 1, "B")
    assert [w["speaker"] for w in revised.words] == ["A", "B", "C"]
    assert [w["text"] for w in revised.words] == ["Hi", "there", "you."]
    payload = strict_loads(revised.to_json())
    assert (payload["id"], payload["revision"], payload["speaker"]) == ("s:2", 1, "B")
    assert payload["text"] == "Hi there you."
    assert [w["speaker"] for w in strict_loads(turn.to_json())["words"]] == ["A", "A", "A"]


def test_revise_turn_returns_none_when_nothing_changes() -> None:
    turn = labelled()
    assert revise_turn(turn, "A") is None
    assert revise_turn(turn, None, [RevisedWord(100, 300, "A")]) is None
    assert revise_turn(turn, None, [RevisedWord(100, 300, None)]) is None  # no label given
    assert revise_turn(turn, None, [RevisedWord(999, 1000, "B")]) is None  # no such word


def test_revise_turn_without_a_turn_label_keeps_it_and_counts_up() -> None:
    once = revise_turn(labelled(), None, [RevisedWord(100, 300, "B")])
    assert once is not None
    assert (once.speaker, once.revision) == ("A", 1)
    twice = revise_turn(once, "B")
    assert twice is not None
    assert (twice.speaker, twice.revision) == ("B", 2)


def test_session_turns_turn_a_revision_into_the_turns_to_publish_again() -> None:
    session = SessionTurns()
    for order in (0, 1, 2):
        session.published(labelled(order))
    session.published(labelled(3, label=None))  # speaker labels off: not kept
    assert len(session) == 3
    message = SpeakerRevision(
        (
            TurnRevision(2, "B"),
            TurnRevision(0, "A"),  # unchanged
            TurnRevision(1, "C", (RevisedWord(100, 300, "B"),)),
            TurnRevision(3, "B"),  # not kept
            TurnRevision(9, "B"),  # never published
        )
    )
    again = session.apply(message)
    assert [(t.id, t.revision, t.speaker) for t in again] == [("s:2", 1, "B"), ("s:1", 1, "C")]
    assert session.unmatched == 2
    assert session.apply(message) == []  # already applied: nothing changes
    later = session.apply(SpeakerRevision((TurnRevision(2, "D"),)))
    assert [(t.id, t.revision, t.speaker) for t in later] == [("s:2", 2, "D")]
