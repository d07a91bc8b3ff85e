"""Gating and budget decisions per frame, and the billing guard's ledger and budget clock:
plain inputs, injected clocks, no sockets or sleeps."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from edgecap.audio.frame import Frame
from edgecap.billing.admission import Action, Admission, AdmissionSettings
from edgecap.billing.gate import GateMode, GateSettings
from edgecap.billing.guard import BillingGuard
from edgecap.billing.ledger import Ledger
from edgecap.engine.buffer import AudioBuffer
from edgecap.engine.types import SessionResult
from edgecap.providers.base import SessionTerminated

pytestmark = pytest.mark.unit

FRAME_S = 0.05
SPEECH = b"\x01" * 1600
QUIET = bytes(1600)


def voice(**kw: float) -> AdmissionSettings:
    return AdmissionSettings(GateSettings(mode=GateMode.VOICE, **kw))  # type: ignore[arg-type]


def frame(i: int, speech: bool) -> Frame:
    t = i * FRAME_S
    return Frame(i, SPEECH if speech else QUIET, 1_800_000_000 + t, t, 50)


class Detector:
    """Speech when a frame starts with 01; counts how often it is asked."""

    def __init__(self) -> None:
        self.asked = 0

    def is_speech(self, pcm: bytes) -> bool:
        self.asked += 1
        return pcm[:1] == b"\x01"


class Clock:
    def __init__(self) -> None:
        self.mono = 0.0
        self.wall = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += timedelta(seconds=seconds)


def test_voice_sends_the_preroll_from_before_the_onset_and_nothing_older() -> None:
    guard = BillingGuard(voice(preroll_ms=500), vad=Detector())
    buffer = AudioBuffer(30_000, 50)
    actions = []
    for i in range(200):  # 10 s of silence, then speech
        f = frame(i, speech=i >= 160)
        buffer.append(f)
        actions.append(guard.frame(f, buffer, None))
        if i < 160:
            # while closed only the pre-roll window (plus onset and detector lag) is kept
            assert buffer.backlog_ms <= guard.admission.s.keep_ms
            assert not guard.admission.wanted
    opened = actions.index(Action.OPEN)
    assert opened == 162  # 150 ms of speech makes an onset
    assert guard.admission.wanted
    # the backlog now starts 500 ms before the first speech frame (frame 160), less the
    # detector's lag allowance (500 ms): what a late detector flagged is still covered
    assert buffer.peek_message()[0].seq == 140
    assert guard.admission.preroll_from == pytest.approx(160 * FRAME_S - 1.0)


class Feeder:
    """Frames into an `Admission` at 50 ms steps; returns the actions that were not NONE
    with their times."""

    def __init__(self, adm: Admission) -> None:
        self.adm = adm
        self.t = 0.0

    def __call__(self, seconds: float, speech: bool, **kw: object) -> list[tuple[float, Action]]:
        out = []
        for _ in range(round(seconds / FRAME_S)):
            a = self.adm.frame(
                self.t,
                speech,
                **{"session_live": True, "turn_open": False, "backlog_ms": 0, **kw},  # type: ignore[arg-type]
            )
            if a is not Action.NONE:
                out.append((round(self.t, 2), a))
            self.t += FRAME_S
        return out


def test_voice_closes_after_the_idle_time_once_no_backlog_is_owed() -> None:
    adm = Admission(voice(idle_close_seconds=2.0))
    feed = Feeder(adm)
    assert feed(1.0, True, session_live=False)[0][1] is Action.OPEN
    # quiet, but 2 s of audio is still owed to the server (catch-up): no close
    assert feed(3.0, False, backlog_ms=2000) == []
    closed = feed(1.0, False)
    assert closed
    assert closed[0][1] is Action.CLOSE_IDLE
    assert not adm.wanted


def test_no_more_sessions_per_minute_than_allowed_a_quiet_one_is_kept_instead() -> None:
    adm = Admission(AdmissionSettings(GateSettings(mode=GateMode.VOICE), max_sessions_per_minute=3))
    feed = Feeder(adm)
    live = False
    events: list[tuple[float, Action]] = []
    for _ in range(6):  # a sentence (1 s) every 5 s: one session each, while allowed
        for speech, seconds in ((True, 1.0), (False, 4.0)):
            for _ in range(round(seconds / FRAME_S)):
                for t, a in feed(FRAME_S, speech, session_live=live):
                    events.append((t, a))
                    if a is Action.OPEN and not live:
                        adm.session_began(t)  # (the engine says so at Begin)
                    live = a is Action.OPEN or (live and a is not Action.CLOSE_IDLE)
    opens = [t for t, a in events if a is Action.OPEN]
    closes = [t for t, a in events if a is Action.CLOSE_IDLE]
    assert len(opens) == 3  # the third session is kept through the following sentences
    assert all(b - a < 5 for a, b in zip(opens, closes, strict=False))  # closed when quiet
    assert len(closes) == 2
    # once the first of them is a minute old, the quiet session closes
    later = feed(60.0, False, session_live=True)
    assert [a for _, a in later] == [Action.CLOSE_IDLE]
    assert later[0][0] == pytest.approx(opens[0] + 60.0, abs=0.06)


def test_a_talk_that_ended_while_its_session_was_opening_closes_it_once_it_began() -> None:
    """A short "yes" whose session is still connecting when the talk is over: the session
    is closed as soon as it is live (its audio is drained first), not kept open and billed
    until the next speech."""
    adm = Admission(voice(idle_close_seconds=0.3))
    feed = Feeder(adm)
    assert [a for _, a in feed(0.4, True, session_live=False)] == [Action.OPEN]
    assert feed(1.0, False, session_live=False) == []  # quiet; the session is not live yet
    assert not adm.wanted
    # it begins with 1.2 s of audio to send: nothing until no more than 1 s is owed
    assert feed(0.2, False, session_live=True, backlog_ms=1200) == []
    ended = feed(0.2, False, session_live=True, backlog_ms=600, turn_open=True)
    assert [a for _, a in ended] == [Action.END_TURN]
    assert [a for _, a in feed(0.1, False)] == [Action.CLOSE_IDLE]
    assert feed(2.0, False) == []  # once
    # speech resuming before it began keeps it: no close owed then
    feed(0.4, True, session_live=False)
    feed(1.0, False, session_live=False)
    assert [a for _, a in feed(0.4, True, session_live=False)] == [Action.OPEN]
    assert feed(0.2, True, session_live=True) == []


def test_quiet_with_a_turn_open_ends_the_turn_then_closes_when_it_is_final() -> None:
    adm = Admission(voice(idle_close_seconds=1.0, hangover_ms=300))
    feed = Feeder(adm)
    assert feed(0.5, True, session_live=False)[0][1] is Action.OPEN
    assert feed(2.0, True, turn_open=True) == []  # speaking: the server's turn is open
    # the detector hears the talk end; the server has not ended its turn yet: the idle time
    # after the last speech the detector heard, the turn is ended (ForceEndpoint), once
    ended = feed(2.0, False, turn_open=True)
    assert [a for _, a in ended] == [Action.END_TURN]
    assert ended[0][0] - 2.45 == pytest.approx(1.0, abs=0.06)
    assert not adm.wanted
    # the final turn arrives: closed with the next frame
    assert feed(0.05, False) == [(round(feed.t - FRAME_S, 2), Action.CLOSE_IDLE)]
    assert feed(1.0, False) == []  # once


def test_a_turn_not_final_in_time_is_closed_anyway_and_speech_resuming_keeps_it_open() -> None:
    adm = Admission(voice(idle_close_seconds=1.0, hangover_ms=0))
    adm.s = AdmissionSettings(adm.s.gate, end_turn_wait_seconds=2.0)
    feed = Feeder(adm)
    feed(0.5, True, session_live=False)
    ended = feed(1.5, False, turn_open=True)
    assert [a for _, a in ended] == [Action.END_TURN]
    # the person speaks again before the final came: the session is wanted again and
    # nothing closes while the turn goes on
    assert feed(0.5, True, turn_open=True)[0][1] is Action.OPEN
    assert adm.wanted
    assert feed(0.5, True, turn_open=True) == []
    # quiet again, and this time the server never ends its turn: closed 2 s after END_TURN
    ended = feed(5.0, False, turn_open=True)
    assert [a for _, a in ended] == [Action.END_TURN, Action.CLOSE_IDLE]
    assert ended[1][0] - ended[0][0] == pytest.approx(2.0, abs=0.06)


def test_budget_closes_at_the_next_pause_or_after_the_grace_at_the_latest() -> None:
    adm = Admission(AdmissionSettings(GateSettings(mode=GateMode.ALWAYS), budget_grace_seconds=30))
    assert adm.wanted
    adm.exhaust(now=100.0)
    assert not adm.wanted
    live = {"session_live": True, "backlog_ms": 0}
    assert adm.frame(101.0, True, turn_open=True, **live) is Action.NONE  # mid-turn
    assert adm.frame(102.0, True, turn_open=False, **live) is Action.CLOSE_BUDGET
    assert adm.frame(102.05, True, turn_open=False, **live) is Action.NONE  # once

    adm.replenish()
    assert adm.wanted  # "always" wants its session back
    adm.exhaust(now=200.0)
    assert adm.frame(229.0, True, turn_open=True, **live) is Action.NONE
    assert adm.frame(230.0, True, turn_open=True, **live) is Action.CLOSE_BUDGET


def test_voice_does_not_open_while_the_budget_is_used_up() -> None:
    guard = BillingGuard(voice(), vad=Detector())
    guard.admission.exhaust(now=0.0)
    buffer = AudioBuffer(30_000, 50)
    for i in range(100):
        f = frame(i, speech=True)
        buffer.append(f)
        assert guard.frame(f, buffer, None) is Action.NONE
    assert not guard.admission.wanted
    assert buffer.backlog_ms <= guard.admission.s.keep_ms  # nothing piles up meanwhile


def result(duration: float, billed: int | None) -> SessionResult:
    term = None if billed is None else SessionTerminated(billed_seconds=billed, audio_seconds=0)
    return SessionResult("s1", "stop", None, term, 10.0, 10.0 + duration, 0, 1)


def test_the_server_billed_time_is_recorded_else_the_measured_time() -> None:
    clock = Clock()
    ledger = Ledger()
    guard = BillingGuard(ledger=ledger, clock=lambda: clock.mono, wall=lambda: clock.wall)
    guard.session_began("s1")
    assert guard.session_ended(result(12.4, 13)) == 13
    guard.session_began("s2")
    assert guard.session_ended(result(7.5, None)) == pytest.approx(7.5)
    today = ledger.today(clock.wall)
    assert today.sessions == 2
    assert today.billed_seconds == pytest.approx(20.5)


def test_budget_runs_out_during_an_open_session_and_comes_back_at_the_reset_time() -> None:
    clock = Clock()  # 12:00 UTC
    ledger = Ledger(reset_at=time(4, 0), budget_seconds=60.0)
    ledger.record(clock.wall, 50.0, 10.0)  # 50 s billed earlier today
    guard = BillingGuard(
        AdmissionSettings(GateSettings(mode=GateMode.ALWAYS)),
        ledger=ledger,
        clock=lambda: clock.mono,
        wall=lambda: clock.wall,
    )
    guard.session_began("s1")
    clock.advance(9.0)
    assert guard.tick() is None  # 59 s
    clock.advance(1.0)
    change = guard.tick()
    assert change is not None
    assert change.exhausted
    assert "closing the open session at the next pause" in change.detail
    assert not guard.admission.wanted
    assert guard.resets_at == datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
    assert guard.tick() is None  # said once
    clock.advance(16 * 3600 - 11)
    assert guard.tick() is None  # 03:59:59 next day: still the old billing day
    clock.advance(1)
    change = guard.tick()
    assert change is not None
    assert not change.exhausted
    assert guard.admission.wanted


def test_a_reset_time_with_seconds_later_in_the_same_minute_is_today() -> None:
    ledger = Ledger(reset_at=time(10, 0, 50))
    now = datetime(2026, 5, 1, 10, 0, 20, tzinfo=UTC)
    assert ledger.billing_day(now).day == 30  # the day that began yesterday at 10:00:50
    assert ledger.next_reset(now) == datetime(2026, 5, 1, 10, 0, 50, tzinfo=UTC)
    assert ledger.next_reset(now + timedelta(seconds=30)).day == 2


def test_with_voice_the_budget_close_also_waits_for_the_detector_to_hear_a_pause() -> None:
    adm = Admission(voice(hangover_ms=0))
    live = {"session_live": True, "turn_open": False, "backlog_ms": 0}
    for i in range(10):
        adm.frame(i * FRAME_S, True, **live)
    adm.exhaust(now=0.5)
    # speech the server has not turned into a partial yet: not a quiet point
    assert adm.frame(0.55, True, **live) is Action.NONE
    assert adm.frame(0.60, False, **live) is Action.NONE  # 150 ms onset window still speech
    actions = [adm.frame(0.65 + i * FRAME_S, False, **live) for i in range(10)]
    assert Action.CLOSE_BUDGET in actions


def test_after_the_reset_the_next_onset_opens_a_session_again() -> None:
    adm = Admission(voice())
    live = {"turn_open": False, "backlog_ms": 0}
    t = 0.0
    for _ in range(10):  # speech: a session opens
        adm.frame(t, True, session_live=False, **live)
        t += FRAME_S
    adm.exhaust(now=t)
    for _ in range(40):  # still speaking while the budget session closes
        adm.frame(t, True, session_live=True, **live)
        t += FRAME_S
    for _ in range(40):  # speech with no session: nothing opens
        assert adm.frame(t, True, session_live=False, **live) is Action.NONE
        t += FRAME_S
    adm.replenish()
    actions = []
    for speech in [False] * 20 + [True] * 10:
        actions.append(adm.frame(t, speech, session_live=False, **live))
        t += FRAME_S
    assert Action.OPEN in actions


def test_the_detector_runs_while_a_turn_is_open_and_decides_when_the_talk_ended() -> None:
    detector = Detector()
    guard = BillingGuard(voice(idle_close_seconds=1.0), vad=detector)
    buffer = AudioBuffer(30_000, 50)

    def feed(i: int, speech: bool, turn_open: bool | None) -> Action:
        f = frame(i, speech)
        if turn_open is None:  # no session: the buffer keeps the pre-roll
            buffer.append(f)
            return guard.frame(f, buffer, turn_open)
        return guard.frame(f, AudioBuffer(30_000, 50), turn_open)  # sent at once: none owed

    actions = [feed(i, i >= 20, None) for i in range(30)]  # speech from 1.0 s
    assert Action.OPEN in actions
    asked = detector.asked
    # the session is live, speech until 5.5 s; the server keeps its turn open throughout
    ended = next(i for i in range(30, 300) if feed(i, i < 110, True) is Action.END_TURN)
    assert detector.asked == asked + ended - 29  # asked on every frame, turn or not
    # the turn is ended 1 s after the last speech the detector heard, not after the
    # server's own end-of-turn silence
    assert (ended - 109) * FRAME_S == pytest.approx(1.0, abs=0.06)
    assert feed(ended + 1, False, False) is Action.CLOSE_IDLE
