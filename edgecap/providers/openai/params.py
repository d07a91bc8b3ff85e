"""The settings of an OpenAI Realtime transcription session and its URL (no I/O).

A transcription session is opened at `wss://api.openai.com/v1/realtime?intent=transcription`
with no `model` in the URL (a model there makes a conversation session, which rejects the
transcription `session.update`); the transcription model and everything else goes into the
`session.update` sent right after the upgrade (`session_update`). Audio is PCM16 mono at
24 kHz, the only PCM rate the API takes.

Turn detection is either the server's (`ServerVad`: it commits the audio at each pause) or
none (`None`: edgecap commits at the end of local speech, `input_audio_buffer.commit`). The
realtime-only models (`gpt-live-transcribe`, `gpt-realtime-whisper`) have no server turn
detection, so they need `None`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

DEFAULT_URL = "wss://api.openai.com/v1/realtime?intent=transcription"
SAMPLE_RATE = 24_000
"""The only PCM rate the Realtime API accepts."""
OPENAI_HOST = "api.openai.com"

DEFAULT_MODEL = "gpt-live-transcribe"
MODELS = (
    "gpt-live-transcribe",
    "gpt-realtime-whisper",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-transcribe-diarize",
    "whisper-1",
)
REALTIME_ONLY = frozenset({"gpt-live-transcribe", "gpt-realtime-whisper"})
"""Models without server turn detection: the client commits each turn."""
NO_PROMPT = frozenset({"gpt-realtime-whisper"})
"""Models that do not take a prompt (peers drop it for this one)."""

NoiseReduction = Literal["near_field", "far_field"]
NOISE_REDUCTIONS: tuple[str, ...] = ("near_field", "far_field")

_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")
MAX_PROMPT_CHARS = 4_000


@dataclass(frozen=True, slots=True)
class ServerVad:
    """The server's voice detection commits each turn (`turn_detection.type = server_vad`)."""

    threshold: float = 0.5
    """0..1: the speech probability above which audio counts as speech."""
    prefix_padding_ms: int = 300
    """Audio kept before the detected start of speech."""
    silence_duration_ms: int = 500
    """Silence that ends a turn."""

    def problems(self) -> list[str]:
        out: list[str] = []
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0.0 <= t <= 1.0:
            out.append(f"turn_detection.threshold must be within 0..1, got {self.threshold!r}")
        if not _whole(self.prefix_padding_ms, 0, 10_000):
            out.append(
                "turn_detection.prefix_padding_ms must be a whole number of ms within "
                f"0..10000, got {self.prefix_padding_ms!r}"
            )
        if not _whole(self.silence_duration_ms, 1, 10_000):
            out.append(
                "turn_detection.silence_duration_ms must be a whole number of ms within "
                f"1..10000, got {self.silence_duration_ms!r}"
            )
        return out

    def wire(self) -> dict[str, Any]:
        return {
            "type": "server_vad",
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
        }


def _whole(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


@dataclass(frozen=True, slots=True)
class OpenAIParams:
    """One session's settings. None: not sent (the model's own default)."""

    url: str = DEFAULT_URL
    model: str = DEFAULT_MODEL
    language: str | None = None
    """ISO-639-1 ("en", "de"): better accuracy and latency than detection."""
    prompt: str | None = None
    noise_reduction: NoiseReduction | None = None
    turn_detection: ServerVad | None = None
    """None: edgecap commits at the end of local speech (required by `REALTIME_ONLY`)."""
    sample_rate: int = SAMPLE_RATE
    logprobs: bool = False
    input_rate: int = SAMPLE_RATE
    """The capture rate of the PCM handed to the session: other than 24000 (16000, which the
    voice gate needs) it is resampled to 24 kHz before it is sent."""
    """Ask for token log-probabilities: a final's confidence comes from them (else 1.0)."""

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def manual_commit(self) -> bool:
        """edgecap commits each turn (no server turn detection)."""
        return self.turn_detection is None

    def problems(self) -> list[str]:
        """Every setting the API would reject, one line each naming the setting."""
        out: list[str] = []
        if self.sample_rate != SAMPLE_RATE:
            out.append(
                f"sample_rate must be {SAMPLE_RATE} (OpenAI takes PCM at 24 kHz only), got "
                f"{self.sample_rate!r}"
            )
        if not isinstance(self.model, str) or not _MODEL_NAME.fullmatch(self.model):
            out.append(f"model must be a model name such as {DEFAULT_MODEL!r}, got {self.model!r}")
        elif self.model in REALTIME_ONLY and self.turn_detection is not None:
            out.append(
                f"turn_detection must be none with model {self.model!r}: it has no server turn "
                "detection (edgecap commits each turn at the end of local speech)"
            )
        if self.language is not None and (
            not isinstance(self.language, str) or not _LANGUAGE.fullmatch(self.language)
        ):
            out.append(
                f"language must be an ISO-639-1 code such as 'en', got {self.language!r:.40}"
            )
        if self.prompt is not None and (
            not isinstance(self.prompt, str) or len(self.prompt) > MAX_PROMPT_CHARS
        ):
            out.append(
                f"prompt must be text of at most {MAX_PROMPT_CHARS} characters, got "
                f"{self.prompt!r:.40}"
            )
        if self.noise_reduction is not None and self.noise_reduction not in NOISE_REDUCTIONS:
            out.append(
                f"noise_reduction must be near_field, far_field or none, got "
                f"{self.noise_reduction!r}"
            )
        if self.turn_detection is not None:
            out += self.turn_detection.problems()
        url_problem = check_url(self.url)
        if url_problem is not None:
            out.append(url_problem)
        return out

    def warnings(self) -> list[str]:
        """Settings that are accepted but have no effect."""
        if self.prompt and self.model in NO_PROMPT:
            return [f"prompt has no effect with model {self.model!r} (it takes no prompt)"]
        return []


def check_url(url: str) -> str | None:
    """What is wrong with `url` as a transcription endpoint (one line), or None."""
    try:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
    except ValueError as exc:
        return f"url is not a URL ({exc}): {url[:80]!r}"
    if parts.scheme not in ("wss", "ws") or not parts.hostname:
        return f"url must be a wss:// URL such as {DEFAULT_URL}, got {url[:80]!r}"
    if parts.hostname != OPENAI_HOST:
        return None  # a proxy, a compatible server or the simulator: its own rules
    if parts.scheme != "wss":
        return f"url must use wss:// for {OPENAI_HOST}, got {url[:80]!r}"
    if "model" in query:
        return (
            f"url carries model={query['model'][:40]!r}: for {OPENAI_HOST} that opens a "
            "conversation session, which rejects the transcription session.update; remove "
            f"it ({DEFAULT_URL}) and choose the transcription model with the model setting"
        )
    if query.get("intent") != "transcription":
        return f"url must carry intent=transcription for {OPENAI_HOST}: use {DEFAULT_URL}"
    return None


def session_config(params: OpenAIParams) -> dict[str, Any]:
    """The `session` object of `session.update`: every setting explicit (None is sent as
    null where the API clears with null, so a reused secret's defaults never leak in)."""
    transcription: dict[str, Any] = {"model": params.model}
    if params.language is not None:
        transcription["language"] = params.language
    if params.prompt is not None:
        transcription["prompt"] = params.prompt
    noise = None if params.noise_reduction is None else {"type": params.noise_reduction}
    turns = None if params.turn_detection is None else params.turn_detection.wire()
    session: dict[str, Any] = {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": params.sample_rate},
                "transcription": transcription,
                "noise_reduction": noise,
                "turn_detection": turns,
            }
        },
    }
    if params.logprobs:
        session["include"] = ["item.input_audio_transcription.logprobs"]
    return session


