"""The status model: what the retained `status` topic says and the one-line log summary."""

from __future__ import annotations

import pytest

from edgecap.app.status import STATES, StatusModel
from edgecap.engine.gaps import Gap
from edgecap.providers.assemblyai.errors import classify_close, classify_http_status
from tests.strict_json import strict_loads

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_payload_has_the_documented_fields() -> None:
    clock = Clock()
    status = StatusModel("kitchen-pi", clock=clock)
    payload = strict_loads(status.to_json())
    assert payload == {
        "schema": "edgecap.status/1",
        "device_id": "kitchen-pi",
        "state": "starting",
        "since": "2023-11-14T22:13:20.000Z",
        "session_id": None,
        "detail": "",
        "last_error": None,
        "next_attempt_at": None,
        "last_gap": None,
        "spare_token": False,
        "budget_resets_at": None,
        "counters": {
            "sessions": 0,
            "reconnects": 0,
            "turns": 0,
            "frames_dropped": 0,
            "gaps": 0,
            "token_failures": 0,
        },
        "conditions": {},
        "durable": True,
    }
    assert set(STATES) == {
        "muted",
        "starting",
        "streaming",
        "idle",
        "listening",
        "budget_exhausted",
        "reconnecting",
        "auth_failed",
        "degraded",
        "audio_unavailable",
        "stopping",
    }


def test_a_failure_says_what_why_and_when_next() -> None:
    clock = Clock()
    status = StatusModel("pi", clock=clock)
    seen: list[tuple[str, str]] = []
    status.listeners.append(lambda s, what: seen.append((what, s.state)))
    status.set_state("streaming", session_id="s-1")
    clock.now += 30
    c = classify_http_status(401)
    status.record_error(c)
    status.set_state("auth_failed", detail=c.line(), error_class="auth", retry_in=60.0)
    p = status.to_payload()
    assert p["state"] == "auth_failed"
    assert p["since"] == "2023-11-14T22:13:50.000Z"
    assert p["session_id"] is None
    assert p["last_error"]["class"] == "auth"
    assert p["last_error"]["code"] == 401
    assert "credential" in p["last_error"]["hint"]
    assert p["next_attempt_at"] == "2023-11-14T22:14:50.000Z"
    assert seen == [("state", "streaming"), ("state", "auth_failed")]
    # the same state again with a new detail is published, without a new `since`
    status.set_state("auth_failed", detail="again", error_class="auth", retry_in=120.0)
    assert seen[-1] == ("update", "auth_failed")
    assert status.to_payload()["since"] == "2023-11-14T22:13:50.000Z"
    # recovering keeps the last error as history
    status.set_state("streaming", session_id="s-2")
    assert status.to_payload()["last_error"]["code"] == 401


def test_rotation_is_a_change_of_session_only() -> None:
    status = StatusModel("pi", clock=Clock())
    seen: list[str] = []
    status.listeners.append(lambda s, what: seen.append(what))
    assert status.set_state("streaming", session_id="a")
    assert not status.set_state("streaming", session_id="a")
    assert status.set_state("streaming", session_id="b")
    assert seen == ["state", "state"]


def test_gap_is_reported_with_its_length() -> None:
    status = StatusModel("pi", clock=Clock())
    seen: list[str] = []
    status.listeners.append(lambda s, what: seen.append(what))
    status.record_gap(
        Gap(ms=3450, frames=69, started_at=1_700_000_000.0, ended_at=1_700_000_003.45)
    )
    p = status.to_payload()
    assert p["last_gap"] == {
        "ms": 3450,
        "started_at": "2023-11-14T22:13:20.000Z",
        "ended_at": "2023-11-14T22:13:23.450Z",
    }
    assert seen == ["gap"]


def test_summary_is_one_line() -> None:
    clock = Clock()
    status = StatusModel("pi", clock=clock)
    c = classify_close(1011, "Internal Server Error")
    status.record_error(c)
    status.set_state("reconnecting", detail=c.line(), error_class="transient", retry_in=0.5)
    line = status.summary()
    assert "\n" not in line
    assert line.startswith("state reconnecting; close 1011 'Internal Server Error'")
    assert "next attempt in 0.5 s" in line
    assert "frames dropped 0" in line


def test_unknown_state_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown state"):
        StatusModel("pi").set_state("sleeping")


def test_a_condition_is_published_when_it_changes_and_storage_in_memory_is_not_durable() -> None:
    status = StatusModel("pi", clock=Clock())
    seen: list[str] = []
    status.listeners.append(lambda s, what: seen.append(what))
    status.set_condition("spool", None)  # nothing to clear: no message
    assert seen == []
    line = "kept in memory: the disk is full (database or disk is full); ..."
    status.set_condition("spool", line)
    status.set_condition("spool", line)  # the same again: no message
    assert seen == ["condition"]
    p = status.to_payload()
    assert (p["conditions"], p["durable"]) == ({"spool": line}, False)
    status.set_condition("ledger", "kept in memory: ...")
    status.set_condition("spool", None)
    assert status.to_payload()["durable"] is False  # the ledger still is in memory
    status.set_condition("ledger", None)
    status.set_condition("gps", "another part, degraded")  # not storage: still durable
    p = status.to_payload()
    assert (p["conditions"], p["durable"]) == ({"gps": "another part, degraded"}, True)
    assert seen == ["condition"] * 5
    assert strict_loads(status.to_json())["conditions"] == {"gps": "another part, degraded"}
