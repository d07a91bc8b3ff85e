"""Home Assistant MQTT device-based discovery (no I/O).

One retained message on `<discovery_prefix>/device/edgecap_<device_id>/config` describes
the device and its entities, following Home Assistant's documented device discovery format
(`device` and `origin` at the root, entities under `components`, each with `platform` and
`unique_id`; shared `availability` and `qos`):

- `turn`: an MQTT **event** entity fired by every transcript (`event_type: "turn"`, or
  `"revision"` when a speaker revision publishes a turn again, so an automation acting on
  turns does not act twice); the turn's text and fields are its attributes, never
  truncated;
- `last_turn`: a sensor showing the last text (states are capped at 255 characters, so
  the state is cut there; the full text is in its attributes, which a revision updates);
- `state`: the daemon state from the `status` topic;
- `billed`: billed streaming seconds since start, from the `stats` topic;
- `cost_today`, `cost_month`: the estimated cost of today and of this month (`monetary`
  sensors in the `[pricing]` currency), from the `stats` topic's `billing` section;
- `spool`: transcripts waiting for the broker, from the `stats` topic;
- with `controls`: the privacy mute switch and the run-time settings
  (`discovery_control.py`).

Availability is the daemon's `availability` topic (`online`, last will `offline`).
Publishing an empty retained message on the same topic removes the device.
"""

from __future__ import annotations

import json
from typing import Any

from edgecap import __version__
from edgecap.mqtt.discovery_control import ControlChoices, control_components
from edgecap.mqtt.topics import OFFLINE, ONLINE, Topics

STATE_MAX_CHARS = 255  # Home Assistant rejects longer entity states
EVENT_TYPE = "turn"
REVISION_EVENT_TYPE = "revision"

# The turn fields an event carries as attributes (the word list stays on the topic).
ATTRIBUTE_FIELDS = (
    "id",
    "text",
    "confidence",
    "end_of_turn_confidence",
    "turn_order",
    "session_id",
    "device_id",
    "started_at",
    "ended_at",
    "language_code",
    "speech_model",
)
# Fields a turn carries only sometimes, with what the attribute is when it does not.
OPTIONAL_ATTRIBUTE_FIELDS = {"speaker": "none", "language_confidence": "none", "revision": "0"}


def _json_template(fields: tuple[str, ...], leading: str = "") -> str:
    """A template rendering selected `edgecap.turn/1` fields as one JSON object."""
    parts = [leading] if leading else []
    parts += [f'"{name}":{{{{ value_json.{name} | tojson }}}}' for name in fields]
    parts += [
        f'"{name}":{{{{ value_json.{name} | default({absent}) | tojson }}}}'
        for name, absent in OPTIONAL_ATTRIBUTE_FIELDS.items()
    ]
    return "{" + ",".join(parts) + "}"


# A revision (the payload has `revision`) is another event type than a new turn.
EVENT_TYPE_TEMPLATE = (
    f'"event_type":"{{{{ \'{REVISION_EVENT_TYPE}\' if value_json.revision is defined '
    f"else '{EVENT_TYPE}' }}}}\""
)
EVENT_TEMPLATE = _json_template(ATTRIBUTE_FIELDS, leading=EVENT_TYPE_TEMPLATE)
ATTRIBUTES_TEMPLATE = _json_template(ATTRIBUTE_FIELDS)
TEXT_STATE_TEMPLATE = f"{{{{ value_json.text[:{STATE_MAX_CHARS}] }}}}"
STATUS_STATE_TEMPLATE = (
    "{{ value_json.state if value_json is defined and value_json.state is defined else value }}"
)


def object_id(device_id: str) -> str:
    """The device's id in Home Assistant (topic level, identifiers, unique_id prefix)."""
    return f"edgecap_{device_id}"


def _cost_sensor(uid: str, name: str, period: str, topics: Topics, currency: str) -> dict[str, Any]:
    """The estimated cost of `period` ("today" or "month") from the stats' `billing`."""
    return {
        "platform": "sensor",
        "unique_id": uid,
        "name": name,
        "icon": "mdi:cash",
        "device_class": "monetary",
        "unit_of_measurement": currency,
        # no state_class: the value drops to 0 at each new day/month, which "total" without
        # a last_reset would count as spending going backwards
        "suggested_display_precision": 2,
        "state_topic": topics.stats,
        # None (unknown) until the billing section says, or with no known price
        "value_template": (
            "{{ value_json.billing." + period + ".cost "
            "if value_json.billing is defined and value_json.billing "
            "and value_json.billing." + period + ".cost is not none else 'None' }}"
        ),
    }


def discovery_payload(
    topics: Topics, controls: ControlChoices | None = None, currency: str = "USD"
) -> dict[str, Any]:
    oid = object_id(topics.device_id)

    def uid(name: str) -> str:
        return f"{oid}_{name}"

    components: dict[str, dict[str, Any]] = {
        "turn": {
            "platform": "event",
            "unique_id": uid("turn"),
            "name": "Turn",
            "icon": "mdi:account-voice",
            "state_topic": topics.transcript,
            "event_types": [EVENT_TYPE, REVISION_EVENT_TYPE],
            "value_template": EVENT_TEMPLATE,
        },
        "last_turn": {
            "platform": "sensor",
            "unique_id": uid("last_turn"),
            "name": "Last turn",
            "icon": "mdi:text-box-outline",
            "state_topic": topics.transcript,
            "value_template": TEXT_STATE_TEMPLATE,
            "json_attributes_topic": topics.transcript,
            "json_attributes_template": ATTRIBUTES_TEMPLATE,
        },
        "state": {
            "platform": "sensor",
            "unique_id": uid("state"),
            "name": "State",
            "icon": "mdi:state-machine",
            "entity_category": "diagnostic",
            "state_topic": topics.status,
            "value_template": STATUS_STATE_TEMPLATE,
        },
        "billed": {
            "platform": "sensor",
            "unique_id": uid("billed"),
            "name": "Billed streaming time",
            "entity_category": "diagnostic",
            "device_class": "duration",
            "unit_of_measurement": "s",
            "state_class": "total_increasing",
            "state_topic": topics.stats,
            "value_template": "{{ value_json.billed_seconds }}",
        },
        "cost_today": _cost_sensor(uid("cost_today"), "Cost today", "today", topics, currency),
        "cost_month": _cost_sensor(uid("cost_month"), "Cost this month", "month", topics, currency),
        "spool": {
            "platform": "sensor",
            "unique_id": uid("spool"),
            "name": "Undelivered transcripts",
            "icon": "mdi:tray-full",
            "entity_category": "diagnostic",
            "state_class": "measurement",
            "state_topic": topics.stats,
            "value_template": "{{ value_json.spool_depth }}",
        },
    }
    if controls is not None:
        components.update(control_components(topics, oid, controls))
    return {
        "device": {
            "identifiers": [oid],
            "name": f"edgecap {topics.device_id}",
            "manufacturer": "edgecap",
            "model": "edgecap speech capture",
            "sw_version": __version__,
        },
        "origin": {"name": "edgecap", "sw_version": __version__},
        "availability": [
            {
                "topic": topics.availability,
                "payload_available": ONLINE.decode(),
                "payload_not_available": OFFLINE.decode(),
            }
        ],
        "qos": 1,
        "components": components,
    }


def discovery_message(
    topics: Topics, controls: ControlChoices | None = None, currency: str = "USD"
) -> tuple[str, bytes]:
    """The topic and the JSON payload to publish (retained)."""
    body = discovery_payload(topics, controls, currency)
    payload = json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
    return topics.discovery, payload
