"""Settings changed at run time (over MQTT), kept as an overlay on the config file.

The file stays the user's: what Home Assistant or `mosquitto_pub` changes is written to
`<state_dir>/settings.json` (`{"settings": {"keyterms": [...], ...}}`) and laid over the
file's values when the daemon starts or reloads (`effective`), so a restart keeps it.
Changes are validated by the very models and rules that validate the file (`apply`): a
value the file could not hold is refused with the same one-line problem. A value in the
overlay that no longer fits the file (the file now names another model, say) is dropped
with a warning when the config is loaded. `edgecap check-config --effective` shows the
result and where each value comes from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from edgecap.config.model import Config
from edgecap.config.problems import ConfigError, validation_problems
from edgecap.state.files import write_atomic

OVERLAY_FILE = "settings.json"
MAX_OVERLAY_BYTES = 64 * 1024

SETTINGS: dict[str, tuple[str, str]] = {
    "keyterms": ("streaming", "keyterms"),
    "speech_model": ("streaming", "speech_model"),
    "min_turn_silence": ("endpointing", "min_turn_silence"),
    "max_turn_silence": ("endpointing", "max_turn_silence"),
    "end_of_turn_confidence_threshold": ("endpointing", "end_of_turn_confidence_threshold"),
    "gate": ("session", "gate"),
}
"""The settings that may be changed at run time: name -> (config section, key)."""


def dotted(name: str) -> str:
    section, key = SETTINGS[name]
    return f"{section}.{key}"


def current(config: Config, name: str) -> Any:
    """The value of a run-time setting in `config` (JSON-friendly: tuples as lists)."""
    section, key = SETTINGS[name]
    value = getattr(getattr(config, section), key)
    return list(value) if isinstance(value, tuple) else value


def bounds(name: str) -> tuple[float, float]:
    """The (inclusive) range the config allows for the numeric setting `name`."""
    section, key = SETTINGS[name]
    model = Config.model_fields[section].annotation
    assert isinstance(model, type)
    assert issubclass(model, BaseModel)
    low = high = None
    for rule in model.model_fields[key].metadata:
        low = getattr(rule, "ge", low)
        high = getattr(rule, "le", high)
    assert low is not None, name
    assert high is not None, name
    return float(low), float(high)


def apply(config: Config, changes: Mapping[str, object]) -> Config:
    """`config` with `changes` (setting name -> value) validated as if the file had said
    so; `ConfigError` with one line per problem otherwise (naming `section.key` and the
    value)."""
    sections: dict[str, dict[str, Any]] = {}
    for name, value in changes.items():
        if name not in SETTINGS:
            raise ConfigError([f"{name}: not a setting that can be changed at run time"])
        section, key = SETTINGS[name]
        if section not in sections:
            model: BaseModel = getattr(config, section)
            sections[section] = model.model_dump(exclude_unset=True)
        sections[section][key] = value
    data: dict[str, Any] = {name: getattr(config, name) for name in Config.model_fields}
    data.update(sections)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc)) from None


def effective(
    config: Config, overlay: Mapping[str, object]
) -> tuple[Config, dict[str, object], list[str]]:
    """The file's `config` with the overlay laid over it, the overlay values kept, and a
    warning per value dropped because it no longer fits the file."""
    try:
        return apply(config, overlay), dict(overlay), []
    except ConfigError:
        pass
    kept: dict[str, object] = {}
    warnings: list[str] = []
    for name, value in overlay.items():
        try:
            config = apply(config, {name: value})
        except ConfigError as exc:
            warnings.append(
                f"{OVERLAY_FILE}: the run-time setting {name} = {json.dumps(value)} no longer "
                f"fits the config file and is ignored ({exc.problems[0]})"
            )
        else:
            kept[name] = value
    return config, kept, warnings


def read_overlay(state_dir: Path) -> tuple[dict[str, object], list[str]]:
    """The overlay in `state_dir` (empty when there is none) and its problems, if any (an
    unreadable or damaged file counts as empty: the config file alone applies)."""
    path = state_dir / OVERLAY_FILE
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_OVERLAY_BYTES + 1)
    except FileNotFoundError:
        return {}, []
    except OSError as exc:
        return {}, [f"{path}: cannot read the run-time settings ({exc.strerror}); ignored"]
    try:
        if len(raw) > MAX_OVERLAY_BYTES:
            raise ValueError("too large")
        data = json.loads(raw)
        settings = data["settings"]
        if not isinstance(settings, dict):
            raise TypeError("settings is not an object")
    except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        return {}, [f"{path}: damaged run-time settings ({exc}); ignored"]
    kept = {k: v for k, v in settings.items() if k in SETTINGS}
    unknown = sorted(set(settings) - set(kept))
    problems = (
        [f"{path}: unknown run-time setting(s) {', '.join(unknown)} ignored"] if unknown else []
    )
    return kept, problems


def write_overlay(state_dir: Path, overlay: Mapping[str, object]) -> None:
    """Replace the overlay atomically (a crash leaves the old or the new one); OSError."""
    data = json.dumps({"settings": dict(overlay)}, indent=2, sort_keys=True) + "\n"
    write_atomic(state_dir / OVERLAY_FILE, data)


__all__ = [
    "OVERLAY_FILE",
    "SETTINGS",
    "apply",
    "bounds",
    "current",
    "dotted",
    "effective",
    "read_overlay",
    "write_overlay",
]
