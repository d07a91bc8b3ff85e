"""AssemblyAI v3 as a provider object: the upgrade request of each way in, the query of
each option, and what a reload can change on a live session (no I/O)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from edgecap.providers.assemblyai.protocol import AssemblyAIProvider
from edgecap.providers.assemblyai.url import StreamParams, live_changes
from edgecap.providers.base import (
    MessageSkipped,
    ServerFailed,
    SessionOpened,
    SessionTerminated,
    TurnUpdate,
)

pytestmark = pytest.mark.unit

US = StreamParams(16000, "universal-streaming-english", True, 0.4, 400, 1280)
PROXY = "wss://keypool.example.com/v1/assemblyai/v3/ws"


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_a_token_goes_in_the_query_and_is_hidden_in_what_is_shown() -> None:
    request = AssemblyAIProvider("wss://streaming.assemblyai.com/v3/ws", US).connect_request("tk")
    assert query(request.url)["token"] == "tk"
    assert "tk" not in request.shown
    assert request.headers == ()
    assert request.subprotocols == ()


@pytest.mark.parametrize(
    ("auth", "headers", "subprotocols"),
    [
        ("proxy_header", (("Authorization", "Bearer nxkp-team"),), ()),
        ("proxy_subprotocol", (), ("keypool-token.nxkp-team",)),
        ("api_key_header", (("Authorization", "nxkp-team"),), ()),
    ],
)
def test_a_credential_in_a_header_or_subprotocol_never_lands_in_the_url(
    auth: str, headers: tuple[tuple[str, str], ...], subprotocols: tuple[str, ...]
) -> None:
    provider = AssemblyAIProvider(PROXY, US, auth)  # type: ignore[arg-type]
    request = provider.connect_request("nxkp-team")
    assert "nxkp-team" not in request.url
    assert "token" not in query(request.url)
    assert request.headers == headers
    assert request.subprotocols == subprotocols
    assert query(request.url)["speech_model"] == "universal-streaming-english"


def test_a_refused_proxy_upgrade_names_the_proxy() -> None:
    refused = AssemblyAIProvider(PROXY, US, "proxy_header").classify_upgrade(401)
    assert refused.error_class == "auth"
    assert "KeyPool proxy" in refused.hint
    assert AssemblyAIProvider(PROXY, US, "proxy_header").classify_upgrade(503).error_class == (
        "transient"
    )


def test_only_configured_options_are_sent_lists_as_json_and_booleans_as_words() -> None:
    pro = StreamParams(
        16000,
        "universal-3-6-pro",
        None,
        None,
        None,
        None,
        keyterms_prompt=("Zigbee", "Grünfeld"),
        prompt="Kitchen commands.",
        language_codes=("en", "de"),
        mode="balanced",
        speaker_labels=True,
        max_speakers=2,
    )
    q = pro.query()
    assert json.loads(q["keyterms_prompt"]) == ["Zigbee", "Grünfeld"]
    assert json.loads(q["language_codes"]) == ["en", "de"]
    assert q["speaker_labels"] == "true"
    assert q["max_speakers"] == "2"
    assert q["prompt"] == "Kitchen commands."
    assert q["mode"] == "balanced"
    for unset in ("format_turns", "min_turn_silence", "max_turn_silence", "vad_threshold"):
        assert unset not in q  # the model's own default applies
    assert "end_of_turn_confidence_threshold" not in q


def test_a_reload_sends_keyterms_and_endpointing_live_and_leaves_the_model_for_later() -> None:
    new = StreamParams(
        16000, "universal-streaming-multilingual", True, 0.5, 400, 1600, keyterms_prompt=("a",)
    )
    live, later = live_changes(US, new)
    assert live == {
        "end_of_turn_confidence_threshold": 0.5,
        "max_turn_silence": 1600,
        "keyterms_prompt": ["a"],
    }
    assert later == ["speech_model"]
    cleared, _ = live_changes(new, StreamParams(16000, new.speech_model, True, 0.5, 400, 1600))
    assert cleared == {"keyterms_prompt": []}  # [] clears the terms on the server


def turn_json(order: int, text: str, *, end: bool, formatted: bool, word_end: int = 900) -> str:
    words = [
        {"text": w, "start": 100, "end": word_end, "confidence": 0.9, "word_is_final": True}
        for w in text.split()
    ]
    return json.dumps(
        {
            "type": "Turn",
            "turn_order": order,
            "turn_is_formatted": formatted,
            "end_of_turn": end,
            "transcript": text,
            "end_of_turn_confidence": 0.8,
            "words": words,
        }
    )


def test_the_stream_turns_v3_messages_into_neutral_events_with_the_final_turn_rule() -> None:
    stream = AssemblyAIProvider("wss://x/v3/ws", US).open_stream()  # format_turns on
    begin = json.dumps(
        {"type": "Begin", "id": "s-1", "expires_at": 1700000000, "configuration": {"model": "m"}}
    )
    assert stream.receive(begin, sent_ms=0) == [SessionOpened("s-1", 1700000000, "m")]
    partial = stream.receive(turn_json(0, "turn on", end=False, formatted=False), sent_ms=1000)
    assert [type(e) for e in partial] == [TurnUpdate]
    assert isinstance(partial[0], TurnUpdate)
    assert not partial[0].final
    assert stream.turn_open
    # with format_turns the unformatted end of turn is not final yet; the formatted one is
    unformatted = stream.receive(turn_json(0, "turn on", end=True, formatted=False), sent_ms=1000)
    assert [e.final for e in unformatted if isinstance(e, TurnUpdate)] == [False]
    final = stream.receive(turn_json(0, "Turn on.", end=True, formatted=True), sent_ms=1000)
    assert len(final) == 1
    assert isinstance(final[0], TurnUpdate)
    assert final[0].final
    assert final[0].turn.transcript == "Turn on."
    assert not stream.turn_open
    assert stream.receive(turn_json(0, "Turn on.", end=True, formatted=True), sent_ms=1000) == []
    # words after the audio sent cannot be real
    skipped = stream.receive(
        turn_json(1, "late", end=False, formatted=False, word_end=9000), sent_ms=1000
    )
    assert [type(e) for e in skipped] == [MessageSkipped]
    end = json.dumps(
        {"type": "Termination", "audio_duration_seconds": 7, "session_duration_seconds": 8}
    )
    assert stream.receive(end, sent_ms=1000) == [SessionTerminated(8, 7)]
    error = json.dumps({"type": "Error", "error_code": 3005, "error": "Server error"})
    assert stream.receive(error, sent_ms=1000) == [ServerFailed(3005, "Server error")]
    assert stream.receive(json.dumps({"type": "LLMGatewayResponse"}), sent_ms=1000) == []


def test_audio_goes_as_raw_pcm_in_binary_frames() -> None:
    provider = AssemblyAIProvider("wss://x/v3/ws", US)
    assert provider.open_stream().encode_audio(b"\x01\x02") == b"\x01\x02"
    assert provider.sample_rate == 16000
    assert provider.model == "universal-streaming-english"
