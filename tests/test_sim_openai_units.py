"""The OpenAI Realtime simulator's sans-I/O rules: session.update validation, the input
buffer (segmentation, items, deltas), secret requests and fault specs."""

from __future__ import annotations

import itertools

import pytest

from edgecap.sim.openai import RealtimeError, RealtimeFault, TranscriptionConfig
from edgecap.sim.openai.buffer import (
    Commit,
    InputBuffer,
    LiveDelta,
    SpeechStarted,
    SpeechStopped,
    deltas_of,
)
from edgecap.sim.openai.config import DEFAULT_VAD, TurnDetection, apply_session_update
from edgecap.sim.openai.faults import parse_realtime_fault
from edgecap.sim.openai.secrets import parse_secret_request
from edgecap.sim.turns import Script
from tests.sim_openai_helpers import quiet, session_update, speech

pytestmark = pytest.mark.unit


def update(**kwargs: object) -> TranscriptionConfig:
    return apply_session_update(TranscriptionConfig(), session_update(**kwargs)["session"])  # type: ignore[arg-type]


# -- session.update -------------------------------------------------------------------


def test_a_valid_update_sets_model_language_and_vad() -> None:
    config = update(model="gpt-4o-mini-transcribe", language="en", prompt="kitchen")
    assert config.model == "gpt-4o-mini-transcribe"
    assert (config.language, config.prompt) == ("en", "kitchen")
    assert config.noise_reduction == "near_field"
    assert config.turn_detection == TurnDetection("server_vad", 0.5, 300, 500)
    session = config.session_object("sess_1", 99)
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["input"]["transcription"] == {
        "model": "gpt-4o-mini-transcribe",
        "language": "en",
        "prompt": "kitchen",
    }


IN = "session.audio.input"
VAD = {"type": "server_vad", "threshold": 1.5}


@pytest.mark.parametrize(
    ("kwargs", "code", "param", "text"),
    [
        ({"rate": 16000}, "integer_below_min_value", f"{IN}.format.rate", ">= 24000"),
        ({"rate": 48000}, "integer_above_max_value", f"{IN}.format.rate", "<= 24000"),
        ({"model": "gpt-5-ears"}, "invalid_value", f"{IN}.transcription.model", "'gpt-5-ears'"),
        ({"model": "gpt-live-transcribe"}, None, f"{IN}.turn_detection", "not supported"),
        ({"model": "gpt-realtime-whisper"}, None, f"{IN}.turn_detection", "not supported"),
        (
            {"turn_detection": VAD},
            "decimal_above_max_value",
            f"{IN}.turn_detection.threshold",
            "<= 1",
        ),
        (
            {"turn_detection": {"type": "loud"}},
            "invalid_value",
            f"{IN}.turn_detection.type",
            "'loud'",
        ),
        ({"delay": "low"}, None, f"{IN}.transcription.delay", "gpt-realtime-whisper"),
        (
            {"colour": "blue"},
            "unknown_parameter",
            f"{IN}.transcription.colour",
            "Unknown parameter",
        ),
    ],
)
def test_invalid_updates_name_the_parameter(
    kwargs: dict[str, object], code: str | None, param: str, text: str
) -> None:
    with pytest.raises(RealtimeError) as refused:
        update(**kwargs)
    assert (refused.value.code, refused.value.param) == (code, param)
    assert text in refused.value.message
    assert refused.value.kind == "invalid_request_error"


def test_realtime_only_models_default_to_no_turn_detection() -> None:
    assert update(model="gpt-live-transcribe", turn_detection="omit").turn_detection is None
    assert update(model="gpt-realtime-whisper", turn_detection=None, delay="low").delay == "low"
    kept = update(model="whisper-1", turn_detection="omit")
    assert kept.turn_detection == DEFAULT_VAD, "VAD models default to server_vad"


def test_a_realtime_session_update_is_refused_in_a_transcription_session() -> None:
    with pytest.raises(RealtimeError, match="realtime session update event to a transcription"):
        apply_session_update(TranscriptionConfig(), {"type": "realtime"})
    with pytest.raises(RealtimeError, match=r"Missing required parameter: 'session\.type'"):
        apply_session_update(TranscriptionConfig(), {"audio": {}})


# -- the input buffer -------------------------------------------------------------------


def make_buffer(
    script: Script, *, vad: TurnDetection | None = DEFAULT_VAD, live: bool = False
) -> InputBuffer:
    counter = itertools.count(1)
    return InputBuffer(
        script, lambda: f"item_{next(counter)}", sample_rate=24000, vad=vad, live_deltas=live
    )


