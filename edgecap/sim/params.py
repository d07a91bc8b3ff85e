"""Connection parameters and ``UpdateConfiguration`` of a simulated session (sans-I/O).

:func:`parse_session_params` validates the query string of ``/v3/ws`` (and of the proxy
path), :func:`apply_update` applies an ``UpdateConfiguration`` to the session's effective
:class:`SessionParams`, and :func:`begin_configuration` builds ``Begin.configuration``.

Unknown parameters are ignored, as the real server does. Where the protocol notes leave
the server's answer to a bad value open, the simulator sends ``Error`` and closes with
3006 ``Invalid Message: ...`` before ``Begin`` (or, for an update, at once). That covers
``keyterms_prompt`` with more than 100 terms: AssemblyAI documents the limit ("more than
100 is an error", skills/assemblyai/references/streaming.md in AssemblyAI/assemblyai-skill)
but not the answer; its session-errors page lists 3006 for invalid messages
(https://www.assemblyai.com/docs/streaming/common-session-errors-and-closures), and its
own WebSocket APIs validate parameters after the upgrade and report failure as an Error
frame then a close (https://www.assemblyai.com/docs/tts/error-handling), not as HTTP 400.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgecap.sim.protocol import invalid, parse_bool, parse_number, shorten
from edgecap.sim.segmenter import Encoding
from edgecap.sim.turns import Endpointing

MAX_KEYTERMS = 100
MAX_LANGUAGE_CODES = 10
MODES = ("min_latency", "balanced", "max_accuracy")
VOICE_FOCUS = ("near-field", "far-field")


def _json_list(name: str, value: Any, limit: int) -> list[str]:
    """A list of strings given as JSON text (query string) or a decoded JSON list."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise invalid(f"{name} must be a JSON array of strings") from None
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise invalid(f"{name} must be a JSON array of strings")
    if len(value) > limit:
        raise invalid(f"{name} has {len(value)} entries; at most {limit} allowed")
    return list(value)


def parse_keyterms(value: Any) -> list[str]:
    """A ``keyterms_prompt`` value (JSON text or an already decoded list), <= 100 terms."""
    return _json_list("keyterms_prompt", value, MAX_KEYTERMS)


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise invalid(f"{name} must be one of {', '.join(allowed)} (not {shorten(str(value))!r})")
    return str(value)


def _string(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise invalid(f"{name} must be a string")
    return value


@dataclass
class SessionParams:
    """Connection parameters of one session, validated.

    The session keeps one instance as its *effective* configuration: an
    ``UpdateConfiguration`` changes it in place (see :func:`apply_update`). ``None`` means
    the parameter was not given.
    """

    sample_rate: int
    encoding: Encoding = "pcm_s16le"
    speech_model: str | None = None
    format_turns: bool = False
    endpointing: Endpointing = field(default_factory=Endpointing)
    inactivity_timeout: float | None = None
    keyterms: list[str] = field(default_factory=list)
    prompt: str | None = None
    language_detection: bool | None = None
    language_code: str | None = None
    language_codes: list[str] | None = None
    mode: str | None = None
    vad_threshold: float | None = None
    voice_focus: str | None = None
    speaker_labels: bool | None = None
    max_speakers: int | None = None
    redact_pii: bool | None = None
    filter_profanity: bool | None = None
    domain: str | None = None


_BOOLEANS = (
    "format_turns",
    "language_detection",
    "speaker_labels",
    "redact_pii",
    "filter_profanity",
)


def _encoding(query: Mapping[str, str]) -> Encoding:
    requested = query.get("encoding", "pcm_s16le")
    if requested == "pcm_s16le":
        return "pcm_s16le"
    if requested == "pcm_mulaw":
        return "pcm_mulaw"
    raise invalid(f"unsupported encoding {shorten(requested)!r}")


def parse_session_params(query: Mapping[str, str]) -> SessionParams:
    """Validate the query string of ``/v3/ws``; unknown parameters are ignored."""
    encoding = _encoding(query)
    if "sample_rate" not in query:
        raise invalid(f"sample_rate is required for {encoding}")
    rate = parse_number("sample_rate", query["sample_rate"], 8000, 96000)
    if rate != int(rate):
        raise invalid("sample_rate must be an integer")
    params = SessionParams(sample_rate=int(rate), encoding=encoding)
    params.speech_model = query.get("speech_model") or None
    if "inactivity_timeout" in query:
        params.inactivity_timeout = parse_number(
            "inactivity_timeout", query["inactivity_timeout"], 5, 3600
        )
    for name in _BOOLEANS:
        if name in query:
            setattr(params, name, parse_bool(name, query[name]))
    if "language_code" in query:
        params.language_code = query["language_code"]
    if "domain" in query:
        params.domain = query["domain"]
    if "voice_focus" in query:
        params.voice_focus = _choice("voice_focus", query["voice_focus"], VOICE_FOCUS)
    if "max_speakers" in query:
        count = parse_number("max_speakers", query["max_speakers"], 1, 10)
        if count != int(count):
            raise invalid("max_speakers must be an integer")
        params.max_speakers = int(count)
    apply_update(params, query)
    return params


def apply_update(params: SessionParams, fields: Mapping[str, Any]) -> None:
    """Apply the fields an ``UpdateConfiguration`` may change (also used for the query).

    ``keyterms_prompt`` replaces the set (``[]`` clears it), ``prompt`` ``""`` clears the
    prompt, ``language_codes`` ``[]`` clears the steering; the turn-silence fields change
    the endpointing of the turns that follow. Other fields are ignored.
    """
    apply_endpointing(params.endpointing, fields)
    if "keyterms_prompt" in fields:
        params.keyterms = parse_keyterms(fields["keyterms_prompt"])
    if "prompt" in fields:
        params.prompt = _string("prompt", fields["prompt"]) or None
    if "mode" in fields:
        params.mode = _choice("mode", fields["mode"], MODES)
    if "vad_threshold" in fields:
        params.vad_threshold = parse_number("vad_threshold", fields["vad_threshold"], 0, 1)
    if "language_codes" in fields:
        params.language_codes = _json_list(
            "language_codes", fields["language_codes"], MAX_LANGUAGE_CODES
        )
    if isinstance(fields.get("format_turns"), bool):
        params.format_turns = fields["format_turns"]


def apply_endpointing(target: Endpointing, fields: Mapping[str, Any]) -> None:
    """Apply endpointing fields from a query string or an ``UpdateConfiguration``."""
    if "end_of_turn_confidence_threshold" in fields:
        target.end_of_turn_confidence_threshold = parse_number(
            "end_of_turn_confidence_threshold", fields["end_of_turn_confidence_threshold"], 0, 1
        )
    for name in ("min_end_of_turn_silence_when_confident", "min_turn_silence"):
        if name in fields:
            target.min_turn_silence_ms = parse_number(name, fields[name], 0, 10000)
    if "max_turn_silence" in fields:
        target.max_turn_silence_ms = parse_number(
            "max_turn_silence", fields["max_turn_silence"], 0, 10000
        )


def begin_configuration(params: SessionParams, model: str, api_version: str) -> dict[str, Any]:
    """``Begin.configuration``: what the server applied; parameters not given are null."""
    return {
        "model": model,
        "mode": params.mode,
        "api_version": api_version,
        "speaker_labels": params.speaker_labels,
        "redact_pii": params.redact_pii,
        "filter_profanity": params.filter_profanity,
        "domain": params.domain,
        "voice_focus": params.voice_focus,
        "simulator": True,
    }
