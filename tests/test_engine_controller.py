"""The session lifecycle without I/O: events in, actions out (`SessionController`).

Each scenario is a sequence a device meets in the field; times are plain numbers, so a
back-off of five minutes takes no time and every decision is checked as it is made."""

from __future__ import annotations

import random

import pytest

from edgecap.engine import controller as c
from edgecap.engine.controller import ControllerSettings, Phase, SessionController
from edgecap.engine.policy import RetryPolicy, RetrySettings
from edgecap.engine.states import CloseReason, EndedBy, EngineState
from edgecap.providers.assemblyai.errors import classify_close
from edgecap.providers.failures import Classified, ErrorClass

pytestmark = pytest.mark.unit

NO_JITTER = RetrySettings(jitter=0.0)


def make(
    *, voice: bool = False, prefetch: bool = True, max_session: float = 3600.0
) -> SessionController:
    ctl = SessionController(
        RetryPolicy(NO_JITTER, random.Random(1)),
        ControllerSettings(max_session_seconds=max_session, voice=voice, prefetch=prefetch),
        wanted=not voice,
    )
    ctl.handle(c.AudioChanged(0.0, ok=True))
    return ctl


def kinds(actions: list[c.Action]) -> list[type]:
    return [type(a) for a in actions]


def reports(actions: list[c.Action]) -> list[EngineState]:
    return [a.state for a in actions if isinstance(a, c.Report)]


def open_session(ctl: SessionController, now: float, sid: str = "s1") -> list[c.Action]:
    """Start (or continue after a wait) until the session has begun."""
    assert ctl.phase is Phase.TOKEN
    assert kinds(ctl.handle(c.TokenReady(now))) == [c.Connect]
    return ctl.handle(c.Began(now, sid))


def started(ctl: SessionController, now: float = 0.0) -> SessionController:
    assert kinds(ctl.handle(c.Start(now))) == [c.FetchToken]
    open_session(ctl, now)
    assert ctl.phase is Phase.STREAMING
    return ctl


def test_a_session_opens_when_audio_flows_and_reports_streaming() -> None:
    ctl = SessionController(RetryPolicy(NO_JITTER), ControllerSettings())
    assert kinds(ctl.handle(c.Start(0.0))) == [c.Prefetch]  # no audio yet: nothing opens
    assert ctl.phase is Phase.WAIT_AUDIO
    assert kinds(ctl.handle(c.AudioChanged(1.0, ok=True))) == [c.FetchToken]
    actions = open_session(ctl, 1.5, "abc")
    assert reports(actions) == [EngineState.STREAMING]
    report = next(a for a in actions if isinstance(a, c.Report))
    assert report.session_id == "abc"
    assert c.Prefetch(active=True) in actions  # a spare token for the next session
    assert ctl.counters.sessions == 1


def test_drop_mid_turn_reconnects_at_once_then_backs_off() -> None:
    ctl = started(make())
    drop = classify_close(1006, "")
    actions = ctl.handle(c.SessionEnded(5.0, EndedBy.SERVER, drop))
    wait = next(a for a in actions if isinstance(a, c.Wait))
    assert wait.seconds == 0.0  # the first failure after a healthy period: at once
    assert reports(actions) == [EngineState.RECONNECTING]
    assert ctl.counters.reconnects == 1
    assert kinds(ctl.handle(c.WaitOver(5.0))) == [c.FetchToken]
    # the next attempt fails too: now it backs off
    actions = ctl.handle(c.OpenFailed(5.2, classify_close(1006, "")))
    assert next(a for a in actions if isinstance(a, c.Wait)).seconds == pytest.approx(0.5)
    retry = next(a for a in actions if isinstance(a, c.Retrying))
    assert retry.attempt == 2


