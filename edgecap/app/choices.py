"""What Home Assistant may offer for the run-time settings (from the config's own rules)."""

from __future__ import annotations

from typing import get_args

from edgecap.config import Config
from edgecap.config import overlay as ov
from edgecap.config.models_table import SPEECH_MODELS
from edgecap.config.session import GateName
from edgecap.mqtt.discovery_control import ControlChoices, NumberRange

STEPS = {
    "min_turn_silence": 10.0,
    "max_turn_silence": 10.0,
    "end_of_turn_confidence_threshold": 0.05,
}
UNITS = {"min_turn_silence": "ms", "max_turn_silence": "ms"}


def control_choices(cfg: Config) -> ControlChoices:
    """All the settings for AssemblyAI; only the gate for another provider (keyterms,
    endpointing and the model are AssemblyAI's keys)."""
    if cfg.streaming.provider != "assemblyai":
        settings: tuple[str, ...] = ("gate",)
    else:
        settings = tuple(ov.SETTINGS)
    ranges = {name: NumberRange(*ov.bounds(name), STEPS[name], UNITS.get(name)) for name in STEPS}
    options = {"speech_model": tuple(SPEECH_MODELS), "gate": tuple(get_args(GateName))}
    return ControlChoices(settings, ranges, options)
