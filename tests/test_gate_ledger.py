"""Voice gate and billing ledger: decisions from plain inputs and an injected clock."""

from __future__ import annotations

from datetime import datetime, time

import pytest

from edgecap.billing.gate import GateDecision, GateMode, GateSettings, MicroVadDetector, VoiceGate
from edgecap.billing.ledger import Ledger
from edgecap.sim.microphone import silence, tone
from tests.harness import SpeechFixture

pytestmark = pytest.mark.unit


def run(
    gate: VoiceGate, pattern: list[bool], start: float = 0.0, **kw: bool
) -> list[tuple[float, GateDecision]]:
    out = []
    for i, speech in enumerate(pattern):
        now = start + i * 0.05
        d = gate.feed(now, speech, **kw)
        if d is not GateDecision.NONE:
            out.append((round(now, 2), d))
    return out


def test_voice_opens_after_onset_and_closes_after_idle() -> None:
    gate = VoiceGate(GateSettings(idle_close_seconds=2.0))
    pattern = [False] * 10 + [True] * 20 + [False] * 60
    decisions = run(gate, pattern)
    assert decisions[0] == (0.6, GateDecision.OPEN)  # third speech frame = 150 ms onset
    assert decisions[1][1] is GateDecision.CLOSE
    # closed 2 s after the last frame the detector flagged (1.45 s): the hang-over keeps
    # short pauses inside speech, it does not delay the close
    assert decisions[1][0] == pytest.approx(3.45)
    # after a close the gate listens afresh: the next session needs an onset of its own
    assert gate.speech_seconds == pytest.approx(1.0)
    assert gate.onset_at == pytest.approx(0.5)  # the pre-roll counts back from here
    assert not gate.speaking
    assert run(gate, [False, True, False] * 10, start=5.0) == []


def test_a_click_or_short_noise_does_not_open_a_session() -> None:
    gate = VoiceGate(GateSettings())
    assert run(gate, [False, True, False, False, True, False] * 20) == []


def test_no_close_while_a_turn_is_open() -> None:
    gate = VoiceGate(GateSettings(idle_close_seconds=1.0))
    run(gate, [True] * 5)
    assert gate.open
    assert run(gate, [False] * 60, start=1.0, turn_open=True) == []
    assert run(gate, [False] * 2, start=5.0)[0][1] is GateDecision.CLOSE


def test_always_mode_never_decides() -> None:
    gate = VoiceGate(GateSettings(mode=GateMode.ALWAYS))
    assert gate.open
    assert run(gate, [True] * 10 + [False] * 400) == []


def test_vad_finds_speech_in_fixtures_and_never_opens_on_silence_or_hum(
    speech_fixtures: list[SpeechFixture],
) -> None:
    vad = MicroVadDetector()
    frame = 1600
    for f in speech_fixtures:
        pcm = silence(1.0) + f.pcm  # the detector is already running when speech starts
        frames = [pcm[i : i + frame] for i in range(0, len(pcm) - frame + 1, frame)]
        gate = VoiceGate(GateSettings())
        decisions = [gate.feed(i * 0.05, vad.is_speech(fr)) for i, fr in enumerate(frames)]
        assert GateDecision.OPEN in decisions  # the gate opens on every utterance
        assert gate.onset_at is not None
        # the 500 ms pre-roll, counted back from the onset, reaches the first word
        assert gate.onset_at - 0.5 <= 1.0 + f.leading_silence_ms / 1000
    # steady hum at speech-band frequencies (a fridge, a transformer) never opens a session
    hum = silence(2.0) + tone(5.0, 50, 0.2) + tone(5.0, 100, 0.2) + tone(5.0, 200, 0.05)
    gate = VoiceGate(GateSettings(idle_close_seconds=2.0))
    decisions = [
        gate.feed(i * 0.05, vad.is_speech(hum[i * frame : (i + 1) * frame]))
        for i in range(len(hum) // frame)
    ]
    assert GateDecision.OPEN not in decisions
    # a loud tone switching on may open once (pymicro-vad flags its first 0.8 s), then closes
    loud = silence(2.0) + tone(20.0, 200, 0.2)
    gate = VoiceGate(GateSettings(idle_close_seconds=2.0))
    decisions = [
        gate.feed(i * 0.05, vad.is_speech(loud[i * frame : (i + 1) * frame]))
        for i in range(len(loud) // frame)
    ]
    assert decisions.count(GateDecision.OPEN) <= 1
    assert not gate.open


def test_ledger_totals_days_months_and_budget() -> None:
    ledger = Ledger(reset_at=time(4, 0), budget_seconds=600)
    ledger.record(datetime(2026, 11, 20, 23, 0), billed_seconds=300, speech_seconds=250)
    # 03:59 still belongs to the billing day that started at 04:00 the day before
    ledger.record(datetime(2026, 11, 21, 3, 59), billed_seconds=200, speech_seconds=180)
    ledger.record(datetime(2026, 11, 21, 4, 0), billed_seconds=50, speech_seconds=40)
    assert ledger.today(datetime(2026, 11, 21, 3, 0)).billed_seconds == 500
    assert ledger.today(datetime(2026, 11, 21, 12, 0)).billed_seconds == 50
    assert ledger.month(datetime(2026, 11, 21, 12, 0)).sessions == 3
    assert not ledger.exhausted(datetime(2026, 11, 21, 3, 0))
    assert ledger.exhausted(datetime(2026, 11, 21, 3, 0), open_session_seconds=100)
    assert ledger.next_reset(datetime(2026, 11, 21, 3, 0)) == datetime(2026, 11, 21, 4, 0)
    assert ledger.next_reset(datetime(2026, 11, 21, 5, 0)) == datetime(2026, 11, 22, 4, 0)
    assert Ledger().budget_left(datetime(2026, 11, 21)) is None