def test_a_1008_storm_re_mints_once_then_slows_down_and_opens_the_breaker() -> None:
    ctl = started(make())
    refused = classify_close(1008, "Unauthorized connection: invalid token")
    assert refused.error_class is ErrorClass.AUTH
    first = ctl.handle(c.SessionEnded(1.0, EndedBy.SERVER, refused))
    assert c.Prefetch(active=False, discard=True) in first  # the spare may be bad too
    assert next(a for a in first if isinstance(a, c.Wait)).seconds == 0.0
    delays, states = [], []
    now = 1.0
    for i in range(4):  # each new session dies right after Begin
        ctl.handle(c.WaitOver(now))
        open_session(ctl, now, f"s{i + 2}")
        now += 1.0
        actions = ctl.handle(c.SessionEnded(now, EndedBy.SERVER, refused))
        delays.append(next(a for a in actions if isinstance(a, c.Wait)).seconds)
        states += reports(actions)
    assert states == [EngineState.AUTH_FAILED] * 4
    assert delays[0] == 60.0  # auth slow-down
    assert delays[1:] == [300.0] * 3  # the quick-failure breaker: cool-down
    assert ctl.policy.breaker_open


def test_rotation_at_a_quiet_point_inside_the_window_without_draining() -> None:
    ctl = make(max_session=100.0)
    ctl.handle(c.Start(0.0))
    actions = open_session(ctl, 0.0)
    check = next(a for a in actions if isinstance(a, c.ScheduleCheck))
    assert check.at == pytest.approx(45.0)  # deadline 95 (5 s margin), window 50 s
    # a turn is open at the window's start: keep checking
    actions = ctl.handle(c.CheckDue(45.0, turn_open=True, token_ready=True))
    assert kinds(actions) == [c.ScheduleCheck]
    # a final turn arrives: the speaker paused, the next token is ready: rotate now
    actions = ctl.handle(c.TurnActivity(46.0, final=True, turn_open=False, token_ready=True))
    assert actions == [c.Close(CloseReason.QUIET, drain=False)]
    assert ctl.phase is Phase.CLOSING
    # a rotation is not a failure: the next session opens at once
    actions = ctl.handle(c.SessionEnded(46.5, EndedBy.ROTATE, None))
    assert kinds(actions) == [c.FetchToken]
    assert ctl.counters.reconnects == 0


def test_rotation_waits_for_the_spare_token_until_the_deadline() -> None:
    ctl = make(max_session=100.0)
    ctl.handle(c.Start(0.0))
    open_session(ctl, 0.0)
    assert ctl.handle(c.TurnActivity(60.0, final=True, turn_open=False, token_ready=False)) == []
    actions = ctl.handle(c.CheckDue(95.0, turn_open=True, token_ready=False))
    assert actions == [c.Close(CloseReason.DEADLINE, drain=False)]


def test_idle_close_during_a_turn_drains_so_the_turn_is_finished() -> None:
    ctl = make(voice=True)
    assert reports(ctl.handle(c.Start(0.0))) == [EngineState.LISTENING]
    assert kinds(ctl.handle(c.WantChanged(1.0, wanted=True))) == [c.FetchToken]  # speech
    open_session(ctl, 1.5)
    ctl.handle(c.TurnActivity(5.0, final=False, turn_open=True, token_ready=True))
    ctl.handle(c.WantChanged(9.0, wanted=False))
    actions = ctl.handle(c.CloseRequested(10.0, CloseReason.IDLE))
    assert actions == [c.Close(CloseReason.IDLE, drain=True)]
    # the session ends cleanly: no session is wanted, so the engine listens for speech
    actions = ctl.handle(c.SessionEnded(11.0, EndedBy.STOP, None))
    assert reports(actions) == [EngineState.LISTENING]
    assert ctl.phase is Phase.WAIT_SPEECH
    assert kinds(ctl.handle(c.WantChanged(20.0, wanted=True))) == [c.FetchToken]


def test_stop_during_connect_abandons_it_and_finishes_without_a_close() -> None:
    ctl = make()
    ctl.handle(c.Start(0.0))
    ctl.handle(c.TokenReady(0.1))
    assert ctl.phase is Phase.CONNECTING
    assert ctl.handle(c.Stop(0.2)) == [c.Abandon(), c.Finished()]
    assert ctl.handle(c.Began(0.3, "late")) == []  # nothing runs after the stop