def session_update(params: OpenAIParams) -> str:
    return json.dumps(
        {"type": "session.update", "session": session_config(params)},
        ensure_ascii=False,
        allow_nan=False,
    )


LIVE_FIELDS = frozenset(
    {
        "language",
        "prompt",
        "noise_reduction",
        "threshold",
        "prefix_padding_ms",
        "silence_duration_ms",
    }
)
"""What `update_message` may change on a running session (flat names: the last three are
server turn detection's). An empty string clears language, prompt or noise reduction. A
switch between server and manual turn detection is not live: the session's commit handling
depends on it."""
_VAD_FIELDS = ("threshold", "prefix_padding_ms", "silence_duration_ms")

LiveValue = float | int | bool | list[str] | str


def live_changes(old: OpenAIParams, new: OpenAIParams) -> tuple[dict[str, LiveValue], list[str]]:
    """What changed between two sessions' settings: the fields `update_message` can send
    now, and the names only a new session applies (url, model, rate, logprobs, a switch of
    the turn detection mode)."""
    live: dict[str, LiveValue] = {}
    later: list[str] = []
    for name in ("language", "prompt", "noise_reduction"):
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            live[name] = "" if after is None else after
    a, b = old.turn_detection, new.turn_detection
    if (a is None) != (b is None):
        later.append("turn_detection")
    elif a is not None and b is not None:
        live.update({n: getattr(b, n) for n in _VAD_FIELDS if getattr(a, n) != getattr(b, n)})
    later += [
        n for n in ("url", "model", "sample_rate", "logprobs") if getattr(old, n) != getattr(new, n)
    ]
    return live, later


def updated(params: OpenAIParams, fields: Mapping[str, LiveValue]) -> OpenAIParams:
    """`params` with live `fields` applied; ValueError (one line) for a field that is not
    live or a value the settings reject."""
    not_live = sorted(set(fields) - LIVE_FIELDS)
    if not_live:
        raise ValueError(
            f"cannot change {', '.join(not_live)} on a running OpenAI session "
            f"(live: {', '.join(sorted(LIVE_FIELDS))})"
        )
    changes: dict[str, Any] = {}
    for name in ("language", "noise_reduction"):
        if name in fields:
            changes[name] = fields[name] or None
    if "prompt" in fields:
        changes["prompt"] = fields["prompt"]  # "" is sent: it clears the prompt
    vad: dict[str, Any] = {n: fields[n] for n in _VAD_FIELDS if n in fields}
    if vad:
        if params.turn_detection is None:
            raise ValueError(
                f"cannot change {', '.join(sorted(vad))}: the session has no server turn detection"
            )
        changes["turn_detection"] = replace(params.turn_detection, **vad)
    return replace(params, **changes)


__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_URL",
    "LIVE_FIELDS",
    "MODELS",
    "NOISE_REDUCTIONS",
    "REALTIME_ONLY",
    "SAMPLE_RATE",
    "LiveValue",
    "NoiseReduction",
    "OpenAIParams",
    "ServerVad",
    "check_url",
    "live_changes",
    "session_config",
    "session_update",
    "updated",
]
