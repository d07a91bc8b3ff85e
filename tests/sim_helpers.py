"""Helpers for the simulator tests: synthetic audio and a small v3 client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from edgecap.engine.session import StreamingSession
from edgecap.engine.states import CloseReason
from edgecap.engine.types import SessionResult
from edgecap.sim import StreamingSimulator
from tests.harness import silence, tone

RATE = 16000
FRAME_BYTES = 1600  # 50 ms of 16 kHz PCM16
API_KEY = "test-api-key"


def burst(speech_s: float, pause_s: float, freq: float = 300.0) -> bytes:
    """A tone burst (loud enough to count as speech) followed by silence."""
    return tone(speech_s, freq, amplitude=0.3) + silence(pause_s)


def frames(pcm: bytes, size: int = FRAME_BYTES) -> Iterator[bytes]:
    """Whole frames of `size` bytes (a short tail is padded with silence)."""
    for offset in range(0, len(pcm), size):
        chunk = pcm[offset : offset + size]
        yield chunk + bytes(size - len(chunk))


def _query(token: str | None, params: dict[str, Any]) -> str:
    query: dict[str, Any] = {"sample_rate": RATE}
    if token is not None:
        query["token"] = token
    query.update({k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()})
    return urlencode(query)


def ws_url(sim: StreamingSimulator, token: str | None = None, **params: Any) -> str:
    """The streaming URL with `sample_rate=16000` and the given parameters."""
    return f"{sim.url}?{_query(token, params)}"


def proxy_ws_url(sim: StreamingSimulator, **params: Any) -> str:
    """The KeyPool-compatible proxy path's URL with `sample_rate=16000` and `params`."""
    return f"{sim.proxy_url}?{_query(None, params)}"


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    message = await ws.recv()
    assert isinstance(message, str), "the server sends JSON text frames only"
    decoded = json.loads(message)
    assert isinstance(decoded, dict)
    return decoded


async def drain(ws: ClientConnection) -> list[dict[str, Any]]:
    """Every message until the server closes the connection."""
    messages: list[dict[str, Any]] = []
    try:
        while True:
            messages.append(await recv_json(ws))
    except ConnectionClosed:
        return messages


async def send_audio(ws: ClientConnection, pcm: bytes) -> None:
    for frame in frames(pcm):
        await ws.send(frame)


async def run_until_stopped(session: StreamingSession, stop: asyncio.Event) -> SessionResult:
    """Run a session until the server ends it or `stop` is set (then it is closed as the
    engine closes it when the daemon stops: drained, Terminate, Termination awaited)."""
    stopped = asyncio.ensure_future(stop.wait())
    stopped.add_done_callback(lambda _: session.request_close(CloseReason.STOP, drain=True))
    try:
        return await session.run()
    finally:
        stopped.cancel()