def test_stop_while_streaming_drains_and_finishes_when_the_session_ended() -> None:
    ctl = started(make())
    assert ctl.handle(c.Stop(5.0)) == [c.Close(CloseReason.STOP, drain=True)]
    assert ctl.handle(c.Stop(5.1)) == []
    assert ctl.handle(c.SessionEnded(6.0, EndedBy.STOP, None)) == [c.Finished()]


def test_stop_during_a_back_off_finishes_at_once() -> None:
    ctl = started(make())
    ctl.handle(c.SessionEnded(1.0, EndedBy.SERVER, classify_close(3009, "Too many")))
    assert ctl.phase is Phase.BACKOFF
    assert ctl.handle(c.Stop(1.5)) == [c.Finished()]
    assert ctl.handle(c.WaitOver(6.0)) == []


def test_audio_lost_while_connecting_closes_the_session_as_soon_as_it_began() -> None:
    ctl = make()
    ctl.handle(c.Start(0.0))
    ctl.handle(c.TokenReady(0.1))
    assert ctl.handle(c.AudioChanged(0.2, ok=False, reported=True)) == []
    actions = ctl.handle(c.Began(0.3, "s1"))
    assert actions[-1] == c.Close(CloseReason.AUDIO_LOST, drain=True)  # billed: ended now
    actions = ctl.handle(c.SessionEnded(0.5, EndedBy.STOP, None))
    assert actions == [c.Prefetch(active=False)]  # the daemon's audio_unavailable stands
    assert ctl.phase is Phase.WAIT_AUDIO


def test_audio_restarted_by_a_reload_reports_idle_until_it_flows_again() -> None:
    ctl = started(make())
    ctl.handle(c.AudioChanged(3.0, ok=False))  # not reported by the daemon
    actions = ctl.handle(c.SessionEnded(3.5, EndedBy.STOP, None))
    assert reports(actions) == [EngineState.IDLE]
    assert kinds(ctl.handle(c.AudioChanged(4.0, ok=True))) == [c.FetchToken]


def test_a_used_up_budget_is_what_the_status_says_until_a_new_day() -> None:
    ctl = started(make())
    actions = ctl.handle(c.BudgetChanged(10.0, True, "daily budget used up", resets_at=99.0))
    assert actions == [
        c.Report(EngineState.BUDGET_EXHAUSTED, "daily budget used up", resets_at=99.0)
    ]
    ctl.handle(c.WantChanged(10.0, wanted=False))
    ctl.handle(c.CloseRequested(11.0, CloseReason.BUDGET))
    failure = Classified(ErrorClass.TRANSIENT, 1006, "", "dropped")
    actions = ctl.handle(c.SessionEnded(12.0, EndedBy.SERVER, failure))
    assert reports(actions) == []  # a failing session does not hide the used-up budget
    ctl.handle(c.WaitOver(12.0))
    assert ctl.phase is Phase.WAIT_SPEECH  # nothing opens
    assert reports(ctl.handle(c.BudgetChanged(50.0, False, "new day"))) == [EngineState.IDLE]
    assert kinds(ctl.handle(c.WantChanged(50.0, wanted=True))) == [c.FetchToken]


def test_session_expiry_is_not_a_failure() -> None:
    ctl = started(make())
    over = classify_close(3008, "Session Expired: Maximum session duration exceeded")
    actions = ctl.handle(c.SessionEnded(3600.0, EndedBy.SERVER, over))
    assert kinds(actions) == [c.FetchToken]
    assert ctl.policy.failures == 0


def test_nothing_is_reported_after_stop() -> None:
    ctl = make()
    ctl.handle(c.Start(0.0))
    ctl.handle(c.Stop(0.1))
    assert ctl.handle(c.BudgetChanged(1.0, True, "used up")) == []
    assert ctl.phase is Phase.STOPPED