def test_server_vad_starts_stops_and_commits_each_utterance() -> None:
    script = Script(["First one.", "Second, please."])
    buffer = make_buffer(script)
    happened = buffer.feed(quiet(0.5) + speech(1.0) + quiet(0.6) + speech(0.5) + quiet(0.6))
    kinds = [type(h).__name__ for h in happened]
    assert kinds == ["SpeechStarted", "SpeechStopped", "Commit"] * 2
    started, stopped, first = happened[0], happened[1], happened[2]
    assert isinstance(started, SpeechStarted)
    assert isinstance(stopped, SpeechStopped)
    assert isinstance(first, Commit)
    assert started.audio_start_ms == 200, "speech at 500 ms minus 300 ms prefix padding"
    assert stopped.audio_end_ms == 2000, "speech end 1500 ms plus 500 ms of silence"
    assert (first.audio_start_ms, first.audio_end_ms) == (200, 2000)
    assert first.transcript == "First one."
    assert first.deltas == ("First", " one.")
    second = happened[5]
    assert isinstance(second, Commit)
    assert second.previous_item_id == first.item_id == "item_1"
    assert second.transcript == "Second, please."
    assert script.remaining == []


def test_without_vad_only_a_commit_makes_an_item_of_every_utterance_since() -> None:
    script = Script(["One.", "Two three."])
    buffer = make_buffer(script, vad=None)
    assert buffer.feed(speech(0.5) + quiet(0.7) + speech(0.5) + quiet(0.2)) == []
    commit = buffer.commit()
    assert commit.by == "client"
    assert commit.transcript == "One. Two three."
    assert (commit.audio_start_ms, commit.audio_end_ms) == (0, 1900)
    with pytest.raises(RealtimeError) as empty:
        buffer.commit()
    assert empty.value.code == "input_audio_buffer_commit_empty"
    assert "buffer only has 0.00ms of audio" in empty.value.message
    buffer.feed(quiet(0.3))
    assert buffer.commit().transcript == "", "silence commits an empty transcript"


def test_live_models_send_words_while_speech_goes_on() -> None:
    buffer = make_buffer(Script(["Turn on the kitchen lights"]), vad=None, live=True)
    live = [h for h in buffer.feed(speech(1.4)) if isinstance(h, LiveDelta)]
    assert "".join(d.delta for d in live) == "Turn on the kitchen", "one word per 320 ms"
    commit = buffer.commit()
    assert commit.deltas == (" lights",)
    assert commit.item_id == live[0].item_id


def test_an_abandoned_or_cleared_utterance_gives_its_text_back() -> None:
    script = Script(["Kept for the replay.", "Next."])
    buffer = make_buffer(script)
    buffer.feed(speech(0.5))
    assert script.remaining == ["Next."]
    buffer.abandon()
    assert script.remaining == ["Kept for the replay.", "Next."]
    buffer.feed(speech(0.5))
    buffer.clear()
    assert script.remaining == ["Kept for the replay.", "Next."]
    assert buffer.buffered_ms == 0


def test_a_blip_is_not_an_utterance() -> None:
    script = Script(["Unused."])
    buffer = make_buffer(script)
    assert buffer.feed(speech(0.05) + quiet(1.0)) == []
    assert script.remaining == ["Unused."]


def test_deltas_rebuild_the_text_exactly() -> None:
    for text in ["Hello", "Two  spaces here", "Trailing space ", ""]:
        assert "".join(deltas_of(text)) == text


# -- secrets and faults ---------------------------------------------------------------------


def test_secret_requests_follow_the_documented_range() -> None:
    assert parse_secret_request(b"{}").seconds == 600
    minted = parse_secret_request(
        b'{"expires_after": {"anchor": "created_at", "seconds": 7200},'
        b' "session": {"type": "transcription", "audio": {"input": {"transcription":'
        b' {"model": "gpt-live-transcribe"}}}}}'
    )
    assert minted.seconds == 7200
    assert minted.config is not None
    assert minted.config.model == "gpt-live-transcribe"
    for seconds, code in [(9, "integer_below_min_value"), (7201, "integer_above_max_value")]:
        body = f'{{"expires_after": {{"seconds": {seconds}}}}}'.encode()
        with pytest.raises(RealtimeError) as refused:
            parse_secret_request(body)
        assert refused.value.code == code
        assert refused.value.param == "expires_after.seconds"
    with pytest.raises(RealtimeError, match="'updated_at'"):
        parse_secret_request(b'{"expires_after": {"anchor": "updated_at"}}')


def test_fault_specs_parse() -> None:
    assert parse_realtime_fault("handshake:403") == [RealtimeFault.handshake(403)]
    assert parse_realtime_fault("drop@utterance=2") == [RealtimeFault.drop(utterance=2)]
    assert parse_realtime_fault("error:1011:boom@wall=2s") == [
        RealtimeFault.error(1011, "boom", after_seconds=2.0)
    ]
    assert (
        parse_realtime_fault("fail-item@1500ms*2")
        == [RealtimeFault.fail_item(after_audio_ms=1500.0)] * 2
    )
    assert parse_realtime_fault("no-created") == [RealtimeFault.no_created()]
    for bad in ["handshake:x", "drop@utterance=0", "explode", "no-created@1s"]:
        with pytest.raises(ValueError, match="bad"):
            parse_realtime_fault(bad)
