"""Hostile or broken server input at the protocol boundary: numbers that are not finite or
out of range make a message malformed (skipped with one line), text is made valid Unicode
and bounded, and every MQTT payload is strict JSON in UTF-8 whatever the server sent.
Also the two flood bounds: partials per second and warnings per minute."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import pytest

from edgecap.app.status import StatusModel
from edgecap.engine.inbound import PartialThrottle, WarningBudget
from edgecap.mqtt.discovery import discovery_message
from edgecap.mqtt.hermes import text_captured
from edgecap.mqtt.partial import partial_payload
from edgecap.mqtt.stats import DaemonCounters, DeliveryCounters, stats_json, stats_payload
from edgecap.mqtt.topics import Topics
from edgecap.providers.assemblyai.limits import (
    MAX_LABEL_CHARS,
    MAX_TEXT_CHARS,
    MAX_TURN_ORDER,
    MAX_WORDS,
)
from edgecap.providers.assemblyai.messages import (
    Begin,
    ProtocolError,
    ServerError,
    ServerWarning,
    Termination,
    Turn,
    Unknown,
    Word,
    parse_server_message,
)
from edgecap.providers.assemblyai.turns import TurnAssembler
from edgecap.providers.turn import check_turn_audio
from edgecap.turns.timeline import AudioTimeline
from edgecap.turns.transcript import TranscriptTurn, build_transcript_turn
from tests.strict_json import NotStrictJson, strict_loads

pytestmark = pytest.mark.unit


def word(
    text: str = "hi",
    start: Any = 100,
    end: Any = 300,
    confidence: Any = 0.9,
    *,
    raw_text: str | None = None,
) -> str:
    """One word as JSON text, so non-JSON tokens (NaN) and escapes (`raw_text`, pasted as
    it is) can be written as a server would."""
    shown = raw_text if raw_text is not None else json.dumps(text)
    return (
        f'{{"text":{shown},"start":{start},"end":{end},'
        f'"confidence":{confidence},"word_is_final":true}}'
    )


def turn_text(
    words: list[str] | None = None,
    *,
    order: Any = 0,
    transcript: str = "hi",
    eot: bool = True,
    eot_confidence: Any = 0.7,
    raw_transcript: str | None = None,
) -> str:
    """A v3 Turn frame as the server sends it. `raw_transcript` is pasted into the JSON
    text as it is (for escapes such as a lone surrogate)."""
    shown = raw_transcript if raw_transcript is not None else json.dumps(transcript)
    return (
        f'{{"type":"Turn","turn_order":{order},"turn_is_formatted":true,'
        f'"end_of_turn":{"true" if eot else "false"},"transcript":{shown},'
        f'"end_of_turn_confidence":{eot_confidence},'
        f'"words":[{",".join(words if words is not None else [word()])}]}}'
    )


def parse_turn(text: str) -> Turn:
    message = parse_server_message(text)
    assert isinstance(message, Turn)
    return message


def publish_form(turn: Turn) -> bytes:
    timeline = AudioTimeline()
    timeline.append(60_000, 1_790_000_000.0)
    return build_transcript_turn(
        turn, device_id="pi", session_id="s", speech_model="m", timeline=timeline
    ).to_json()


# -- numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        (turn_text([word(start="NaN")]), "NaN is not a JSON number"),
        (turn_text([word(start="Infinity")]), "Infinity is not a JSON number"),
        (turn_text([word(start="1e20")]), "Turn.words[0].start should be within 0..86400000"),
        (turn_text([word(start="1e400")]), "got inf"),  # a valid JSON number, inf in Python
        (turn_text([word(start=-5)]), "Turn.words[0].start should be within"),
        (turn_text([word(end="1e20")]), "Turn.words[0].end should be within"),
        (turn_text([word(confidence="NaN")]), "NaN is not a JSON number"),
        (turn_text([word(confidence=1.5)]), "Turn.words[0].confidence should be within 0..1"),
        (turn_text(eot_confidence=-0.1), "Turn.end_of_turn_confidence should be within 0..1"),
        (turn_text(order=-1), "Turn.turn_order should be within 0..1000000"),
        (turn_text(order=10**20), "Turn.turn_order should be within"),
        (turn_text(order=MAX_TURN_ORDER + 1), "Turn.turn_order should be within"),
        (turn_text([word(start=500, end=400)]), "ends (400 ms) before it starts (500 ms)"),
        (
            turn_text([word("a", 500, 600), word("b", 100, 200)]),
            "Turn.words[1] starts at 100 ms, before the word ahead of it (500 ms)",
        ),
        ("[" * 100_000 + "]" * 100_000, "invalid JSON"),  # RecursionError inside json
        ('{"type":"Begin","id":"x","expires_at":1e400}', "Begin.expires_at"),
        ('{"type":"Begin","id":""}', "Begin.id should be 1..128 characters"),
        ('{"type":"Begin","id":"' + "x" * 200 + '"}', "Begin.id should be 1..128 characters"),
    ],
)
def test_unusable_numbers_make_the_message_malformed(frame: str, fragment: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_server_message(frame)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)
    assert len(str(info.value)) < 300


def test_sane_numbers_pass_unchanged() -> None:
    turn = parse_turn(turn_text([word("a", 0, 10, 0), word("b", 10, 86_400_000, 1)]))
    assert [(w.start_ms, w.end_ms, w.confidence) for w in turn.words] == [
        (0, 10, 0.0),
        (10, 86_400_000, 1.0),
    ]
    assert not turn.truncated
    assert turn.repairs == ()


def test_optional_numbers_that_are_unusable_count_as_absent() -> None:
    assert parse_server_message(
        '{"type":"Termination","audio_duration_seconds":1e400,"session_duration_seconds":-3}'
    ) == Termination(None, None)
    assert parse_server_message('{"type":"Error","error_code":1e30,"error":"boom"}') == ServerError(
        None, "boom"
    )
    assert parse_server_message('{"type":"Warning","warning_code":-1,"warning":"w"}') == (
        ServerWarning(None, "w")
    )
    turn = parse_turn(turn_text().replace('"words"', '"language_confidence":1e400,"words"'))
    assert turn.language_confidence is None


# -- text -------------------------------------------------------------------------------------


def test_lone_surrogates_are_replaced_and_the_turn_is_published_as_utf8() -> None:
    frame = turn_text(
        [word(raw_text='"a\\ud800"')],
        raw_transcript='"a\\ud800 b\\udfff"',
    )
    assert "\\ud800" in frame  # the escape as JSON text, as a server would send it
    turn = parse_turn(frame)
    assert turn.transcript == "a\ufffd b\ufffd"
    assert turn.words[0].text == "a\ufffd"
    assert turn.repairs == ("3 lone UTF-16 surrogate(s) (invalid Unicode) replaced by U+FFFD",)
    assert not turn.truncated  # nothing was cut: no `truncated` flag for a repair
    payload = strict_loads(publish_form(turn))
    assert payload["text"] == "a\ufffd b\ufffd"
    assert "truncated" not in payload


def test_a_surrogate_pair_is_a_character_not_a_repair() -> None:
    turn = parse_turn(turn_text(raw_transcript='"\\ud83d\\ude00"'))
    assert turn.transcript == "\U0001f600"
    assert turn.repairs == ()


def test_error_and_other_texts_are_made_safe_and_bounded() -> None:
    error = parse_server_message(
        '{"type":"Error","error_code":3005,"error":"x\\udc00' + "y" * 900 + '"}'
    )
    assert isinstance(error, ServerError)
    assert error.message.startswith("x\ufffd")
    assert len(error.message) == 500
    begin = parse_server_message(
        '{"type":"Begin","id":"ab\\ud800","expires_at":1700000000,'
        '"configuration":{"model":"m\\udc00"}}'
    )
    assert isinstance(begin, Begin)
    assert (begin.id, begin.expires_at, begin.model) == ("ab\ufffd", 1_700_000_000, "m\ufffd")
    unknown = parse_server_message('{"type":"Odd\\ud800"}')
    assert isinstance(unknown, Unknown)
    assert unknown.type == "Odd\ufffd"
    status = StatusModel("pi")
    status.set_state("reconnecting", detail=error.message)
    assert strict_loads(status.to_json())["detail"] == error.message


def test_a_megabyte_transcript_is_cut_and_flagged() -> None:
    turn = parse_turn(turn_text(transcript="ab " * 350_000))
    assert len(turn.transcript) == MAX_TEXT_CHARS
    assert turn.truncated
    assert turn.repairs == (f"Turn.transcript cut from 1050000 to {MAX_TEXT_CHARS} characters",)
    payload = strict_loads(publish_form(turn))
    assert payload["truncated"] is True
    assert len(payload["text"]) == MAX_TEXT_CHARS


def test_thousands_of_words_are_cut_to_the_limit() -> None:
    words = [word(f"w{i}", 10 * i, 10 * i + 5) for i in range(5000)]
    turn = parse_turn(turn_text(words))
    assert len(turn.words) == MAX_WORDS
    assert turn.words[-1].text == f"w{MAX_WORDS - 1}"
    assert turn.truncated
    assert turn.repairs == (f"word list cut from 5000 to {MAX_WORDS} words",)


def test_word_texts_together_are_bounded_too() -> None:
    words = [word("x" * 4000, 10 * i, 10 * i + 5) for i in range(5)]
    turn = parse_turn(turn_text(words))
    assert [len(w.text) for w in turn.words] == [4000, 4000]  # a third would pass 10,000
    assert turn.truncated


def test_worst_case_transcript_payload_stays_under_the_documented_size() -> None:
    """docs/mqtt.md promises subscribers a transcript payload under 200 KB."""
    per_word = MAX_TEXT_CHARS // MAX_WORDS
    label = f'"speaker":"{"W" * MAX_LABEL_CHARS}"'
    words = [
        word("\u20ac" * per_word, 10 * i, 10 * i + 5, 0.123456789)[:-1] + f",{label}}}"
        for i in range(MAX_WORDS)
    ]
    language = "abcdefgh" + "-abcdefgh" * 3  # 35 characters
    frame = turn_text(words, transcript="\u20ac" * MAX_TEXT_CHARS).replace(
        '"words"',
        f'"speaker_label":"{"T" * MAX_LABEL_CHARS}","language_code":"{language}",'
        '"language_confidence":0.123456789,"words"',
    )
    turn = parse_turn(frame)
    assert len(turn.words) == MAX_WORDS
    assert turn.speaker_label is not None
    assert turn.words[-1].speaker is not None
    assert turn.language_code is not None
    assert len(publish_form(turn)) < 200_000, len(publish_form(turn))


# -- serialisation ------------------------------------------------------------------------------


def the_turn(**changes: Any) -> TranscriptTurn:
    fields: dict[str, Any] = {
        "id": "s:1",
        "device_id": "pi",
        "session_id": "s",
        "turn_order": 1,
        "text": "hello",
        "confidence": 0.9,
        "end_of_turn_confidence": 0.5,
        "words": (),
        "language_code": None,
        "started_at": 10.0,
        "ended_at": 11.0,
        "speech_model": "m",
        "formatted": True,
    }
    fields.update(changes)
    return TranscriptTurn(**fields)


def test_strict_loads_rejects_what_python_json_would_take() -> None:
    for text in ('{"x":NaN}', '{"x":Infinity}', '{"x":-Infinity}'):
        json.loads(text)  # Python accepts it ...
        with pytest.raises(NotStrictJson):
            strict_loads(text)  # ... a subscriber in another language does not
    with pytest.raises(UnicodeDecodeError):
        strict_loads(b'{"x":"\xff"}')
    with pytest.raises(NotStrictJson):
        strict_loads('{"x":"\ud800"}')


def test_a_nan_that_slips_through_raises_instead_of_publishing_invalid_json() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        the_turn(confidence=math.nan).to_json()
    with pytest.raises(ValueError, match="not JSON compliant"):
        text_captured(the_turn(confidence=math.inf), now=12.0)
    with pytest.raises(ValueError, match="not JSON compliant"):
        stats_json({"billed_seconds": math.nan})


def test_every_payload_is_strict_json() -> None:
    turn = the_turn()
    partial = Turn(1, False, False, "hel", 0.1, (Word("hel", 0, 100, 0.5, False),))
    stats = stats_payload("pi", DaemonCounters(), DeliveryCounters(), now=5.0, started_at=1.0)
    payloads = {
        "transcript": turn.to_json(),
        "hermes": text_captured(turn, now=12.0),
        "partial": partial_payload("pi", "s", partial),
        "stats": stats_json(stats),
        "status": StatusModel("pi").to_json(),
        "discovery": discovery_message(Topics("edgecap", "pi", "homeassistant"))[1],
    }
    for name, payload in payloads.items():
        assert isinstance(strict_loads(payload), dict), name


# -- floods and bounds the session applies ---------------------------------------------------


def partial(order: int, text: str) -> Turn:
    return Turn(order, False, False, text, 0.1, (Word(text, 0, 100, 0.5, False),))


def test_a_flood_of_partials_hands_on_ten_per_second_and_always_the_newest() -> None:
    throttle = PartialThrottle()
    handed: list[tuple[float, str]] = []
    due: float | None = None
    for i in range(1000):  # 1000 partials in one second
        now = i / 1000
        if due is not None and now >= due:  # the session's timer
            released = throttle.release(now)
            assert released is not None
            handed.append((now, released.transcript))
        ready = throttle.offer(partial(0, f"p{i}"), now)
        if ready is not None:
            handed.append((now, ready.transcript))
        due = throttle.due
    assert due is not None
    last = throttle.release(due)  # the timer after the flood: the newest text
    assert last is not None
    handed.append((due, last.transcript))
    assert handed[-1][1] == "p999"
    assert 10 <= len(handed) <= 11
    times = [t for t, _ in handed]
    assert all(b - a >= 0.1 - 1e-9 for a, b in itertools.pairwise(times))
    assert throttle.superseded == 1000 - len(handed)


def test_the_last_partial_before_the_final_is_handed_on_first() -> None:
    throttle = PartialThrottle()
    assert throttle.offer(partial(3, "turn"), 0.0) is not None
    assert throttle.offer(partial(3, "turn on"), 0.01) is None  # waits for its slot
    waiting = throttle.final(3, 0.02)
    assert waiting is not None
    assert waiting.transcript == "turn on"
    assert throttle.pending is None
    assert throttle.offer(partial(4, "next"), 0.03) is None  # the slot was used
    assert throttle.release(0.11) is None  # not before its slot
    assert throttle.due == pytest.approx(0.12)
    assert throttle.final(5, 0.13) is None  # another turn's partial: superseded by the final


def test_warnings_are_budgeted_per_minute_and_the_held_ones_counted() -> None:
    budget = WarningBudget(burst=3, window=60.0)
    allowed = [budget.allow(t) for t in range(10)]
    assert allowed == [True] * 3 + [False] * 7
    assert budget.take_held() == 7
    assert budget.take_held() == 0
    assert budget.allow(60.0)  # a new minute


def test_word_times_beyond_the_audio_sent_are_rejected() -> None:
    turn = parse_turn(turn_text([word("a", 100, 5_000)]))
    check_turn_audio(turn, 4_500)  # within a second of slack
    with pytest.raises(ProtocolError, match="only 3000 ms of audio were sent"):
        check_turn_audio(turn, 3_000)


def test_a_turn_older_than_the_last_one_published_is_out_of_order() -> None:
    assembler = TurnAssembler(format_turns=True)
    far = parse_turn(turn_text(order=5000))
    assembler.check_order(far)
    assert assembler.feed(far) is far  # within range: published
    again = parse_turn(turn_text(order=5000))
    assembler.check_order(again)  # the same turn again: a quiet duplicate
    assert assembler.feed(again) is None
    with pytest.raises(ProtocolError, match="Turn 3 arrived after turn 5000 was final"):
        assembler.check_order(parse_turn(turn_text(order=3)))
