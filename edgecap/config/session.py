"""The `[session]` section: how long sessions last, when they open (gating), what they may
cost per day (budget), and the server-side backstops (no I/O)."""

from __future__ import annotations

import re
from datetime import time
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgecap.config.base import Float, Int, _lower, _q, _Section, config_problem

GateName = Literal["voice", "always"]
_RESET_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def parse_reset_time(value: str) -> time:
    """ "HH:MM" or "HH:MM:SS" (local time) -> `datetime.time`; ValueError when invalid."""
    m = _RESET_RE.match(value.strip())
    if m is None:
        raise ValueError(value)
    hour, minute, second = int(m[1]), int(m[2]), int(m[3] or 0)
    return time(hour, minute, second)  # raises ValueError when out of range


class SessionConfig(_Section):
    max_session_seconds: Int = Field(default=3600, ge=60, le=10800)
    # Billing guard (issue 4).
    gate: GateName = "voice"
    idle_close_seconds: Float = Field(default=0.3, ge=0.2, le=3600)
    max_sessions_per_minute: Int = Field(default=20, ge=1, le=600)
    preroll_ms: Int = Field(default=200, ge=0, le=2000)
    vad_threshold: Float = Field(default=0.5, gt=0, lt=1)
    vad_hangover_ms: Int = Field(default=300, ge=0, le=5000)
    vad_quiet_dbfs: Float = Field(default=-50.0, ge=-96, le=-20)
    daily_budget_minutes: Float | None = Field(default=None, gt=0, le=1440)
    daily_budget_cost: Float | None = Field(default=None, gt=0, le=100_000)
    budget_reset_time: str = "00:00"
    inactivity_timeout_seconds: Int = Field(default=30, ge=0, le=3600)

    @field_validator("gate", mode="before")
    @classmethod
    def _gate_case(cls, value: object) -> object:
        return _lower(value)

    @field_validator("budget_reset_time")
    @classmethod
    def _check_reset(cls, value: str) -> str:
        try:
            parsed = parse_reset_time(value)
        except ValueError:
            raise config_problem(
                f'must be a local time "HH:MM" or "HH:MM:SS", e.g. "04:00" (got {_q(value)})'
            ) from None
        return parsed.isoformat(timespec="seconds" if parsed.second else "minutes")

    @field_validator("inactivity_timeout_seconds")
    @classmethod
    def _check_inactivity(cls, value: int) -> int:
        if 0 < value < 5:
            raise config_problem(
                f"must be 0 (not sent) or 5..3600 seconds, the server's range (got {value})"
            )
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> SessionConfig:
        if self.idle_close_seconds >= self.max_session_seconds:
            raise config_problem(
                f"must be < session.max_session_seconds ({self.max_session_seconds}); "
                f"got {self.idle_close_seconds:g}",
                key="idle_close_seconds",
            )
        return self

    @property
    def reset_time(self) -> time:
        """When a new billing day starts (local time)."""
        return parse_reset_time(self.budget_reset_time)

    @property
    def budget_seconds(self) -> float | None:
        m = self.daily_budget_minutes
        return None if m is None else m * 60
