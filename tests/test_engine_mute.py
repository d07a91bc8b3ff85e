"""The privacy mute in the pure controller and the buffer, and "speech heard, nothing
transcribed" (no I/O: events in, actions out; times are plain numbers)."""

from __future__ import annotations

import pytest

from edgecap.audio.frame import Frame
from edgecap.engine import controller as c
from edgecap.engine.buffer import AudioBuffer
from edgecap.engine.controller import Phase
from edgecap.engine.heard import HeardWithoutTurns
from edgecap.engine.states import CloseReason, EndedBy, EngineState
from edgecap.providers.failures import Classified, ErrorClass
from tests.test_engine_controller import kinds, make, open_session, reports, started

pytestmark = pytest.mark.unit


def test_mute_ends_the_open_session_at_once_without_sending_what_waits() -> None:
    ctl = started(make())
    actions = ctl.handle(c.MuteChanged(5.0, muted=True))
    assert c.Close(CloseReason.MUTE, drain=False) in actions
    assert c.Prefetch(active=False) in actions  # no token fetched while muted
    assert reports(actions) == [EngineState.MUTED]
    # the session ends: nothing opens, no failure is counted, the status stays muted
    after = ctl.handle(c.SessionEnded(5.2, EndedBy.ROTATE, None))
    assert c.FetchToken not in kinds(after)
    assert ctl.phase is Phase.MUTED
    assert ctl.counters.reconnects == 0
    assert ctl.attempt == 0
    # audio and the gate come and go: still nothing opens; the status says muted again
    # once audio is back (the daemon reported audio_unavailable meanwhile)
    assert ctl.handle(c.AudioChanged(6.0, ok=False, reported=True)) == []
    assert reports(ctl.handle(c.AudioChanged(7.0, ok=True))) == [EngineState.MUTED]
    assert ctl.handle(c.WantChanged(7.5, wanted=True)) == []
    # mute off: the next session opens as usual
    unmuted = ctl.handle(c.MuteChanged(8.0, muted=False))
    assert kinds(unmuted)[-1] is c.FetchToken
    assert EngineState.MUTED not in reports(unmuted)
    open_session(ctl, 8.5, "s2")
    assert ctl.counters.sessions == 2


def test_mute_while_a_session_fails_or_opens_costs_no_retry() -> None:
    ctl = started(make())
    ctl.handle(c.MuteChanged(5.0, muted=True))
    failure = Classified(ErrorClass.TRANSIENT, 1006, "", "dropped")
    after = ctl.handle(c.SessionEnded(5.1, EndedBy.SERVER, failure))
    assert c.Wait not in kinds(after)
    assert ctl.counters.reconnects == 0
    assert ctl.phase is Phase.MUTED
    # muted while a token is being fetched: abandoned, and a late answer is ignored
    ctl.handle(c.MuteChanged(6.0, muted=False))
    assert ctl.phase is Phase.TOKEN
    assert c.Abandon() in ctl.handle(c.MuteChanged(6.1, muted=True))
    assert ctl.handle(c.TokenReady(6.2)) == []
    assert ctl.handle(c.OpenFailed(6.3, failure)) == []
    assert ctl.attempt == 0


def test_muted_from_the_start_and_through_a_budget_change() -> None:
    ctl = make(voice=True)
    assert reports(ctl.handle(c.MuteChanged(0.0, muted=True))) == [EngineState.MUTED]
    assert kinds(ctl.handle(c.Start(0.1))) == [c.Prefetch]
    assert ctl.phase is Phase.MUTED
    # the budget runs out while muted: the status keeps saying muted...
    assert ctl.handle(c.BudgetChanged(1.0, exhausted=True, detail="used up")) == []
    # ...and says the budget when the mute is lifted; no session opens
    unmuted = ctl.handle(c.MuteChanged(2.0, muted=False))
    assert reports(unmuted) == [EngineState.BUDGET_EXHAUSTED]
    assert c.FetchToken not in kinds(unmuted)
    # stopping while muted finishes at once
    ctl.handle(c.MuteChanged(3.0, muted=True))
    assert kinds(ctl.handle(c.Stop(4.0))) == [c.Finished]


def test_a_muted_buffer_hands_out_nothing_and_clears() -> None:
    buf = AudioBuffer(1000, 50)
    for i in range(5):
        buf.append(Frame(i, b"\0" * 1600, 0.05 * i, 0.05 * i, 50))
    assert buf.peek_message()
    buf.held = True
    assert buf.peek_message() == []
    assert buf.next_frame_ms() is None
    assert buf.clear() == 250
    assert len(buf) == 0
    assert buf.backlog_ms == 0


def test_speech_heard_with_no_turn_is_an_event_with_its_duration() -> None:
    heard = HeardWithoutTurns(clock=lambda: 1_700_000_000.0)
    heard.opened(10.0)
    event = heard.session_ended("s1", 11.25)
    assert event is not None
    assert (event.session_id, event.speech_seconds, event.at) == ("s1", 1.25, 1_700_000_000.0)
    assert heard.count == 1
    # a turn (even a partial) means something was transcribed
    heard.opened(20.0)
    heard.turn()
    assert heard.session_ended("s2", 25.0) is None
    # too little speech (a click), a session not opened for speech, a mute: nothing
    heard.opened(30.0)
    assert heard.session_ended("s3", 30.1) is None
    assert heard.session_ended("s4", 40.0) is None
    heard.opened(50.0)
    heard.disarm()
    assert heard.session_ended("s5", 60.0) is None
    assert heard.count == 1
