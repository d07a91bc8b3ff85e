"""v3 message parsing and turn finality: what a subscriber ends up receiving."""

from __future__ import annotations

import json

import pytest

from edgecap.providers.assemblyai.messages import (
    Begin,
    ProtocolError,
    ServerError,
    Termination,
    Turn,
    Unknown,
    parse_server_message,
)
from edgecap.providers.assemblyai.turns import TurnAssembler
from edgecap.providers.assemblyai.url import StreamParams, redact_url, streaming_url

pytestmark = pytest.mark.unit


def turn_msg(order: int, text: str, *, eot: bool, formatted: bool, **extra: object) -> str:
    words = [
        {"text": w, "start": 100 * i, "end": 100 * i + 80, "confidence": 0.9, "word_is_final": True}
        for i, w in enumerate(text.split())
    ]
    return json.dumps(
        {
            "type": "Turn",
            "turn_order": order,
            "turn_is_formatted": formatted,
            "end_of_turn": eot,
            "transcript": text,
            "end_of_turn_confidence": 0.7,
            "words": words,
            **extra,
        }
    )


def test_begin_with_integer_expiry_and_model() -> None:
    msg = parse_server_message(
        '{"type":"Begin","id":"abc","expires_at":1759796682,'
        '"configuration":{"model":"universal-streaming-english"}}'
    )
    assert msg == Begin("abc", 1759796682, {"model": "universal-streaming-english"})
    assert msg.model == "universal-streaming-english"


def test_turn_fields_parsed() -> None:
    msg = parse_server_message(
        turn_msg(3, "Hi there.", eot=True, formatted=True, language_code="en")
    )
    assert isinstance(msg, Turn)
    assert msg.turn_order == 3
    assert msg.transcript == "Hi there."
    assert [w.text for w in msg.words] == ["Hi", "there."]
    assert msg.words[1].start_ms == 100
    assert msg.language_code == "en"


def test_termination_error_and_legacy_error_forms() -> None:
    assert parse_server_message(
        '{"type":"Termination","audio_duration_seconds":7,"session_duration_seconds":8}'
    ) == Termination(7, 8)
    assert parse_server_message(
        '{"type":"Error","error_code":3008,"error":"Session Expired: x"}'
    ) == ServerError(3008, "Session Expired: x")
    assert parse_server_message('{"error":"Not authorized"}') == ServerError(None, "Not authorized")


def test_unknown_types_are_returned_not_rejected() -> None:
    msg = parse_server_message('{"type":"LLMGatewayResponse","x":1}')
    assert isinstance(msg, Unknown)
    assert msg.type == "LLMGatewayResponse"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("not json", "invalid JSON"),
        ("[]", "not a JSON object"),
        ('{"type":"Turn","turn_order":"1","words":[]}', "Turn.turn_order"),
        ('{"type":"Begin"}', "without 'id'"),
        ('{"message_type":"FinalTranscript","text":"x"}', "v2"),
    ],
)
def test_malformed_messages_raise_one_line_errors(text: str, fragment: str) -> None:
    with pytest.raises(ProtocolError, match=fragment) as info:
        parse_server_message(text)
    assert "\n" not in str(info.value)


def test_turn_with_boolean_order_is_rejected() -> None:
    with pytest.raises(ProtocolError):
        parse_server_message(turn_msg(True, "x", eot=True, formatted=True))  # type: ignore[arg-type]


def feed_all(assembler: TurnAssembler, *messages: str) -> list[Turn]:
    out = []
    for m in messages:
        parsed = parse_server_message(m)
        assert isinstance(parsed, Turn)
        final = assembler.feed(parsed)
        if final is not None:
            out.append(final)
    return out


def test_formatted_final_released_once_per_turn_order() -> None:
    a = TurnAssembler(format_turns=True)
    finals = feed_all(
        a,
        turn_msg(0, "hi", eot=False, formatted=False),
        turn_msg(0, "hi there", eot=True, formatted=False),
        turn_msg(0, "Hi there.", eot=True, formatted=True),
        turn_msg(0, "Hi there.", eot=True, formatted=True),  # repeated: ignored
        turn_msg(1, "next", eot=False, formatted=False),
    )
    assert [f.transcript for f in finals] == ["Hi there."]
    assert a.open_turn is not None
    assert a.open_turn.turn_order == 1
    assert a.duplicates == 1


def test_unformatted_end_of_turn_is_final_without_format_turns() -> None:
    a = TurnAssembler(format_turns=False)
    finals = feed_all(
        a,
        turn_msg(0, "hello", eot=True, formatted=False),
        turn_msg(0, "Hello.", eot=True, formatted=True),
    )
    assert [f.transcript for f in finals] == ["hello"]


def test_url_sends_every_parameter_and_token_is_redactable() -> None:
    params = StreamParams(16000, "universal-streaming-english", True, 0.4, 400, 1280)
    url = streaming_url("wss://streaming.assemblyai.com/v3/ws", params, "tok-secret")
    for part in (
        "sample_rate=16000",
        "encoding=pcm_s16le",
        "speech_model=universal-streaming-english",
        "format_turns=true",
        "end_of_turn_confidence_threshold=0.4",
        "min_turn_silence=400",
        "max_turn_silence=1280",
        "token=tok-secret",
    ):
        assert part in url
    assert "tok-secret" not in redact_url(url)
