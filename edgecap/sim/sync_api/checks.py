"""What the Sync API simulator checks and answers (pure: a request's head and body in, a
status and JSON out).

It checks what the real API documents: `X-AAI-Model`, the credential (the API key raw in
`Authorization` on `/v1/transcribe[/live]`; `Bearer <device credential>` on the token
service's `/v1/assemblyai/sync`), multipart/form-data with an `audio` part (`audio/pcm`
needs `sample_rate` and `channels` in a `config` part, which on `/live` must come first),
16-bit PCM aligned to whole samples, 80 ms to 120 s, 40 MB. It does no recognition: a clip
with speech energy gets the next utterance of the script (`sim.turns.Script`, shared with
the streaming simulator), its words spread over the voiced part; a silent clip gets "".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from edgecap.sim.segmenter import EnergySegmenter
from edgecap.sim.turns import Script, split_words, spread_words

LIVE_PATH = "/v1/transcribe/live"
WHOLE_PATH = "/v1/transcribe"
SERVICE_PATH = "/v1/assemblyai/sync"
SAMPLE_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
MIN_MS, MAX_MS, MAX_BYTES = 80, 120_000, 40 * 1000 * 1000
FaultKind = Literal["drop", "refuse", "hang", "status"]


@dataclass(frozen=True, slots=True)
class SyncFault:
    """What the next request(s) meet: `drop` (the connection is cut mid-upload), `refuse`
    (closed as soon as it opens), `hang` (no answer), or an HTTP `status` (429/5xx/401...,
    `retry_after` seconds in the header)."""

    kind: FaultKind
    status: int = 0
    retry_after: float | None = None
    count: int = 1


_FAULT = re.compile(r"^(drop|refuse|hang|\d{3})(?::(\d+(?:\.\d+)?))?(?:\*(\d+))?$")


def parse_sync_fault(spec: str) -> SyncFault:
    """`drop`, `refuse`, `hang`, `503`, `429:2` (Retry-After 2 s), any of them `*N` times."""
    m = _FAULT.match(spec.strip().lower())
    if m is None:
        raise ValueError(
            f"bad sync fault {spec!r}: use drop, refuse, hang or a status such as 503 or "
            "429:2 (Retry-After), optionally *N"
        )
    kind, after, count = m.group(1), m.group(2), int(m.group(3) or 1)
    wait = float(after) if after else None
    if kind.isdigit():
        return SyncFault("status", int(kind), wait, count)
    return SyncFault(kind, 0, wait, count)  # type: ignore[arg-type]


@dataclass
class SyncRequestRecord:
    path: str
    way_in: str  # "api_key", "service" or "refused"
    model: str | None
    chunked: bool
    config: dict[str, Any] | None = None
    audio_ms: float = 0.0
    status: int = 0
    text: str = ""
    fault: str | None = None
    body_done_at: float | None = None
    """Monotonic time the last byte of the body arrived."""
    parts: list[str] = field(default_factory=list)
    index: int = 0
    """Its place among the simulator's requests (0, 1, ...)."""
    received_at: float = 0.0
    """Monotonic time the request's head arrived."""
    answered_at: float | None = None
    """Monotonic time the answer was written (None: none was: drop, refuse, hang)."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]


def _error(status: int, code: str | None, message: str) -> Answer:
    if code is None:
        return Answer(status, {"detail": message})
    return Answer(status, {"error_code": code, "message": message})


def check_auth(path: str, authorization: str | None, api_key: str, credential: str) -> str | None:
    """The way in, or None when the credential is missing or wrong."""
    if path == SERVICE_PATH:
        return "service" if authorization == f"Bearer {credential}" else None
    return "api_key" if authorization == api_key else None


def split_multipart(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]] | None:
    """The parts (headers, content) of a multipart/form-data body; None when it is not."""
    m = re.match(r"multipart/form-data;\s*boundary=\"?([^\";]+)\"?", content_type, re.I)
    if m is None:
        return None
    delimiter = b"--" + m.group(1).encode()
    chunks = body.split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        return None
    parts: list[tuple[dict[str, str], bytes]] = []
    for chunk in chunks[1:-1]:
        head, sep, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            return None
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append((headers, content.removesuffix(b"\r\n")))
    return parts


def _name(headers: dict[str, str]) -> str:
    m = re.search(r'name="([^"]*)"', headers.get("content-disposition", ""))
    return m.group(1) if m else ""


def check_request(
    record: SyncRequestRecord, content_type: str, body: bytes
) -> tuple[Answer | None, bytes, int]:
    """An error answer, or (None, the PCM, its sample rate)."""
    if not record.model:
        return _error(400, "bad_request", "the X-AAI-Model header is required"), b"", 0
    if len(body) > MAX_BYTES:
        return _error(413, "audio_too_large", "file exceeds 40 MB"), b"", 0
    parts = split_multipart(content_type, body)
    if parts is None:
        return _error(400, "bad_request", "expected multipart/form-data"), b"", 0
    names = [_name(h) for h, _ in parts]
    record.parts = names
    if "audio" not in names:
        return _error(400, "bad_request", "missing audio part"), b"", 0
    if record.path == LIVE_PATH and (
        "config" not in names or names.index("config") > names.index("audio")
    ):
        return _error(400, "bad_request", "config must come before audio on /live"), b"", 0
    config: dict[str, Any] = {}
    if "config" in names:
        try:
            config = json.loads(parts[names.index("config")][1])
        except ValueError:
            return _error(400, "bad_request", "invalid config JSON"), b"", 0
    record.config = config
    headers, audio = parts[names.index("audio")]
    kind = headers.get("content-type", "")
    if kind != "audio/pcm":
        return _error(415, "unsupported_media_type", f"unsupported format {kind!r}"), b"", 0
    rate, channels = config.get("sample_rate"), config.get("channels")
    if not isinstance(rate, int) or not isinstance(channels, int):
        return _error(400, "bad_audio", "sample_rate and channels are required for PCM"), b"", 0
    if rate not in SAMPLE_RATES or channels not in (1, 2):
        return _error(415, "unsupported_media_type", f"unsupported sample rate {rate}"), b"", 0
    if len(audio) % (2 * channels):
        return _error(400, "bad_audio", "misaligned PCM"), b"", 0
    ms = len(audio) / (2 * channels) / rate * 1000
    record.audio_ms = ms
    if ms < MIN_MS:
        return _error(400, "audio_too_short", f"audio {ms:.0f} ms is below 80 ms"), b"", 0
    if ms > MAX_MS:
        return _error(413, "audio_too_large", f"audio duration {ms:.0f} ms exceeds limit"), b"", 0
    return None, audio if channels == 1 else audio[::2], rate


def transcribe(script: Script, pcm: bytes, rate: int, session_id: str) -> dict[str, Any]:
    """The answer for a clip: the script's next utterance if the clip has speech."""
    windows = EnergySegmenter(rate).feed(pcm)
    voiced = [(w.start_ms, w.end_ms) for w in windows if w.voiced]
    duration = round(len(pcm) / 2 / rate * 1000)
    if not voiced:
        text, words = "", []
    else:
        text = script.take()
        pairs = split_words(text)
        spans = spread_words([len(p[1]) for p in pairs], _merge(voiced))
        words = [
            {"text": word, "start": s, "end": e, "confidence": 0.95}
            for (word, _), (s, e) in zip(pairs, spans, strict=True)
        ]
    return {
        "text": text,
        "confidence": 0.95 if text else 0.0,
        "words": words,
        "audio_duration_ms": duration,
        "session_id": session_id,
        "request_time_ms": 5,
    }


def _merge(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in spans:
        if merged and start - merged[-1][1] <= 200:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged
