"""Home Assistant discovery payload, checked against HA's documented device-discovery format
(home-assistant.io, integrations/mqtt "Device discovery payload" and event.mqtt), and its
templates rendered against a real `edgecap.turn/1` payload."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest

from edgecap.mqtt.discovery import (
    ATTRIBUTE_FIELDS,
    OPTIONAL_ATTRIBUTE_FIELDS,
    STATE_MAX_CHARS,
    discovery_message,
    discovery_payload,
)
from edgecap.mqtt.topics import Topics
from edgecap.turns.transcript import TranscriptTurn
from tests.strict_json import strict_loads

pytestmark = pytest.mark.unit

TOPICS = Topics("edgecap", "kitchen-pi", "homeassistant")
ID_CHARS = re.compile(r"^[a-zA-Z0-9_-]+$")  # HA: node/object ids

# Keys HA's MQTT integration knows (full names; abbreviations are optional).
SHARED_KEYS = {"device", "origin", "availability", "qos", "components"}
DEVICE_KEYS = {"identifiers", "name", "manufacturer", "model", "sw_version"}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
COMMON_ENTITY_KEYS = {"platform", "unique_id", "name", "icon", "entity_category"}
PLATFORM_KEYS = {
    "event": {"state_topic", "event_types", "value_template"},
    "sensor": {
        "state_topic",
        "value_template",
        "json_attributes_topic",
        "json_attributes_template",
        "device_class",
        "unit_of_measurement",
        "state_class",
        "suggested_display_precision",
    },
}


def render(template: str, value_json: dict[str, Any]) -> str:
    """The template forms edgecap uses, rendered the way Jinja would (checked once against
    Jinja 3.1's sandbox, the environment Home Assistant renders in):
    `{{ value_json.<field> | tojson }}`, `{{ value_json.<field>[:N] }}`,
    `{{ value_json.<field> | default(<none or a number>) | tojson }}` and
    `{{ 'a' if value_json.<field> is defined else 'b' }}`. A field used without a default
    must be in the payload (Jinja would render an undefined field, HA would log it)."""

    def tojson(m: re.Match[str]) -> str:
        return json.dumps(value_json[m.group(1)])

    def sliced(m: re.Match[str]) -> str:
        return str(value_json[m.group(1)])[: int(m.group(2))]

    def default(m: re.Match[str]) -> str:
        absent = None if m.group(2) == "none" else int(m.group(2))
        return json.dumps(value_json.get(m.group(1), absent))

    def defined(m: re.Match[str]) -> str:
        return m.group(1) if m.group(2) in value_json else m.group(3)

    out = re.sub(r"\{\{ value_json\.(\w+) \| tojson \}\}", tojson, template)
    out = re.sub(r"\{\{ value_json\.(\w+)\[:(\d+)\] \}\}", sliced, out)
    out = re.sub(r"\{\{ value_json\.(\w+) \| default\((none|\d+)\) \| tojson \}\}", default, out)
    out = re.sub(r"\{\{ '(\w+)' if value_json\.(\w+) is defined else '(\w+)' \}\}", defined, out)
    assert "{{" not in out, f"unrendered template part in {out!r}"
    return out


def sample_turn(text: str, **changes: Any) -> dict[str, Any]:
    turn = TranscriptTurn(
        id="sess-1:4",
        device_id="kitchen-pi",
        session_id="sess-1",
        turn_order=4,
        text=text,
        confidence=0.91,
        end_of_turn_confidence=0.7,
        words=({"text": "x", "start_ms": 0, "end_ms": 10, "confidence": 0.9},),
        language_code=None,
        started_at=1_790_000_000.0,
        ended_at=1_790_000_002.5,
        speech_model="universal-streaming-english",
        formatted=True,
    )
    return replace(turn, **changes).payload()


def test_topic_is_device_discovery_with_a_valid_object_id() -> None:
    topic, payload = discovery_message(TOPICS)
    prefix, component, object_id, leaf = topic.split("/")
    assert (prefix, component, leaf) == ("homeassistant", "device", "config")
    assert ID_CHARS.match(object_id)
    assert "kitchen-pi" in object_id
    assert strict_loads(payload) == discovery_payload(TOPICS)


def test_root_has_the_mandatory_device_and_origin_and_only_shared_options() -> None:
    p = discovery_payload(TOPICS)
    assert set(p) <= SHARED_KEYS
    assert {"device", "origin", "components"} <= set(p)
    assert set(p["device"]) <= DEVICE_KEYS
    assert p["device"]["identifiers"]
    assert p["device"]["name"]
    assert set(p["origin"]) <= ORIGIN_KEYS
    assert p["origin"]["name"] == "edgecap"


def test_availability_is_the_last_will_topic() -> None:
    p = discovery_payload(TOPICS)
    assert p["availability"] == [
        {
            "topic": "edgecap/kitchen-pi/availability",
            "payload_available": "online",
            "payload_not_available": "offline",
        }
    ]


def test_every_component_has_platform_and_a_unique_id() -> None:
    components = discovery_payload(TOPICS)["components"]
    unique_ids = [c["unique_id"] for c in components.values()]
    assert len(set(unique_ids)) == len(unique_ids)
    for key, c in components.items():
        assert ID_CHARS.match(key)
        assert c["platform"] in PLATFORM_KEYS, key
        assert set(c) <= COMMON_ENTITY_KEYS | PLATFORM_KEYS[c["platform"]], key
        assert len(set(c) - COMMON_ENTITY_KEYS) >= 1  # at least one platform option


def test_turns_are_an_event_entity_with_full_text_in_the_attributes() -> None:
    events = [
        c for c in discovery_payload(TOPICS)["components"].values() if c["platform"] == "event"
    ]
    assert len(events) == 1
    event = events[0]
    assert event["state_topic"] == "edgecap/kitchen-pi/transcript"
    assert event["event_types"] == ["turn", "revision"]
    long_text = "word " * 120  # 600 characters: more than a state may hold
    rendered = json.loads(render(event["value_template"], sample_turn(long_text)))
    assert rendered["event_type"] == "turn"
    assert rendered["text"] == long_text  # attributes are not truncated
    assert set(rendered) == {"event_type", *ATTRIBUTE_FIELDS, *OPTIONAL_ATTRIBUTE_FIELDS}
    assert (rendered["speaker"], rendered["language_confidence"], rendered["revision"]) == (
        None,
        None,
        0,
    )
    assert rendered["id"] == "sess-1:4"
    assert rendered["started_at"].endswith("Z")


def test_text_is_truncated_only_in_the_last_turn_state() -> None:
    sensor = discovery_payload(TOPICS)["components"]["last_turn"]
    long_text = "é" * 300
    turn = sample_turn(long_text)
    assert render(sensor["value_template"], turn) == long_text[:STATE_MAX_CHARS]
    attributes = json.loads(render(sensor["json_attributes_template"], turn))
    assert attributes["text"] == long_text
    assert "event_type" not in attributes


def test_state_and_billed_time_sensors() -> None:
    components = discovery_payload(TOPICS)["components"]
    assert components["state"]["state_topic"] == "edgecap/kitchen-pi/status"
    billed = components["billed"]
    assert billed["state_topic"] == "edgecap/kitchen-pi/stats"
    assert (billed["device_class"], billed["unit_of_measurement"]) == ("duration", "s")
    assert billed["value_template"] == "{{ value_json.billed_seconds }}"
    assert components["spool"]["value_template"] == "{{ value_json.spool_depth }}"


def render_jinja(template: str, payload: dict[str, Any]) -> str:
    """Rendered as Home Assistant does: Jinja's immutable sandbox, `value_json` the payload."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment().from_string(template).render(value_json=payload)


def test_cost_sensors_show_the_estimate_in_the_configured_currency_or_unknown() -> None:
    components = discovery_payload(TOPICS, currency="EUR")["components"]
    for key, period in (("cost_today", "today"), ("cost_month", "month")):
        sensor = components[key]
        assert sensor["state_topic"] == "edgecap/kitchen-pi/stats"
        assert (sensor["device_class"], sensor["unit_of_measurement"]) == ("monetary", "EUR")
        assert "state_class" not in sensor  # it drops to 0 each day/month
        template = sensor["value_template"]
        stats = {"billing": {"today": {"cost": 0.0125}, "month": {"cost": 1.5}}}
        assert render_jinja(template, stats) == str(stats["billing"][period]["cost"])
        # no known price: cost is null; no ledger: no billing section. "None" is what
        # Home Assistant's MQTT sensor takes as unknown (not an error, not a 0)
        assert render_jinja(template, {"billing": {period: {"cost": None}}}) == "None"
        assert render_jinja(template, {"spool_depth": 0}) == "None"
        assert render_jinja(template, {"billing": None}) == "None"


def test_discovery_prefix_is_configurable() -> None:
    topic, _ = discovery_message(Topics("edgecap", "kitchen-pi", "ha"))
    assert topic.startswith("ha/device/")
    assert Topics("edgecap", "kitchen-pi", "ha").ha_status == "ha/status"


def test_a_speaker_revision_is_a_revision_event_not_another_turn() -> None:
    components = discovery_payload(TOPICS)["components"]
    revised = sample_turn("Turn on the lights.", speaker="B", revision=1)
    event = json.loads(render(components["turn"]["value_template"], revised))
    assert (event["event_type"], event["id"], event["speaker"]) == ("revision", "sess-1:4", "B")
    assert event["revision"] == 1
    first = json.loads(render(components["turn"]["value_template"], sample_turn("x", speaker="A")))
    assert (first["event_type"], first["speaker"], first["revision"]) == ("turn", "A", 0)
    sensor = components["last_turn"]
    assert render(sensor["value_template"], revised) == "Turn on the lights."  # state as before
    assert json.loads(render(sensor["json_attributes_template"], revised))["speaker"] == "B"
