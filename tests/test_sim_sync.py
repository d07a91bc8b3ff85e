"""The Sync API simulator's checks (pure): what the real API refuses, it refuses with the
documented status and error_code; a clip with speech gets the script's next line, a silent
one nothing; fault specs."""

from __future__ import annotations

import json

import pytest

from edgecap.sim.sync_api import SyncFault, SyncRequestRecord, parse_sync_fault
from edgecap.sim.sync_api.checks import LIVE_PATH, WHOLE_PATH, check_request, transcribe
from edgecap.sim.turns import Script
from tests.sim_helpers import burst

pytestmark = pytest.mark.unit

CT = "multipart/form-data; boundary=B"


def body(parts: list[tuple[str, str, bytes]]) -> bytes:
    out = b""
    for name, kind, content in parts:
        out += (
            (
                f'--B\r\nContent-Disposition: form-data; name="{name}"\r\n'
                f"Content-Type: {kind}\r\n\r\n"
            ).encode()
            + content
            + b"\r\n"
        )
    return out + b"--B--\r\n"


def config(rate: int = 16000, channels: int = 1) -> tuple[str, str, bytes]:
    data = {"sample_rate": rate, "channels": channels}
    return ("config", "application/json", json.dumps(data).encode())


def check(path: str, parts: list[tuple[str, str, bytes]], model: str | None = "m") -> object:
    record = SyncRequestRecord(path=path, way_in="api_key", model=model, chunked=False)
    answer, _, _ = check_request(record, CT, body(parts))
    return None if answer is None else (answer.status, answer.body.get("error_code"))


@pytest.mark.parametrize(
    ("path", "parts", "model", "expected"),
    [
        (LIVE_PATH, [config(), ("audio", "audio/pcm", bytes(3200))], "m", None),
        (LIVE_PATH, [config(), ("audio", "audio/pcm", bytes(3200))], None, (400, "bad_request")),
        (LIVE_PATH, [("audio", "audio/pcm", bytes(3200)), config()], "m", (400, "bad_request")),
        (WHOLE_PATH, [("audio", "audio/pcm", bytes(3200)), config()], "m", None),
        (WHOLE_PATH, [("audio", "audio/pcm", bytes(3200))], "m", (400, "bad_audio")),
        (
            LIVE_PATH,
            [config(), ("audio", "audio/wav", bytes(3200))],
            "m",
            (415, "unsupported_media_type"),
        ),
        (
            LIVE_PATH,
            [config(11025), ("audio", "audio/pcm", bytes(3200))],
            "m",
            (415, "unsupported_media_type"),
        ),
        (LIVE_PATH, [config(), ("audio", "audio/pcm", bytes(3201))], "m", (400, "bad_audio")),
        (LIVE_PATH, [config(), ("audio", "audio/pcm", bytes(2400))], "m", (400, "audio_too_short")),
        (
            LIVE_PATH,
            [config(), ("audio", "audio/pcm", bytes(32000 * 121))],
            "m",
            (413, "audio_too_large"),
        ),
        (LIVE_PATH, [config()], "m", (400, "bad_request")),
    ],
)
def test_refusals_follow_the_documented_table(
    path: str, parts: list[tuple[str, str, bytes]], model: str | None, expected: object
) -> None:
    assert check(path, parts, model) == expected


def test_speech_gets_the_next_line_and_silence_gets_nothing() -> None:
    script = Script(["turn on the light"])
    silent = transcribe(script, bytes(16000), 16000, "s")
    assert silent["text"] == ""
    assert script.remaining == ["turn on the light"]  # not spent on silence
    spoken = transcribe(script, burst(1.0, 0.5), 16000, "s")
    assert spoken["text"] == "turn on the light"
    assert [w["text"] for w in spoken["words"]] == ["turn", "on", "the", "light"]
    assert spoken["words"][-1]["end"] <= 1000 + 20  # inside the voiced part
    assert spoken["audio_duration_ms"] == 1500


def test_fault_specs() -> None:
    assert parse_sync_fault("drop") == SyncFault("drop")
    assert parse_sync_fault("429:2*3") == SyncFault("status", 429, 2.0, 3)
    assert parse_sync_fault(" HANG ") == SyncFault("hang")
    with pytest.raises(ValueError, match="bad sync fault"):
        parse_sync_fault("close:1011")
