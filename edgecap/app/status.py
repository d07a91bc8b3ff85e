"""The daemon's status (no I/O): published retained on `{prefix}/{device_id}/status` and
logged in one line on every change.

`state` is one of:

| state | meaning |
|---|---|
| starting | the daemon is starting; no session yet |
| streaming | a session is open and audio flows to it |
| idle | no session because none is needed (waiting for audio) |
| listening | `session.gate = "voice"`: no session open, waiting for speech |
| budget_exhausted | the daily budget is used up; no session until `budget_resets_at` |
| muted | the privacy mute is on (MQTT `mute/set`): no audio leaves the device, no session |
| reconnecting | the last session or attempt failed; the next attempt is scheduled |
| auth_failed | the token or credential is refused; retrying slowly (see `last_error.hint`) |
| degraded | repeated failures or a bug/config problem; retrying after a cool-down |
| audio_unavailable | the microphone is missing or failing; retried, no session is open |
| stopping | the daemon is shutting down |

Besides the state, `conditions` holds one line per part that is degraded without changing
the state (`set_condition`): "spool" and "ledger" while they are kept in memory because
the state directory cannot be written; `durable` is false while either is.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from edgecap.engine.controller import Counters, Report
from edgecap.engine.gaps import Gap
from edgecap.providers.failures import Classified
from edgecap.turns.transcript import iso_utc

SCHEMA = "edgecap.status/1"

State = Literal[
    "starting",
    "streaming",
    "idle",
    "listening",
    "budget_exhausted",
    "muted",
    "reconnecting",
    "auth_failed",
    "degraded",
    "audio_unavailable",
    "stopping",
]
STATES: tuple[str, ...] = get_args(State)
STORAGE_PARTS = ("spool", "ledger")
"""Conditions of these parts mean: kept in memory, not durable."""


@dataclass(frozen=True, slots=True)
class LastError:
    code: int | None
    reason: str
    error_class: str
    hint: str
    at: float

    @classmethod
    def from_classified(cls, c: Classified, at: float) -> LastError:
        return cls(c.code, c.reason, str(c.error_class), c.hint, at)

    def payload(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "reason": self.reason,
            "class": self.error_class,
            "hint": self.hint,
            "at": iso_utc(self.at),
        }


def gap_payload(gap: Gap) -> dict[str, Any]:
    return {
        "ms": gap.ms,
        "started_at": iso_utc(gap.started_at),
        "ended_at": iso_utc(gap.ended_at),
    }


Listener = Callable[["StatusModel", str], None]


@dataclass
class StatusModel:
    device_id: str
    clock: Callable[[], float] = time.time
    state: str = "starting"
    since: float = 0.0
    session_id: str | None = None
    detail: str = ""
    error_class: str | None = None
    """The error class that caused the current state, if any (for structured logs)."""
    last_error: LastError | None = None
    last_gap: Gap | None = None
    next_attempt_at: float | None = None
    spare_token: bool = False
    budget_resets_at: float | None = None
    """While `budget_exhausted`: when sessions may open again (Unix seconds)."""
    counters: Counters = field(default_factory=Counters)
    conditions: dict[str, str] = field(default_factory=dict)
    """Degraded parts (part -> one line saying what, why and what to do)."""
    listeners: list[Listener] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.since:
            self.since = self.clock()

    def _changed(self, what: str) -> None:
        for listener in list(self.listeners):
            listener(self, what)

    def set_state(
        self,
        state: str,
        *,
        session_id: str | None = None,
        detail: str = "",
        error_class: str | None = None,
        retry_in: float | None = None,
        resets_at: float | None = None,
    ) -> bool:
        """Enter `state`. Listeners hear "state" when the state or the session changed, and
        "update" when only the detail did (another failure in the same state). Returns
        whether the state or the session changed."""
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}")
        now = self.clock()
        changed = state != self.state or session_id != self.session_id
        updated = changed or detail != self.detail or retry_in is not None
        if state != self.state:
            self.since = now
        self.state, self.session_id, self.detail = state, session_id, detail
        self.error_class = error_class
        self.next_attempt_at = None if retry_in is None else now + retry_in
        self.budget_resets_at = resets_at
        if updated:
            self._changed("state" if changed else "update")
        return changed

    def set_condition(self, part: str, line: str | None) -> None:
        """`part` is degraded (`line` says how), or fine again (None). Listeners hear
        "condition" only when it changed."""
        if self.conditions.get(part) == line:
            return
        if line is None:
            del self.conditions[part]
        else:
            self.conditions[part] = line
        self._changed("condition")

    @property
    def durable(self) -> bool:
        """False while the spool or the ledger is kept in memory."""
        return not any(part in self.conditions for part in STORAGE_PARTS)

    def record_error(self, classified: Classified) -> None:
        """What went wrong last (kept after recovery: it is history, not the state)."""
        self.last_error = LastError.from_classified(classified, self.clock())

    def record_gap(self, gap: Gap) -> None:
        """Audio was lost in an outage longer than the replay buffer (reported once)."""
        self.last_gap = gap  # (the engine counts it in `counters`)
        self._changed("gap")

    def engine_state(self, report: Report, *, spare_token: bool) -> None:
        """What the engine reports (`EngineReporter`)."""
        self.spare_token = spare_token
        self.set_state(
            report.state,
            session_id=report.session_id,
            detail=report.detail,
            error_class=report.error_class,
            retry_in=report.retry_in,
            resets_at=report.resets_at,
        )

    def to_payload(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "device_id": self.device_id,
            "state": self.state,
            "since": iso_utc(self.since),
            "session_id": self.session_id,
            "detail": self.detail,
            "last_error": self.last_error.payload() if self.last_error else None,
            "next_attempt_at": iso_utc(self.next_attempt_at) if self.next_attempt_at else None,
            "last_gap": gap_payload(self.last_gap) if self.last_gap else None,
            "spare_token": self.spare_token,
            "budget_resets_at": iso_utc(self.budget_resets_at) if self.budget_resets_at else None,
            "counters": asdict(self.counters),
            "conditions": dict(self.conditions),
            "durable": self.durable,
        }

    def to_json(self) -> bytes:
        return json.dumps(
            self.to_payload(), ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode()

    def summary(self) -> str:
        """One line for the log."""
        parts = [f"state {self.state}"]
        if self.session_id:
            parts.append(f"session {self.session_id}")
        if self.detail:
            parts.append(self.detail)
        if self.next_attempt_at is not None:
            parts.append(f"next attempt in {max(0.0, self.next_attempt_at - self.clock()):.1f} s")
        c = self.counters
        parts.append(f"reconnects {c.reconnects}, frames dropped {c.frames_dropped}, gaps {c.gaps}")
        return "; ".join(parts)
