"""The control entities in Home Assistant discovery, checked against the configuration
variables Home Assistant documents for MQTT `switch`, `text`, `number` and `select`
(home-assistant.io/integrations/<platform>.mqtt/): required keys present, every key one
the platform knows, ranges and options valid, and each command template producing a `set`
command that edgecap itself accepts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from edgecap.app.choices import control_choices
from edgecap.app.control import SettingsPlan, plan_settings
from edgecap.config import overlay as ov
from edgecap.mqtt.discovery import discovery_payload
from edgecap.mqtt.topics import Topics
from tests.test_control_commands import config

pytestmark = pytest.mark.unit

TOPICS = Topics("edgecap", "kitchen-pi", "homeassistant")

# Per platform: (required, allowed besides the shared entity keys), from HA's docs.
SHARED = {
    "platform",
    "unique_id",
    "name",
    "icon",
    "entity_category",
    "enabled_by_default",
    "availability",
    "availability_topic",
    "qos",
    "retain",
    "encoding",
    "json_attributes_topic",
    "json_attributes_template",
    "object_id",
    "default_entity_id",
}
PLATFORMS: dict[str, tuple[set[str], set[str]]] = {
    "switch": (
        {"command_topic"},
        {
            "state_topic",
            "value_template",
            "payload_on",
            "payload_off",
            "state_on",
            "state_off",
            "optimistic",
            "device_class",
            "command_template",
        },
    ),
    "text": (
        {"command_topic"},
        {"state_topic", "value_template", "command_template", "min", "max", "mode", "pattern"},
    ),
    "number": (
        {"command_topic"},
        {
            "state_topic",
            "value_template",
            "command_template",
            "min",
            "max",
            "step",
            "mode",
            "unit_of_measurement",
            "device_class",
            "optimistic",
            "payload_reset",
        },
    ),
    "select": (
        {"command_topic", "options"},
        {"state_topic", "value_template", "command_template", "optimistic"},
    ),
}
ENTITY_CATEGORIES = {"config", "diagnostic"}


def controls(tmp_path: Path) -> dict[str, dict[str, Any]]:
    payload = discovery_payload(TOPICS, control_choices(config(tmp_path)))
    return {cid: c for cid, c in payload["components"].items() if c["platform"] in PLATFORMS}


def test_control_entities_follow_the_documented_schema(tmp_path: Path) -> None:
    found = controls(tmp_path)
    assert {c["platform"] for c in found.values()} == set(PLATFORMS)
    assert set(found) == {"mute", *ov.SETTINGS}
    for cid, entity in found.items():
        required, allowed = PLATFORMS[entity["platform"]]
        assert required <= set(entity), cid
        assert set(entity) <= SHARED | required | allowed, (cid, set(entity) - SHARED - allowed)
        assert entity["entity_category"] in ENTITY_CATEGORIES
        assert re.fullmatch(r"[a-zA-Z0-9_-]+", entity["unique_id"])
        if entity["platform"] == "number":
            assert entity["min"] < entity["max"]
            assert 0 < entity["step"] <= entity["max"] - entity["min"]
            assert entity["mode"] in {"auto", "box", "slider"}
        if entity["platform"] == "text":
            assert 0 <= entity.get("min", 0) <= entity["max"] <= 255  # an entity state's limit
            assert entity["mode"] in {"text", "password"}
        if entity["platform"] == "select":
            assert entity["options"]
            assert all(isinstance(o, str) for o in entity["options"])
    mute = found["mute"]
    assert mute["icon"] == "mdi:microphone-off"
    assert (mute["command_topic"], mute["state_topic"]) == (
        "edgecap/kitchen-pi/mute/set",
        "edgecap/kitchen-pi/mute",
    )
    assert found["min_turn_silence"]["unit_of_measurement"] == "ms"
    assert (found["min_turn_silence"]["min"], found["min_turn_silence"]["max"]) == (50, 10000)
    assert found["gate"]["options"] == ["voice", "always"]


def _command(template: str, value: object) -> bytes:
    """`{"<name>": {{ value | tojson }}}` rendered as Home Assistant would."""
    return template.replace("{{ value | tojson }}", json.dumps(value)).encode()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("keyterms", "Kubernetes, edgecap"),
        ("min_turn_silence", 300),
        ("max_turn_silence", 2500),
        ("end_of_turn_confidence_threshold", 0.55),
        ("speech_model", "universal-streaming-multilingual"),
        ("gate", "always"),
    ],
)
def test_each_command_template_makes_a_command_edgecap_accepts(
    tmp_path: Path, name: str, value: object
) -> None:
    entity = controls(tmp_path)[name]
    assert entity["command_topic"] == "edgecap/kitchen-pi/set"
    assert entity["state_topic"] == "edgecap/kitchen-pi/settings"
    plan = plan_settings(config(tmp_path), {}, _command(entity["command_template"], value))
    assert isinstance(plan, SettingsPlan), plan
    assert name in plan.overlay


def test_openai_devices_offer_only_the_gate_and_the_mute(tmp_path: Path) -> None:
    choices = control_choices(config(tmp_path))
    assert choices.settings == tuple(ov.SETTINGS)
    openai = control_choices(config(tmp_path).model_copy(update={"streaming": _openai()}))
    assert openai.settings == ("gate",)


def _openai() -> Any:
    from edgecap.config import StreamingConfig

    return StreamingConfig.model_construct(provider="openai")
