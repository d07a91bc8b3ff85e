"""Home Assistant entities for the controls (no I/O): merged into the device discovery.

- `mute`: a `switch` (mdi:microphone-off) on `mute/set`, its state from `mute`;
- `keyterms`: a `text` (comma-separated terms, up to 255 characters: an entity state's
  limit), `min_turn_silence`/`max_turn_silence` (ms) and `end_of_turn_confidence_threshold`:
  `number`s, `speech_model`: a `select` (AssemblyAI only);
- `gate`: a `select` (`voice`/`always`).

Each sends `{"<setting>": value}` to the `set` topic through a `command_template` and reads
its state from the retained `settings` payload. Ranges and choices come from the config's
rules (`ControlChoices`, built by the app), so Home Assistant offers only what validates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgecap.mqtt.commands import OFF, ON
from edgecap.mqtt.topics import Topics

TEXT_MAX_CHARS = 255


@dataclass(frozen=True, slots=True)
class NumberRange:
    min: float
    max: float
    step: float
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class ControlChoices:
    """What Home Assistant may offer: `settings` are the run-time settings shown (all, or
    only the gate for a provider without them), `ranges` per number, `options` per select."""

    settings: tuple[str, ...]
    ranges: dict[str, NumberRange]
    options: dict[str, tuple[str, ...]]


NAMES = {
    "keyterms": ("Keyterms", "mdi:format-list-text"),
    "min_turn_silence": ("Minimum turn silence", "mdi:timer-sand"),
    "max_turn_silence": ("Maximum turn silence", "mdi:timer-sand-complete"),
    "end_of_turn_confidence_threshold": ("End-of-turn confidence threshold", "mdi:tune"),
    "speech_model": ("Speech model", "mdi:brain"),
    "gate": ("Session gate", "mdi:gate"),
}


def _state(name: str) -> str:
    return f"{{{{ value_json.{name} }}}}"


def _setting(topics: Topics, uid: str, name: str, choices: ControlChoices) -> dict[str, Any]:
    title, icon = NAMES[name]
    entity: dict[str, Any] = {
        "unique_id": f"{uid}_{name}",
        "name": title,
        "icon": icon,
        "entity_category": "config",
        "command_topic": topics.settings_set,
        "command_template": f'{{"{name}": {{{{ value | tojson }}}}}}',
        "state_topic": topics.settings,
        "value_template": _state(name),
    }
    if name == "keyterms":
        joined = f"{{{{ (value_json.{name} | join(', '))[:{TEXT_MAX_CHARS}] }}}}"
        entity.update(platform="text", mode="text", max=TEXT_MAX_CHARS, value_template=joined)
    elif name in choices.options:
        entity.update(platform="select", options=list(choices.options[name]))
    else:
        r = choices.ranges[name]
        # (a silence left to the model's default is null: rendered "None", Home
        # Assistant's default `payload_reset`, so the entity shows unknown)
        entity.update(platform="number", mode="box", min=r.min, max=r.max, step=r.step)
        if r.unit is not None:
            entity["unit_of_measurement"] = r.unit
    return entity


def control_components(topics: Topics, uid: str, choices: ControlChoices) -> dict[str, Any]:
    """The control entities, keyed by component id (`uid`: the device's object id)."""
    components: dict[str, Any] = {
        "mute": {
            "platform": "switch",
            "unique_id": f"{uid}_mute",
            "name": "Privacy mute",
            "icon": "mdi:microphone-off",
            "entity_category": "config",
            "command_topic": topics.mute_set,
            "state_topic": topics.mute,
            "payload_on": ON,
            "payload_off": OFF,
        }
    }
    for name in choices.settings:
        components[name] = _setting(topics, uid, name, choices)
    return components


__all__ = ["TEXT_MAX_CHARS", "ControlChoices", "NumberRange", "control_components"]
