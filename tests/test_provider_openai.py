"""OpenAI Realtime transcription as a provider object: the URL check, the upgrade request,
the session.update of both turn detection modes, audio framing, live updates and the
classification of refused upgrades, closes and error events (no I/O)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from edgecap.providers.failures import ErrorClass
from edgecap.providers.openai.errors import (
    classify_close,
    classify_openai_error,
    classify_upgrade,
    error_text,
    read_error_text,
)
from edgecap.providers.openai.params import (
    DEFAULT_URL,
    OpenAIParams,
    ServerVad,
    check_url,
    live_changes,
)
from edgecap.providers.openai.protocol import OpenAIRealtimeProvider

pytestmark = pytest.mark.unit

VAD = ServerVad(threshold=0.6, prefix_padding_ms=200, silence_duration_ms=700)


def test_the_default_url_is_the_transcription_endpoint_and_passes_the_check() -> None:
    assert DEFAULT_URL == "wss://api.openai.com/v1/realtime?intent=transcription"
    assert check_url(DEFAULT_URL) is None


def test_a_model_in_the_url_is_explained_in_one_line() -> None:
    problem = check_url("wss://api.openai.com/v1/realtime?intent=transcription&model=gpt-4o")
    assert problem is not None
    assert "\n" not in problem
    assert "conversation session" in problem
    assert "rejects the transcription session.update" in problem
    assert DEFAULT_URL in problem
    with pytest.raises(ValueError, match="conversation session"):
        OpenAIParams(url="wss://api.openai.com/v1/realtime?model=gpt-realtime")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("wss://api.openai.com/v1/realtime", "intent=transcription"),
        ("ws://api.openai.com/v1/realtime?intent=transcription", "wss://"),
        ("https://api.openai.com/v1/realtime?intent=transcription", "wss://"),
        ("api.openai.com/v1/realtime", "wss://"),
    ],
)
def test_other_wrong_urls_name_what_to_change(url: str, expected: str) -> None:
    problem = check_url(url)
    assert problem is not None
    assert expected in problem


def test_another_server_may_carry_a_model_in_its_url() -> None:
    assert check_url("ws://127.0.0.1:8765/v1/realtime?model=sim&intent=transcription") is None


def test_the_credential_goes_in_a_bearer_header_never_in_the_url() -> None:
    provider = OpenAIRealtimeProvider()
    request = provider.connect_request("ek_secret123")
    assert request.url == DEFAULT_URL
    assert request.headers == (("Authorization", "Bearer ek_secret123"),)
    assert "ek_secret123" not in request.url
    assert "ek_secret123" not in request.shown
    assert "ek_secret123" not in repr(request)
    assert request.subprotocols == ()
    for bad in ("", "sk-a\r\nX-Evil: 1"):
        with pytest.raises(ValueError, match="credential"):
            provider.connect_request(bad)


def session_of(message: str) -> dict[str, Any]:
    data = json.loads(message)
    assert data["type"] == "session.update"
    session: dict[str, Any] = data["session"]
    return session


def test_the_default_session_is_gpt_live_transcribe_with_manual_commits() -> None:
    provider = OpenAIRealtimeProvider()
    [message] = provider.opening_messages()
    assert session_of(message) == {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "gpt-live-transcribe"},
                "noise_reduction": None,
                "turn_detection": None,
            }
        },
    }
    assert provider.model == "gpt-live-transcribe"
    assert provider.sample_rate == 24000
    assert provider.params.manual_commit


def test_server_turn_detection_and_every_option_are_sent_explicitly() -> None:
    params = OpenAIParams(
        model="gpt-4o-transcribe",
        language="de",
        prompt="Küche, Licht, Zigbee",
        noise_reduction="far_field",
        turn_detection=VAD,
        logprobs=True,
    )
    session = session_of(OpenAIRealtimeProvider(params).opening_messages()[0])
    assert session["audio"]["input"] == {
        "format": {"type": "audio/pcm", "rate": 24000},
        "transcription": {
            "model": "gpt-4o-transcribe",
            "language": "de",
            "prompt": "Küche, Licht, Zigbee",
        },
        "noise_reduction": {"type": "far_field"},
        "turn_detection": {
            "type": "server_vad",
            "threshold": 0.6,
            "prefix_padding_ms": 200,
            "silence_duration_ms": 700,
        },
    }
    assert session["include"] == ["item.input_audio_transcription.logprobs"]
    assert not params.manual_commit


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"sample_rate": 16000}, "sample_rate must be 24000"),
        ({"turn_detection": ServerVad()}, "turn_detection must be none with model"),
        ({"model": "gpt-realtime-whisper", "turn_detection": ServerVad()}, "no server turn"),
        ({"model": "gpt 4o; drop"}, "model must be a model name"),
        ({"language": "English please"}, "language must be an ISO-639-1 code"),
        ({"noise_reduction": "loud"}, "noise_reduction must be near_field, far_field or none"),
        ({"prompt": "x" * 5000}, "prompt must be text"),
        (
            {"model": "whisper-1", "turn_detection": ServerVad(threshold=1.5)},
            "turn_detection.threshold must be within 0..1",
        ),
        (
            {"model": "whisper-1", "turn_detection": ServerVad(silence_duration_ms=0)},
            "turn_detection.silence_duration_ms",
        ),
    ],
)
def test_settings_the_api_would_reject_are_refused_naming_the_setting(
    kwargs: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        OpenAIParams(**kwargs)


def test_a_prompt_for_a_model_without_prompts_is_a_warning_not_an_error() -> None:
    params = OpenAIParams(model="gpt-realtime-whisper", prompt="names")
    assert params.warnings() == [
        "prompt has no effect with model 'gpt-realtime-whisper' (it takes no prompt)"
    ]
    assert OpenAIParams(prompt="names").warnings() == []


def test_audio_is_an_append_event_with_the_pcm_in_base64() -> None:
    stream = OpenAIRealtimeProvider().open_stream()  # 24 kHz capture: sent as it is
    pcm = bytes(range(256)) * 9 + b"\x00\xff" * 48  # 50 ms at 24 kHz: 2400 bytes
    assert len(pcm) == 2400
    message = stream.encode_audio(pcm)
    assert isinstance(message, str)  # a text frame
    data = json.loads(message)
    assert data == {"type": "input_audio_buffer.append", "audio": data["audio"]}
    assert base64.b64decode(data["audio"], validate=True) == pcm
    assert json.loads(stream.encode_audio(b""))["audio"] == ""


def test_control_messages_commit_and_no_terminate_handshake() -> None:
    provider = OpenAIRealtimeProvider()
    assert json.loads(provider.commit_message()) == {"type": "input_audio_buffer.commit"}
    assert provider.force_endpoint_message() == provider.commit_message()
    assert provider.terminate_message() == ""
    assert provider.keepalive_message() == ""


def test_a_live_update_sends_the_whole_session_with_the_changes() -> None:
    provider = OpenAIRealtimeProvider(OpenAIParams(model="gpt-4o-transcribe", turn_detection=VAD))
    session = session_of(provider.update_message(prompt="Kitchen", silence_duration_ms=900))
    audio = session["audio"]["input"]
    assert audio["transcription"] == {"model": "gpt-4o-transcribe", "prompt": "Kitchen"}
    assert audio["turn_detection"]["silence_duration_ms"] == 900
    assert audio["turn_detection"]["threshold"] == 0.6  # unchanged values are sent too
    cleared = session_of(provider.update_message(noise_reduction="", language=""))
    assert cleared["audio"]["input"]["noise_reduction"] is None
    assert "language" not in cleared["audio"]["input"]["transcription"]


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"model": "whisper-1"}, "cannot change model"),
        ({"threshold": 2.0}, "threshold must be within 0..1"),
        ({"noise_reduction": "loud"}, "noise_reduction must be"),
    ],
)
def test_a_live_update_that_cannot_apply_is_refused_in_one_line(
    fields: dict[str, Any], named: str
) -> None:
    provider = OpenAIRealtimeProvider(OpenAIParams(model="gpt-4o-transcribe", turn_detection=VAD))
    with pytest.raises(ValueError, match=named):
        provider.update_message(**fields)


def test_vad_values_cannot_change_on_a_session_without_server_turn_detection() -> None:
    with pytest.raises(ValueError, match="no server turn detection"):
        OpenAIRealtimeProvider().update_message(threshold=0.4)


def test_a_reload_sends_language_prompt_and_vad_live_and_leaves_the_rest_for_later() -> None:
    old = OpenAIParams(model="gpt-4o-transcribe", prompt="a", turn_detection=VAD)
    new = OpenAIParams(
        model="whisper-1",
        language="fr",
        turn_detection=ServerVad(threshold=0.6, prefix_padding_ms=200, silence_duration_ms=300),
    )
    live, later = live_changes(old, new)
    assert live == {"language": "fr", "prompt": "", "silence_duration_ms": 300}
    assert later == ["model"]
    _, later = live_changes(old, OpenAIParams(model="gpt-4o-transcribe", prompt="a"))
    assert later == ["turn_detection"]  # server vs manual commits: a new session


@pytest.mark.parametrize(
    ("status", "cls", "words"),
    [
        (401, ErrorClass.AUTH, "Authorization: Bearer"),
        (403, ErrorClass.AUTH, "project's model limits"),
        (429, ErrorClass.THROTTLED, "rate limiting"),
        (503, ErrorClass.TRANSIENT, "retrying"),
        (404, ErrorClass.CONFIG, DEFAULT_URL),
        (400, ErrorClass.CONFIG, DEFAULT_URL),
    ],
)
def test_a_refused_upgrade_is_classified_with_one_actionable_line(
    status: int, cls: ErrorClass, words: str
) -> None:
    refused = OpenAIRealtimeProvider().classify_upgrade(status)
    assert refused.error_class is cls
    assert words in refused.hint
    assert "\n" not in refused.line()
    assert refused.line().startswith(f"HTTP {status}")


def test_the_403_line_names_every_usual_cause() -> None:
    hint = classify_upgrade(403).hint
    for cause in ("Realtime access", "model limits", "billing", "model is not available", "URL"):
        assert cause in hint


@pytest.mark.parametrize(
    ("code", "after", "cls"),
    [
        (1000, True, ErrorClass.SESSION_OVER),
        (1000, False, ErrorClass.TRANSIENT),
        (None, False, ErrorClass.TRANSIENT),
        (1006, True, ErrorClass.TRANSIENT),
        (1011, False, ErrorClass.TRANSIENT),
        (1013, False, ErrorClass.TRANSIENT),
        (1009, False, ErrorClass.CLIENT_BUG),
        (1008, False, ErrorClass.AUTH),
        (4999, False, ErrorClass.TRANSIENT),
    ],
)
def test_closes_are_classified_without_assemblyai_codes(
    code: int | None, after: bool, cls: ErrorClass
) -> None:
    assert OpenAIRealtimeProvider().classify_close(code, "", after_terminate=after).error_class is (
        cls
    )


@pytest.mark.parametrize(
    ("kind", "code", "message", "param", "cls", "words"),
    [
        (
            "invalid_request_error",
            "session_expired",
            "Your session hit the maximum duration of 60 minutes.",
            None,
            ErrorClass.SESSION_OVER,
            "maximum duration",
        ),
        (
            "invalid_request_error",
            None,
            "Model gpt-4o-transcribe is a transcription model and cannot be used as the "
            "realtime session model",
            None,
            ErrorClass.CONFIG,
            "'model' in the URL",
        ),
        (
            "invalid_request_error",
            "invalid_api_key",
            "Incorrect API key",
            None,
            ErrorClass.AUTH,
            "re-mints",
        ),
        (
            "insufficient_quota",
            "insufficient_quota",
            "You exceeded your current quota, please check your plan and billing details.",
            None,
            ErrorClass.AUTH,
            "no quota",
        ),
        (
            "invalid_request_error",
            "model_not_found",
            "Project `proj_x` does not have access to model `gpt-live-transcribe`",
            None,
            ErrorClass.CONFIG,
            "model limits",
        ),
        (
            "rate_limit_error",
            "rate_limit_exceeded",
            "slow down",
            None,
            ErrorClass.THROTTLED,
            "backing off",
        ),
        ("server_error", None, "The server had an error", None, ErrorClass.TRANSIENT, "retrying"),
        (
            "invalid_request_error",
            "invalid_value",
            "Invalid value: 'loud'",
            "session.audio.input.noise_reduction.type",
            ErrorClass.CONFIG,
            "session settings",
        ),
        (
            "invalid_request_error",
            "input_audio_buffer_commit_empty",
            "buffer too small. Expected at least 100ms of audio",
            None,
            ErrorClass.CLIENT_BUG,
            "nothing lost",
        ),
        ("invalid_request_error", "unknown_event", "what?", None, ErrorClass.CLIENT_BUG, "bug"),
        (None, None, "", None, ErrorClass.CLIENT_BUG, "unexpected OpenAI error"),
    ],
)
def test_error_events_are_classified_and_read_back_from_the_engine_reason(
    kind: str | None,
    code: str | None,
    message: str,
    param: str | None,
    cls: ErrorClass,
    words: str,
) -> None:
    direct = classify_openai_error(kind, code, message, param)
    assert direct.error_class is cls
    assert words in direct.hint
    assert "\n" not in direct.line()
    # the engine classifies a session's end from the last ServerFailed's text
    via_engine = classify_close(1000, error_text(kind, code, message, param))
    assert via_engine == direct


def test_error_text_survives_hostile_type_and_code_strings() -> None:
    text = error_text("a] b/c", "x y", "msg ] with [brackets]", "p]q")
    assert read_error_text(text) == ("a__b_c", "x_y", "msg ] with [brackets]", "p_q")
    assert read_error_text("plain close reason") is None
    assert classify_close(1011, "plain close reason").error_class is ErrorClass.TRANSIENT
