"""Helpers for the OpenAI Realtime simulator tests: 24 kHz audio and a small client."""

from __future__ import annotations

import base64
import json
import sys
from array import array
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from edgecap.sim.openai import OpenAIRealtimeSimulator
from tests.harness import silence, tone

RATE = 24000
API_KEY = "sk-test-key"
CREDENTIAL = "team-credential"
APPEND_BYTES = 4800  # 100 ms of 24 kHz PCM16

Event = dict[str, Any]


def upsample_16k_to_24k(pcm: bytes) -> bytes:
    """16 kHz PCM16 to 24 kHz by linear interpolation (test data only: exact enough for
    an energy segmenter, no library needed). Output sample j sits at input 2j/3."""
    src = array("h", pcm)
    if sys.byteorder == "big":
        src.byteswap()
    out = array("h")
    for j in range(len(src) * 3 // 2):
        pos, frac = divmod(2 * j, 3)
        nxt = src[pos + 1] if pos + 1 < len(src) else src[pos]
        out.append(round(src[pos] + (nxt - src[pos]) * frac / 3))
    if sys.byteorder == "big":
        out.byteswap()
    return out.tobytes()


def speech(seconds: float, freq: float = 300.0) -> bytes:
    """A 24 kHz tone loud enough to count as speech."""
    return tone(seconds, freq, amplitude=0.3, rate=RATE)


def quiet(seconds: float) -> bytes:
    return silence(seconds, rate=RATE)


def session_update(
    model: str = "gpt-4o-transcribe",
    *,
    turn_detection: object = "server_vad",
    rate: int = RATE,
    **transcription: object,
) -> Event:
    """A transcription ``session.update`` (``turn_detection``: "server_vad", None or a dict;
    "omit" leaves the key out)."""
    audio_input: dict[str, Any] = {
        "format": {"type": "audio/pcm", "rate": rate},
        "transcription": {"model": model, **transcription},
        "noise_reduction": {"type": "near_field"},
    }
    if turn_detection == "server_vad":
        audio_input["turn_detection"] = {
            "type": "server_vad",
            "threshold": 0.5,
            "prefix_padding_ms": 300,
            "silence_duration_ms": 500,
        }
    elif turn_detection != "omit":
        audio_input["turn_detection"] = turn_detection
    return {
        "type": "session.update",
        "event_id": "evt_client_1",
        "session": {"type": "transcription", "audio": {"input": audio_input}},
    }


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def open_session(sim: OpenAIRealtimeSimulator, key: str = API_KEY, url: str | None = None) -> Any:
    """``connect(...)`` to the transcription URL with ``Authorization: Bearer key``."""
    return connect(url or sim.url, additional_headers=bearer(key))


async def recv_event(ws: ClientConnection) -> Event:
    message = await ws.recv()
    assert isinstance(message, str), "the server sends JSON text only"
    event = json.loads(message)
    assert isinstance(event, dict)
    return event


async def recv_until(
    ws: ClientConnection, stop: Callable[[Event], bool], count: int = 1
) -> list[Event]:
    """Every event received until ``count`` of them satisfied ``stop`` (included)."""
    events: list[Event] = []
    matched = 0
    while matched < count:
        event = await recv_event(ws)
        events.append(event)
        matched += stop(event)
    return events


def of_type(kind: str) -> Callable[[Event], bool]:
    return lambda event: event["type"] == kind


async def configure(ws: ClientConnection, update: Event) -> list[Event]:
    """Read session.created, send ``update``, return events through session.updated/error."""
    created = await recv_event(ws)
    assert created["type"] == "session.created", created
    await ws.send(json.dumps(update))
    return [created, *await recv_until(ws, lambda e: e["type"] in ("session.updated", "error"))]


async def append(ws: ClientConnection, pcm: bytes, size: int = APPEND_BYTES) -> None:
    """Send ``pcm`` as ``input_audio_buffer.append`` events of ``size`` bytes."""
    for offset in range(0, len(pcm), size):
        chunk = base64.b64encode(pcm[offset : offset + size]).decode()
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
