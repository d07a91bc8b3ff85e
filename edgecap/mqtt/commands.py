"""Commands received over MQTT, parsed (no I/O, no config: the app validates values).

- `{prefix}/{device_id}/mute/set`: `ON` or `OFF` (case and surrounding blanks ignored).
- `{prefix}/{device_id}/set`: one JSON object of run-time settings, e.g.
  `{"keyterms": ["Kubernetes", "edgecap"], "min_turn_silence": 300}`; `null` puts a
  setting back to the config file's value; `keyterms` may also be one string of
  comma-separated terms (what a Home Assistant `text` entity sends). The command is
  applied whole or not at all; the reply (`set_result`) goes to `.../set/result`.

Any payload is answered, never raised on: a parse error is a `CommandError` naming the key
and the value (shortened) that are wrong.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_COMMAND_BYTES = 16 * 1024
MAX_SHOWN_CHARS = 80
KEYTERMS = "keyterms"
RESULT_SCHEMA = "edgecap.set_result/1"
SETTINGS_SCHEMA = "edgecap.settings/1"
EVENT_SCHEMA = "edgecap.event/1"
ON, OFF = "ON", "OFF"


@dataclass(frozen=True, slots=True)
class CommandError:
    """Why a command changes nothing: `key` (None: the payload as a whole) and its value."""

    message: str
    key: str | None = None
    value: Any = None
    request: Mapping[str, Any] | None = None
    """The whole command, when it parsed."""


@dataclass(frozen=True, slots=True)
class SettingsCommand:
    changes: dict[str, Any] = field(default_factory=dict)
    """Setting -> new value (JSON: validated by the app)."""
    resets: tuple[str, ...] = ()
    """Settings to put back to the config file's value (`null`)."""


def shown(value: object) -> str:
    """A value as JSON, shortened for a log line or a reply."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 1] + "…"


def _text(payload: bytes) -> str | CommandError:
    if len(payload) > MAX_COMMAND_BYTES:
        return CommandError(
            f"payload too large ({len(payload)} bytes, at most {MAX_COMMAND_BYTES})"
        )
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return CommandError("payload is not UTF-8 text")


def parse_mute(payload: bytes) -> bool | CommandError:
    """`ON` -> True, `OFF` -> False."""
    text = _text(payload)
    if isinstance(text, CommandError):
        return text
    word = text.strip().upper()
    if word in (ON, OFF):
        return word == ON
    return CommandError(f"must be ON or OFF; got {shown(text[:MAX_SHOWN_CHARS])}", "mute", text)


def _keyterms(value: object) -> object:
    """A comma-separated string becomes a list of terms (blanks around them dropped)."""
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    return value


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def parse_settings(payload: bytes, known: Collection[str]) -> SettingsCommand | CommandError:
    """A `set` command: a JSON object whose keys are in `known`."""
    text = _text(payload)
    if isinstance(text, CommandError):
        return text
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        return CommandError(f"not JSON ({exc})")
    if not isinstance(data, Mapping):
        return CommandError(f"must be a JSON object of settings; got {shown(data)}", value=data)
    if not data:
        return CommandError(f"names no setting; settings are {', '.join(sorted(known))}")
    changes: dict[str, Any] = {}
    resets: list[str] = []
    for key, value in data.items():
        if key not in known:
            return CommandError(
                f"{shown(key)}: not a run-time setting; settings are {', '.join(sorted(known))}",
                key,
                value,
            )
        if value is None:
            resets.append(key)
        else:
            changes[key] = _keyterms(value) if key == KEYTERMS else value
    return SettingsCommand(changes, tuple(resets))


def result_payload(
    ok: bool,
    *,
    request: Mapping[str, Any] | None = None,
    error: CommandError | None = None,
    applied: Mapping[str, str] | None = None,
    saved: bool = True,
) -> bytes:
    """The reply on `set/result`: `ok`, what was asked, and either how each setting was
    applied (`live`, `next_session`, `restart`) or the error with its key and value."""
    body: dict[str, Any] = {"schema": RESULT_SCHEMA, "ok": ok}
    if request is not None:
        body["request"] = {k: _json_safe(v) for k, v in request.items()}
    if error is not None:
        body["error"] = error.message
        body["key"] = error.key
        body["value"] = _json_safe(error.value)
    if applied is not None:
        body["applied"] = dict(applied)
        body["saved"] = saved
    return json.dumps(body, ensure_ascii=False, allow_nan=False).encode()


def _json_safe(value: object) -> object:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return shown(value)
    return value


__all__ = [
    "EVENT_SCHEMA",
    "MAX_COMMAND_BYTES",
    "OFF",
    "ON",
    "RESULT_SCHEMA",
    "SETTINGS_SCHEMA",
    "CommandError",
    "SettingsCommand",
    "parse_mute",
    "parse_settings",
    "result_payload",
    "shown",
]
