"""An OpenAI transcription session's events read into neutral ones: the session begins at
session.updated, deltas are partials, completions are finals released in commit order
(bounded), failures and error events are warnings or failures by class, manual commits
keep each item's audio span, and hostile messages are skipped, never a crash (no I/O)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from edgecap.providers.assemblyai.limits import MAX_ID_CHARS, MAX_TEXT_CHARS
from edgecap.providers.base import (
    MessageSkipped,
    ProviderEvent,
    ServerFailed,
    ServerWarned,
    SessionOpened,
    TurnUpdate,
)
from edgecap.providers.failures import ErrorClass
from edgecap.providers.openai.errors import classify_close
from edgecap.providers.openai.items import MAX_ITEMS, ItemLedger
from edgecap.providers.openai.params import OpenAIParams, ServerVad
from edgecap.providers.openai.protocol import OpenAIRealtimeProvider, OpenAIStream
from edgecap.providers.turn import Turn

pytestmark = pytest.mark.unit

SENT = 10_000  # ms of audio sent: after every time used below, within 30 s of them
T = "conversation.item.input_audio_transcription."


def ev(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, "event_id": "event_1", **fields})


def vad_stream() -> OpenAIStream:
    params = OpenAIParams(model="gpt-4o-transcribe", turn_detection=ServerVad())
    return OpenAIRealtimeProvider(params).open_stream()


def manual_stream() -> OpenAIStream:
    return OpenAIRealtimeProvider().open_stream()


def feed(stream: OpenAIStream, *messages: str, sent_ms: int = SENT) -> list[ProviderEvent]:
    out: list[ProviderEvent] = []
    for message in messages:
        out += stream.receive(message, sent_ms=sent_ms)
    return out


def finals(events: list[ProviderEvent]) -> list[Turn]:
    return [e.turn for e in events if isinstance(e, TurnUpdate) and e.final]


def texts(events: list[ProviderEvent]) -> list[str]:
    return [t.transcript for t in finals(events)]


def committed(item: str, previous: str | None = None) -> str:
    return ev("input_audio_buffer.committed", item_id=item, previous_item_id=previous)


def completed(item: str, text: str, **extra: Any) -> str:
    return ev(T + "completed", item_id=item, content_index=0, transcript=text, **extra)


def delta(item: str, text: str) -> str:
    return ev(T + "delta", item_id=item, content_index=0, delta=text)


def speech(item: str, start: int, end: int) -> tuple[str, str]:
    return (
        ev("input_audio_buffer.speech_started", item_id=item, audio_start_ms=start),
        ev("input_audio_buffer.speech_stopped", item_id=item, audio_end_ms=end),
    )


def error(kind: str | None, code: str | None, message: str, **extra: Any) -> str:
    return ev("error", error={"type": kind, "code": code, "message": message, **extra})


def session(kind: str, **fields: Any) -> str:
    return ev(kind, session={"type": "transcription", **fields})


# -- the session begins ----------------------------------------------------------------


def test_the_session_begins_at_session_updated_with_the_created_id_and_echoed_model() -> None:
    stream = vad_stream()
    assert stream.receive(session("session.created", id="sess_1"), sent_ms=0) == []
    updated = session(
        "session.updated",
        expires_at=1_900_000_000,
        audio={"input": {"transcription": {"model": "gpt-4o-transcribe"}}},
    )
    assert stream.receive(updated, sent_ms=0) == [
        SessionOpened("sess_1", 1_900_000_000, "gpt-4o-transcribe")
    ]
    assert stream.receive(updated, sent_ms=0) == []  # a later update's answer begins nothing


def test_session_updated_without_any_id_is_skipped() -> None:
    [skipped] = vad_stream().receive(session("session.updated"), sent_ms=0)
    assert isinstance(skipped, MessageSkipped)
    assert "session id" in str(skipped.error)


def test_a_conversation_session_fails_at_once_as_a_config_problem() -> None:
    """A model in the URL makes a conversation session (session.type "realtime")."""
    stream = vad_stream()
    created = ev("session.created", session={"type": "realtime", "id": "sess_2"})
    [failed] = stream.receive(created, sent_ms=0)
    assert isinstance(failed, ServerFailed)
    end = classify_close(1000, failed.message)
    assert end.error_class is ErrorClass.CONFIG
    assert "'model' in the URL" in end.hint


def test_the_beta_protocol_fails_as_a_config_problem() -> None:
    [failed] = vad_stream().receive(ev("transcription_session.created", session={}), sent_ms=0)
    assert isinstance(failed, ServerFailed)
    assert classify_close(None, failed.message).error_class is ErrorClass.CONFIG
    assert "beta" in classify_close(None, failed.message).hint


# -- turns -----------------------------------------------------------------------------


def test_server_vad_item_partials_then_one_final_with_its_audio_span() -> None:
    stream = vad_stream()
    start, stop = speech("item_A", 1000, 2500)
    assert feed(stream, start) == []
    assert stream.turn_open
    partials = feed(stream, delta("item_A", "hel"), delta("item_A", "lo"))
    assert [(e.turn.transcript, e.final) for e in partials if isinstance(e, TurnUpdate)] == [
        ("hel", False),
        ("hello", False),
    ]
    assert feed(stream, stop, committed("item_A")) == []
    assert stream.turn_open  # committed, not yet transcribed
    [final] = finals(feed(stream, completed("item_A", "Hello.")))
    assert final == Turn(
        turn_order=0,
        end_of_turn=True,
        turn_is_formatted=True,
        transcript="Hello.",
        end_of_turn_confidence=1.0,
        words=(),
        audio_start_ms=1000,
        audio_end_ms=2500,
    )
    assert not stream.turn_open
    assert feed(stream, completed("item_A", "Hello.")) == []  # a repeat publishes nothing
    assert feed(stream, delta("item_A", " again")) == []  # nor a late delta


def test_a_later_item_completed_first_waits_for_the_earlier_one() -> None:
    stream = vad_stream()
    feed(stream, committed("A"), committed("B", "A"))
    assert feed(stream, completed("B", "second")) == []
    released = feed(stream, completed("A", "first"))
    assert texts(released) == ["first", "second"]
    assert [t.turn_order for t in finals(released)] == [0, 1]


def test_previous_item_id_decides_the_order() -> None:
    stream = vad_stream()
    feed(stream, committed("A"), committed("C", "A"), committed("B", "A"))  # B goes after A
    assert feed(stream, completed("C", "third"), completed("B", "second")) == []
    assert texts(feed(stream, completed("A", "first"))) == ["first", "second", "third"]


def test_a_head_that_never_completes_is_given_up_after_three_later_items() -> None:
    stream = vad_stream()
    feed(stream, committed("A"), committed("B", "A"), committed("C", "B"), committed("D", "C"))
    assert feed(stream, completed("B", "b"), completed("C", "c")) == []
    released = feed(stream, completed("D", "d"))
    assert texts(released) == ["b", "c", "d"]
    assert not stream.turn_open  # A no longer holds the session
    late = finals(feed(stream, completed("A", "a")))
    assert [(t.transcript, t.turn_order) for t in late] == [("a", 0)]  # late, not lost


def test_a_completion_for_an_unknown_item_is_published_after_the_known_ones() -> None:
    stream = vad_stream()
    feed(stream, committed("A"))
    assert feed(stream, completed("X", "stray")) == []
    released = finals(feed(stream, completed("A", "known")))
    assert [(t.transcript, t.turn_order) for t in released] == [("known", 0), ("stray", 1)]
    [alone] = finals(feed(stream, completed("Y", "alone")))
    assert alone.turn_order == 2
    assert alone.audio_end_ms is None  # no span known: the engine confirms nothing for it


def test_an_empty_transcript_is_still_final_so_its_audio_is_confirmed() -> None:
    stream = vad_stream()
    start, stop = speech("A", 100, 900)
    [final] = finals(feed(stream, start, stop, committed("A"), completed("A", "")))
    assert final.transcript == ""
    assert final.audio_end_ms == 900


def test_a_failed_item_is_a_warning_and_releases_its_slot_as_processed_audio() -> None:
    stream = vad_stream()
    start, stop = speech("A", 100, 900)
    feed(stream, start, stop, committed("A"), committed("B", "A"), completed("B", "kept"))
    failure = ev(
        T + "failed",
        item_id="A",
        content_index=0,
        error={"type": "server_error", "code": "transcription_failed", "message": "boom"},
    )
    events = feed(stream, failure)
    warnings = [e for e in events if isinstance(e, ServerWarned)]
    assert len(warnings) == 1
    assert "item A (audio 100-900 ms) failed" in warnings[0].message
    assert "boom" in warnings[0].message
    assert [(t.transcript, t.audio_end_ms) for t in finals(events)] == [("", 900), ("kept", None)]
    assert not any(isinstance(e, ServerFailed) for e in events)  # the session goes on


def test_confidence_comes_from_logprobs_when_present() -> None:
    stream = vad_stream()
    logprobs = [{"token": "Hi", "logprob": -0.1, "bytes": []}, {"token": ".", "logprob": -0.3}]
    [final] = finals(feed(stream, committed("A"), completed("A", "Hi.", logprobs=logprobs)))
    assert final.end_of_turn_confidence == pytest.approx(math.exp(-0.2))
    bad = [{"token": "x", "logprob": "NaN"}]
    [plain] = finals(feed(stream, committed("B"), completed("B", "x", logprobs=bad)))
    assert plain.end_of_turn_confidence == 1.0


def test_unfinished_is_the_earliest_item_with_text_that_never_became_final() -> None:
    stream = vad_stream()
    assert stream.unfinished() is None
    feed(stream, committed("A"), delta("A", "half a sen"))
    turn = stream.unfinished()
    assert turn is not None
    assert (turn.transcript, turn.end_of_turn, turn.turn_order) == ("half a sen", False, 0)


def test_an_item_whose_completion_never_comes_is_given_up_after_30_s_of_audio() -> None:
    stream = vad_stream()
    start, stop = speech("A", 1000, 2000)
    feed(stream, start, stop, committed("A"), sent_ms=2500)
    assert stream.turn_open
    feed(stream, ev("rate_limits.updated", rate_limits=[]), sent_ms=20_000)
    assert stream.turn_open
    feed(stream, ev("rate_limits.updated", rate_limits=[]), sent_ms=33_000)
    assert not stream.turn_open


def test_speech_started_but_never_committed_stops_counting_once_a_later_item_commits() -> None:
    stream = vad_stream()
    feed(stream, speech("A", 100, 200)[0], speech("B", 300, 900)[0], committed("B"))
    assert texts(feed(stream, completed("B", "b"))) == ["b"]
    assert not stream.turn_open


# -- manual turn detection -------------------------------------------------------------


def test_manual_mode_commits_at_the_end_of_local_speech_and_keeps_the_span() -> None:
    stream = manual_stream()
    assert stream.local_speech(True, audio_ms=500) is None
    assert not stream.turn_open  # local speech is the gate's: it must hear its end
    message = stream.local_speech(False, audio_ms=3000)
    assert message is not None
    assert json.loads(message)["type"] == "input_audio_buffer.commit"
    assert stream.turn_open  # the commit is not answered yet
    feed(stream, delta("item_1", "turn on"), committed("item_1"))
    [final] = finals(feed(stream, completed("item_1", "Turn on the light.")))
    assert (final.audio_start_ms, final.audio_end_ms) == (500, 3000)
    assert not stream.turn_open


def test_manual_mode_commits_nothing_without_speech_or_with_under_100_ms() -> None:
    stream = manual_stream()
    assert stream.local_speech(False, audio_ms=5000) is None  # no speech since the start
    assert stream.local_speech(True, audio_ms=0) is None
    assert stream.local_speech(False, audio_ms=60) is None  # 60 ms: the API would refuse it
    assert not stream.turn_open
    assert stream.local_speech(True, audio_ms=100) is None
    assert stream.local_speech(False, audio_ms=1200) is not None
    assert stream.local_speech(True, audio_ms=1250) is None
    assert stream.local_speech(False, audio_ms=1290) is None  # 90 ms after the last commit


def test_commits_are_matched_to_items_in_order() -> None:
    stream = manual_stream()
    for start, end in ((100, 1000), (2000, 3000)):
        stream.local_speech(True, audio_ms=start)
        stream.local_speech(False, audio_ms=end)
    feed(stream, committed("i1"), committed("i2", "i1"))
    released = finals(feed(stream, completed("i2", "two"), completed("i1", "one")))
    assert [(t.transcript, t.audio_start_ms, t.audio_end_ms) for t in released] == [
        ("one", 100, 1000),
        ("two", 2000, 3000),
    ]


def test_a_refused_commit_of_ours_is_a_warning_and_no_longer_holds_the_turn() -> None:
    stream = manual_stream()
    stream.local_speech(True, audio_ms=0)
    message = stream.local_speech(False, audio_ms=800)
    assert message is not None
    event_id = json.loads(message)["event_id"]
    refused = error(
        "invalid_request_error",
        "input_audio_buffer_commit_empty",
        "buffer too small",
        event_id=event_id,
    )
    [warning] = feed(stream, refused)
    assert isinstance(warning, ServerWarned)
    assert "[client_bug]" in warning.message
    assert not stream.turn_open


def test_deltas_without_local_speech_are_partials_but_keep_no_turn_open() -> None:
    """Noise the gate does not call speech is never committed: it must not hold the session."""
    stream = manual_stream()
    [partial] = feed(stream, delta("noise", "hmm"))
    assert isinstance(partial, TurnUpdate)
    assert not partial.final
    assert not stream.turn_open


def test_server_turn_detection_needs_no_local_commits() -> None:
    stream = vad_stream()
    assert stream.local_speech(True, audio_ms=0) is None
    assert stream.local_speech(False, audio_ms=5000) is None
    assert not stream.turn_open


# -- error events ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "code", "cls"),
    [
        ("invalid_request_error", "session_expired", ErrorClass.SESSION_OVER),
        ("server_error", None, ErrorClass.TRANSIENT),
        ("insufficient_quota", "insufficient_quota", ErrorClass.AUTH),
        ("invalid_request_error", "model_not_found", ErrorClass.CONFIG),
        ("rate_limit_error", "rate_limit_exceeded", ErrorClass.THROTTLED),
    ],
)
def test_errors_that_end_the_session_are_failures_the_end_is_classified_from(
    kind: str, code: str, cls: ErrorClass
) -> None:
    [failed] = feed(vad_stream(), error(kind, code, "server says so"))
    assert isinstance(failed, ServerFailed)
    assert failed.code is None
    assert "server says so" in failed.message
    assert OpenAIRealtimeProvider().classify_close(1000, failed.message, after_terminate=True) == (
        classify_close(None, failed.message)
    )
    assert classify_close(1000, failed.message).error_class is cls


def test_a_rejected_client_event_is_a_warning_the_session_survives() -> None:
    [warned] = feed(vad_stream(), error("invalid_request_error", "unknown_event", "no such"))
    assert isinstance(warned, ServerWarned)
    assert "no such" in warned.message
    assert "[client_bug]" in warned.message


def test_an_error_without_details_is_still_one_line() -> None:
    [warned] = feed(vad_stream(), ev("error", error="not an object"))
    assert isinstance(warned, ServerWarned)
    assert "\n" not in warned.message


# -- hostile input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type": "session.created"}',
        "{not json",
        '{"type": "input_audio_buffer.speech_started", "item_id": "A", "audio_start_ms": NaN}',
        '{"type": "input_audio_buffer.speech_started", "item_id": "A", "audio_start_ms": 1e999}',
        "[1, 2, 3]",
        '{"no_type": 1}',
        '{"type": 7}',
        "[" * 100_000 + "]" * 100_000,
        ev("input_audio_buffer.speech_started", item_id="A", audio_start_ms=-5),
        ev("input_audio_buffer.speech_started", item_id="A", audio_start_ms="100"),
        ev("input_audio_buffer.speech_started", item_id="A", audio_start_ms=True),
        ev("input_audio_buffer.speech_started", item_id="A", audio_start_ms=10**30),
        ev("input_audio_buffer.speech_started", audio_start_ms=100),
        ev("input_audio_buffer.committed", item_id="x" * (MAX_ID_CHARS + 1)),
        ev("input_audio_buffer.committed", item_id=""),
        ev("input_audio_buffer.committed", item_id=["A"]),
        ev("input_audio_buffer.committed", item_id="A", previous_item_id=5),
        ev(T + "completed", item_id="A", transcript=None),
        ev(T + "completed", item_id="A"),
        ev(T + "delta", item_id="A", delta=["x"]),
        ev("session.updated", session="sess"),
    ],
)
def test_unusable_messages_are_skipped_not_a_crash(raw: str | bytes) -> None:
    stream = vad_stream()
    [skipped] = stream.receive(raw, sent_ms=SENT)
    assert isinstance(skipped, MessageSkipped)
    assert "\n" not in str(skipped.error)
    assert len(str(skipped.error)) < 400
    assert not stream.turn_open  # nothing was half applied


def test_speech_times_beyond_the_audio_sent_are_skipped() -> None:
    stream = vad_stream()
    start, stop = speech("A", 500, 9000)
    assert feed(stream, start, sent_ms=1000) == []
    [skipped] = feed(stream, stop, sent_ms=1000)
    assert isinstance(skipped, MessageSkipped)
    assert "only 1000 ms of audio were sent" in str(skipped.error)
    [backwards] = feed(
        stream, ev("input_audio_buffer.speech_stopped", item_id="A", audio_end_ms=100)
    )
    assert isinstance(backwards, MessageSkipped)
    assert "before it started" in str(backwards.error)


def test_huge_and_invalid_text_is_cut_and_made_valid() -> None:
    stream = vad_stream()
    huge = "ab\ud800" + "x" * (3 * MAX_TEXT_CHARS)
    [final] = finals(feed(stream, committed("A"), completed("A", huge)))
    assert len(final.transcript) == MAX_TEXT_CHARS
    assert final.transcript.startswith("ab\ufffd")
    assert final.truncated
    assert any("cut" in r for r in final.repairs)
    final.transcript.encode("utf-8")  # no lone surrogate left
    for _ in range(3):
        [partial] = feed(stream, delta("B", "y" * MAX_TEXT_CHARS))
    assert isinstance(partial, TurnUpdate)
    assert len(partial.turn.transcript) == MAX_TEXT_CHARS
    assert partial.turn.truncated


def test_unknown_event_types_are_ignored() -> None:
    stream = vad_stream()
    for kind in ("conversation.item.added", "input_audio_buffer.timeout_triggered", "x" * 10_000):
        assert stream.receive(ev(kind, item={"id": "A"}), sent_ms=SENT) == []
    assert not stream.turn_open


def test_a_flood_of_item_ids_stays_bounded() -> None:
    ledger = ItemLedger()
    for n in range(MAX_ITEMS * 4):
        item = ledger.see(f"item_{n}")
        assert item is not None
        item.start_ms = n
    assert len(ledger._items) == MAX_ITEMS  # the oldest are forgotten
    assert ledger.see("item_0") is not None  # forgotten, so seen anew
