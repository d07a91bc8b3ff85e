"""The Sync API protocol object: the multipart body (config before audio, for the live
upload), the headers per way in, the answer read into a neutral turn, refusals classified
(400/413/415 dropped, 401/403/429/5xx kept and retried, Retry-After read)."""

from __future__ import annotations

import json

import pytest

from edgecap.providers.assemblyai.sync import (
    Disposition,
    SyncParams,
    SyncProtocol,
    SyncProtocolError,
    SyncRefused,
    classify_status,
    parse_transcript,
)
from edgecap.providers.failures import ErrorClass

pytestmark = pytest.mark.unit

URL = "https://sync.assemblyai.com/v1/transcribe/live"


def body_of(p: SyncProtocol, pcm: bytes) -> bytes:
    return p.body_head("BOUND") + pcm + p.body_tail("BOUND")


def test_the_body_is_multipart_with_the_config_first_and_raw_pcm() -> None:
    p = SyncProtocol(URL, SyncParams(16000, keyterms=("edgecap",), language_code="en"))
    body = body_of(p, b"\x01\x02" * 4)
    parts = body.split(b"--BOUND")
    assert parts[0] == b""
    assert parts[-1] == b"--\r\n"
    config_part, audio_part = parts[1], parts[2]
    assert b'name="config"' in config_part
    config = json.loads(config_part.split(b"\r\n\r\n", 1)[1].rstrip(b"\r\n"))
    assert config == {
        "sample_rate": 16000,
        "channels": 1,
        "timestamps": True,
        "language_code": "en",
        "keyterms_prompt": ["edgecap"],
    }
    head, pcm = audio_part.split(b"\r\n\r\n", 1)
    assert b'name="audio"' in head
    assert b"Content-Type: audio/pcm" in head
    assert pcm == b"\x01\x02" * 4 + b"\r\n"


def test_headers_per_way_in() -> None:
    key = SyncProtocol(URL, SyncParams(16000)).headers("k-123", "B")
    assert key["Authorization"] == "k-123"  # raw, no Bearer
    assert key["X-AAI-Model"] == "universal-3-5-pro"
    assert key["Content-Type"] == "multipart/form-data; boundary=B"
    service = SyncProtocol("https://kp/v1/assemblyai/sync", SyncParams(16000), way_in="bearer")
    assert service.headers("nxkp-1", "B")["Authorization"] == "Bearer nxkp-1"


def test_the_answer_becomes_a_neutral_turn_with_word_times() -> None:
    answer = {
        "text": "Turn on the kitchen light.",
        "confidence": 0.97,
        "audio_duration_ms": 2100,
        "session_id": "s-1",
        "request_time_ms": 140,
        "words": [
            {"text": "Turn", "start": 400, "end": 600, "confidence": 0.99},
            {"text": "on", "confidence": 0.9},  # not aligned: no times, left out
            {"text": "light.", "start": 1500, "end": 1900, "confidence": 0.95},
        ],
    }
    t = parse_transcript(json.dumps(answer).encode())
    assert t.session_id == "s-1"
    assert t.audio_duration_ms == 2100
    assert t.request_time_ms == 140
    turn = t.turn(7)
    assert turn.transcript == "Turn on the kitchen light."
    assert turn.turn_order == 7
    assert turn.end_of_turn
    assert turn.turn_is_formatted
    assert [(w.text, w.start_ms, w.end_ms) for w in turn.words] == [
        ("Turn", 400, 600),
        ("light.", 1500, 1900),
    ]


@pytest.mark.parametrize("body", [b"<html>", b"[]", b'{"words": []}'])
def test_a_200_that_is_not_a_transcript_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(SyncProtocolError):
        parse_transcript(body)


@pytest.mark.parametrize(
    ("status", "cls", "how"),
    [
        (400, ErrorClass.CLIENT_BUG, Disposition.DROP),
        (413, ErrorClass.CLIENT_BUG, Disposition.DROP),
        (415, ErrorClass.CLIENT_BUG, Disposition.DROP),
        (401, ErrorClass.AUTH, Disposition.RETRY),
        (403, ErrorClass.AUTH, Disposition.RETRY),
        (404, ErrorClass.CONFIG, Disposition.RETRY),
        (429, ErrorClass.THROTTLED, Disposition.RETRY),
        (503, ErrorClass.THROTTLED, Disposition.RETRY),
        (500, ErrorClass.TRANSIENT, Disposition.RETRY),
        (504, ErrorClass.TRANSIENT, Disposition.RETRY),
        (422, ErrorClass.CLIENT_BUG, Disposition.DROP),
    ],
)
def test_refusals_are_classified(status: int, cls: ErrorClass, how: Disposition) -> None:
    f = classify_status(status, b'{"error_code": "bad_audio", "message": "misaligned PCM"}')
    assert (f.classified.error_class, f.disposition) == (cls, how)
    line = f.classified.line()
    assert line.startswith(f"HTTP {status} 'bad_audio: misaligned PCM': ")
    assert "\n" not in line


def test_retry_after_is_read_and_detail_bodies_are_shown() -> None:
    p = SyncProtocol(URL, SyncParams(16000))
    with pytest.raises(SyncRefused) as caught:
        p.read(429, b'{"detail": "Too Many Requests"}', "7")
    failure = caught.value.failure
    assert failure.retry_after == 7
    assert failure.classified.reason == "Too Many Requests"
    assert classify_status(429, b"", "Wed, 21 Oct 2026 07:28:00 GMT").retry_after is None
    assert p.read(200, b'{"text": "hi"}', None).text == "hi"


def test_a_whole_clip_goes_to_transcribe_beside_the_live_path() -> None:
    assert SyncProtocol(URL, SyncParams(16000)).whole_url == (
        "https://sync.assemblyai.com/v1/transcribe"
    )
    service = "https://kp.example.com/v1/assemblyai/sync"
    assert SyncProtocol(service, SyncParams(16000)).whole_url == service
