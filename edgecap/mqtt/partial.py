"""The optional `partial` topic: the growing text of the turn being spoken (no I/O).

Schema `edgecap.partial/1`, QoS 0, not retained, live only: a partial that cannot be sent
at once is dropped (the final turn on `transcript` is what counts).
"""

from __future__ import annotations

import json

from edgecap.providers.turn import Turn

SCHEMA = "edgecap.partial/1"


def partial_payload(device_id: str, session_id: str, turn: Turn) -> bytes:
    # `transcript` holds only the finalized words; the words list also has the one being
    # recognized, so the joined words grow smoothly.
    text = " ".join(w.text for w in turn.words) or turn.transcript
    payload = {
        "schema": SCHEMA,
        "device_id": device_id,
        "session_id": session_id,
        "turn_order": turn.turn_order,
        "text": text,
        "end_of_turn": turn.end_of_turn,
    }
    return json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
