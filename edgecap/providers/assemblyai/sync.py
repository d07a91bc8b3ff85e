"""AssemblyAI's Sync API as a protocol object (no I/O): the request of one utterance, the
response read into a provider-neutral turn, a refusal classified.

One POST per utterance (80 ms to 120 s, at most 40 MB), `multipart/form-data` with a
`config` part (JSON: `sample_rate`, `channels`, options) and an `audio` part (`audio/pcm`,
raw S16LE), header `X-AAI-Model`. `POST /v1/transcribe/live` takes the body with
`Transfer-Encoding: chunked` while the audio is still being captured, provided the `config`
part comes first, which is the order built here; `/v1/transcribe` takes the same body at
once. The answer is JSON: `text`, `confidence`, `words` (`text`, `confidence`, and `start`
/`end` in ms from the start of the audio when `timestamps` is asked for; a word that could
not be aligned has none), `audio_duration_ms`, `session_id`, `request_time_ms`. Errors
carry `error_code` + `message` (audio, capacity, inference) or `detail` (auth, rate limit)
(assemblyai.com/docs/sync-stt: transcribe-a-short-audio-file, audio-requirements,
error-handling, api-reference/sync-api/transcribe-live).

The way in: the API key itself in `Authorization` (no Bearer), or, through the team's token
service or KeyPool-style proxy, `Authorization: Bearer <device credential>` on
`{base}/sync`, which forwards the body with the team key.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from edgecap.providers.assemblyai.limits import MAX_TEXT_CHARS, MAX_WORDS, line, unicode_safe
from edgecap.providers.failures import Classified, ErrorClass
from edgecap.providers.turn import Turn, Word

SYNC_HOST = "sync.assemblyai.com"
SYNC_LIVE_URL = f"https://{SYNC_HOST}/v1/transcribe/live"
SYNC_TOKEN_SERVICE_PATH = "/sync"  # noqa: S105 - a URL path
"""Appended to the token-service base (`.../v1/assemblyai`): `POST .../v1/assemblyai/sync`."""
SYNC_DEFAULT_MODEL = "universal-3-5-pro"
MIN_AUDIO_MS = 80
MAX_AUDIO_MS = 120_000
MAX_BODY_BYTES = 40 * 1000 * 1000
"""40 MB: far above 120 s of 16-bit mono PCM at 48 kHz (11.5 MB)."""
SyncWayIn = Literal["api_key", "bearer"]


class Disposition(StrEnum):
    RETRY = "retry"  # keep the utterance, try again after a back-off (Retry-After honoured)
    DROP = "drop"  # the request itself is wrong: retrying cannot help; report and drop it


@dataclass(frozen=True, slots=True)
class SyncParams:
    sample_rate: int
    channels: int = 1
    timestamps: bool = True
    language_code: str | None = None
    prompt: str | None = None
    keyterms: tuple[str, ...] = ()

    def config(self) -> dict[str, Any]:
        """The `config` part: every option explicit, unset ones left out."""
        out: dict[str, Any] = {
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "timestamps": self.timestamps,
        }
        if self.language_code is not None:
            out["language_code"] = self.language_code
        if self.prompt is not None:
            out["prompt"] = self.prompt
        if self.keyterms:
            out["keyterms_prompt"] = list(self.keyterms)
        return out


@dataclass(frozen=True, slots=True)
class SyncTranscript:
    """A successful answer, read and bounded."""

    text: str
    words: tuple[Word, ...]
    confidence: float | None
    audio_duration_ms: int | None
    session_id: str | None
    request_time_ms: int | None
    truncated: bool = False

    def turn(self, turn_order: int) -> Turn:
        return Turn(
            turn_order=turn_order,
            end_of_turn=True,
            turn_is_formatted=True,
            transcript=self.text,
            end_of_turn_confidence=1.0,
            words=self.words,
            audio_start_ms=0,
            audio_end_ms=self.audio_duration_ms,
            truncated=self.truncated,
        )


@dataclass(frozen=True, slots=True)
class SyncFailure:
    classified: Classified
    disposition: Disposition
    retry_after: float | None = None
    """Seconds from the `Retry-After` header (429, 503), when it gave a number."""


class SyncProtocolError(ValueError):
    """A 200 answer that is not a transcript (not JSON, no `text`)."""


@dataclass(frozen=True, slots=True)
class SyncProtocol:
    url: str
    params: SyncParams
    model: str = SYNC_DEFAULT_MODEL
    way_in: SyncWayIn = "api_key"

    @property
    def whole_url(self) -> str:
        """Where an utterance already captured in full goes (a retry from the pending spool):
        the Sync API's `/v1/transcribe` beside `/v1/transcribe/live`; through a token
        service its one `.../sync` path."""
        live = "/transcribe/live"
        return self.url[: -len("/live")] if self.url.rstrip("/").endswith(live) else self.url

    def headers(self, credential: str, boundary: str) -> dict[str, str]:
        auth = credential if self.way_in == "api_key" else f"Bearer {credential}"
        return {
            "Authorization": auth,
            "X-AAI-Model": self.model,
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        }

    def body_head(self, boundary: str) -> bytes:
        """The `config` part, then the head of the `audio` part (the PCM follows)."""
        config = json.dumps(self.params.config(), ensure_ascii=False, separators=(",", ":"))
        return (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="config"\r\n'
            "Content-Type: application/json\r\n\r\n"
            f"{config}\r\n"
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="audio"; filename="utterance.pcm"\r\n'
            "Content-Type: audio/pcm\r\n\r\n"
        ).encode()

    @staticmethod
    def body_tail(boundary: str) -> bytes:
        return f"\r\n--{boundary}--\r\n".encode()

    def read(self, status: int, body: bytes, retry_after: str | None) -> SyncTranscript:
        """The answer to one POST: the transcript, or SyncRefused / SyncProtocolError."""
        if status != 200:
            raise SyncRefused(classify_status(status, body, retry_after))
        return parse_transcript(body)


class SyncRefused(Exception):
    def __init__(self, failure: SyncFailure) -> None:
        super().__init__(failure.classified.line())
        self.failure = failure


def _error_text(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return line(body.decode("utf-8", "replace").strip(), 200)
    if not isinstance(data, dict):
        return ""
    code, message, detail = data.get("error_code"), data.get("message"), data.get("detail")
    parts = [str(p) for p in (code, message) if isinstance(p, str) and p]
    if not parts and detail is not None:
        parts = [detail if isinstance(detail, str) else json.dumps(detail)]
    return line(": ".join(parts), 200)


def retry_after_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # an HTTP date: the back-off's own delay applies
    return min(seconds, 3600.0) if math.isfinite(seconds) and seconds >= 0 else None


_DROP_HINTS = {
    400: "the Sync API refused the request (malformed audio or config); this utterance is "
    "dropped; if it repeats, this is an edgecap bug: report it with the log",
    413: "the utterance is over the Sync API's 120 s / 40 MB; it is dropped (edgecap splits "
    "at 120 s: report it with the log)",
    415: "the Sync API does not take this audio (16-bit PCM at 8000, 16000, 22050, 24000, "
    "32000, 44100 or 48000 Hz): check audio.sample_rate; the utterance is dropped",
}


def classify_status(status: int, body: bytes = b"", retry_after: str | None = None) -> SyncFailure:
    """An HTTP refusal of one POST (from AssemblyAI or the token service in between)."""
    reason = _error_text(body)
    wait = retry_after_seconds(retry_after)

    def f(cls: ErrorClass, hint: str, how: Disposition = Disposition.RETRY) -> SyncFailure:
        return SyncFailure(Classified(cls, status, reason, hint), how, wait)

    if status in _DROP_HINTS:
        return f(ErrorClass.CLIENT_BUG, _DROP_HINTS[status], Disposition.DROP)
    if status in (401, 403):
        return f(
            ErrorClass.AUTH,
            "the credential was refused (the API key in auth.api_key_file, or the device "
            "credential at the token service); utterances wait in the pending spool and are "
            "retried slowly: fix the credential",
        )
    if status == 404:
        return f(
            ErrorClass.CONFIG,
            "no Sync API at this URL: check sync.url (or auth.token_service_url, which must "
            "serve POST .../sync); utterances wait in the pending spool",
        )
    if status == 429:
        return f(
            ErrorClass.THROTTLED,
            "the Sync API's rate limit (per account, all keys share it) was hit; retrying "
            "after Retry-After",
        )
    if status == 503:
        return f(ErrorClass.THROTTLED, "the Sync API is over capacity; retrying after a back-off")
    if status >= 500:
        return f(ErrorClass.TRANSIENT, "a server error; retrying after a back-off")
    return f(
        ErrorClass.CLIENT_BUG,
        "an unexpected refusal; the utterance is dropped; please report it with the log",
        Disposition.DROP,
    )


def _int(value: object, high: float) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or not 0 <= value <= high:
        return None
    return int(value)


def _confidence(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and 0 <= value <= 1 else None


def _words(raw: object) -> tuple[tuple[Word, ...], bool]:
    """Words with times (a word the server could not align has none: left out)."""
    if not isinstance(raw, list):
        return (), False
    words: list[Word] = []
    for item in raw[:MAX_WORDS]:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            continue
        start, end = _int(item.get("start"), MAX_AUDIO_MS), _int(item.get("end"), MAX_AUDIO_MS)
        if start is None or end is None or end < start:
            continue
        text = unicode_safe(item["text"][:200])[0]
        conf = _confidence(item.get("confidence"))
        words.append(Word(text, start, end, 0.0 if conf is None else conf, is_final=True))
    return tuple(words), len(raw) > MAX_WORDS


def parse_transcript(body: bytes) -> SyncTranscript:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise SyncProtocolError(f"the answer is not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise SyncProtocolError("the answer has no text")
    text, _ = unicode_safe(data["text"])
    words, cut = _words(data.get("words"))
    session = data.get("session_id")
    return SyncTranscript(
        text=text[:MAX_TEXT_CHARS],
        words=words,
        confidence=_confidence(data.get("confidence")),
        audio_duration_ms=_int(data.get("audio_duration_ms"), MAX_AUDIO_MS * 2),
        session_id=line(session, 128) if isinstance(session, str) else None,
        request_time_ms=_int(data.get("request_time_ms"), 3_600_000),
        truncated=cut or len(text) > MAX_TEXT_CHARS,
    )


__all__ = [
    "MAX_AUDIO_MS",
    "MAX_BODY_BYTES",
    "MIN_AUDIO_MS",
    "SYNC_DEFAULT_MODEL",
    "SYNC_HOST",
    "SYNC_LIVE_URL",
    "SYNC_TOKEN_SERVICE_PATH",
    "Disposition",
    "SyncFailure",
    "SyncParams",
    "SyncProtocol",
    "SyncProtocolError",
    "SyncRefused",
    "SyncTranscript",
    "SyncWayIn",
    "classify_status",
    "parse_transcript",
    "retry_after_seconds",
]
