"""Hermes (Rhasspy 2.5) compatibility: `hermes/asr/textCaptured` for each turn (no I/O).

Rhasspy-style consumers listen on the fixed topic `hermes/asr/textCaptured` for
`{text, likelihood, seconds, siteId, sessionId}` (camelCase JSON). edgecap fills it from
the final turn: `likelihood` is the turn's mean word confidence, `seconds` how long the
transcription took after the last word was spoken, `siteId` the device id and `sessionId`
the turn id (each turn stands alone; there is no Hermes dialogue session).
"""

from __future__ import annotations

import json

from edgecap.turns.transcript import TranscriptTurn


def text_captured(turn: TranscriptTurn, now: float) -> bytes:
    """The `hermes/asr/textCaptured` payload for `turn`, finalized at wall time `now`."""
    seconds = 0.0 if turn.ended_at is None else max(0.0, now - turn.ended_at)
    payload = {
        "text": turn.text,
        "likelihood": 1.0 if turn.confidence is None else turn.confidence,
        "seconds": round(seconds, 3),
        "siteId": turn.device_id,
        "sessionId": turn.id,
    }
    return json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
