"""The retained `stats` payload, `edgecap.stats/1` (no I/O).

Counters since the daemon started (they restart at zero with the process), published
every `mqtt.stats_interval_seconds`, after every reconnect and once more on a clean stop.
The optional `billing` section (`ledger.billing_summary`) carries today's and this month's
persisted totals, which do survive a restart; `storage` says, for the spool and the ledger,
whether each is on disk and how often it had to be kept in memory or written anew.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edgecap.turns.transcript import iso_utc

SCHEMA = "edgecap.stats/1"


@dataclass(frozen=True, slots=True)
class DaemonCounters:
    """What the capture and streaming side counted (supplied by the daemon)."""

    frames_captured: int = 0
    overruns: int = 0
    sessions: int = 0
    reconnects: int = 0
    turns: int = 0
    speech_without_transcript: int = 0
    """Sessions opened for speech that ended with no turn (`event` topic)."""
    billed_seconds: float = 0.0
    billing: Mapping[str, Any] | None = None  # ledger.billing_summary(...), when kept
    ledger_storage: Mapping[str, Any] | None = None  # LedgerStore.health.payload()
    sync: Mapping[str, Any] | None = None  # the Sync provider's pending spool (summary)


@dataclass(frozen=True, slots=True)
class DeliveryCounters:
    """What the MQTT side counted."""

    spool_depth: int = 0
    spool_evictions: int = 0
    delivered: int = 0
    rejected: int = 0
    mqtt_connects: int = 0
    spool_storage: Mapping[str, Any] | None = None  # SqliteSpool.health.payload()


def stats_payload(
    device_id: str,
    daemon: DaemonCounters,
    delivery: DeliveryCounters,
    *,
    now: float,
    started_at: float,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "schema": SCHEMA,
        "device_id": device_id,
        "at": iso_utc(now),
        "started_at": iso_utc(started_at),
        "uptime_seconds": round(max(0.0, now - started_at)),
        "frames_captured": daemon.frames_captured,
        "overruns": daemon.overruns,
        "sessions": daemon.sessions,
        "reconnects": daemon.reconnects,
        "turns": daemon.turns,
        "speech_without_transcript": daemon.speech_without_transcript,
        "billed_seconds": round(daemon.billed_seconds, 1),
        "spool_depth": delivery.spool_depth,
        "spool_evictions": delivery.spool_evictions,
        "delivered": delivery.delivered,
        "rejected": delivery.rejected,
        "mqtt_connects": delivery.mqtt_connects,
    }
    storage = {
        part: dict(health)
        for part, health in (("spool", delivery.spool_storage), ("ledger", daemon.ledger_storage))
        if health is not None
    }
    if storage:
        payload["storage"] = storage
    if daemon.billing is not None:
        payload["billing"] = dict(daemon.billing)
    if daemon.sync is not None:
        payload["sync"] = dict(daemon.sync)
    return payload


def stats_json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()
