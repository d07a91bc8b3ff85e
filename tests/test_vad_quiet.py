"""A quiet room costs little: the voice-activity model does not run (its CPU is the
daemon's largest cost with the voice gate), yet it hears speech as it did; and while the
daemon only listens, quiet frames wake the event loop twice a second, not twenty times."""

from __future__ import annotations

import array

import pytest

from edgecap.audio.level import level_limit, peak_below
from edgecap.billing.gate import MicroVadDetector
from edgecap.sim.microphone import silence
from tests.harness import SpeechFixture

pytestmark = pytest.mark.unit

FRAME = 1600  # 50 ms


def pcm16(*samples: int) -> bytes:
    return array.array("h", samples).tobytes()


def frames(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + FRAME] for i in range(0, len(pcm) - FRAME + 1, FRAME)]


def scaled(pcm: bytes, peak: int) -> bytes:
    a = array.array("h")
    a.frombytes(pcm)
    top = max(-min(a), *a)
    return array.array("h", (x * peak // top for x in a)).tobytes()


def onsets(verdicts: list[bool]) -> list[int]:
    """Frame index where each run of >= 3 speech frames starts."""
    out, run = [], 0
    for i, v in enumerate([*verdicts, False]):
        if v:
            run += 1
        elif run:
            if run >= 3:
                out.append(i - run)
            run = 0
    return out


@pytest.mark.parametrize(
    ("samples", "limit", "below"),
    [
        ((0, 0, 0), 1, True),  # digital silence, even at the lowest limit
        ((0, 1, 0), 1, False),
        ((255, -255, 3), 256, True),
        ((256, 0), 256, False),
        ((0, -256), 256, False),  # high byte ff: the fast path alone would pass it
        ((103, -103), 104, True),
        ((0, -104), 104, False),
        ((1000, -1000), 1001, True),  # above 256: the exact path only
        ((1001,), 1001, False),
    ],
)
def test_peak_below_is_exact_at_the_limit(
    samples: tuple[int, ...], limit: int, below: bool
) -> None:
    assert peak_below(pcm16(*samples), limit) is below


def test_level_limit_in_dbfs() -> None:
    assert level_limit(-50.0) == 104
    assert level_limit(-20.0) == 3277
    assert level_limit(-96.0) == 1  # exact digital silence only
    assert level_limit(0.0) == 32768


class CountingModel:
    """Stands in for the model to see what it is fed (speech above 1000)."""

    def __init__(self) -> None:
        self.fed = bytearray()

    def process_10ms(self, audio: bytes) -> float:
        self.fed += audio
        return 1.0 if peak_below(audio, 1000) is False else 0.0


def test_model_stops_after_a_second_of_quiet_and_is_warmed_before_it_runs_again() -> None:
    model = CountingModel()
    vad = MicroVadDetector(quiet_dbfs=-50, hold_ms=1000, warm_ms=300, model=model)
    loud = pcm16(*([5000, -5000] * 400))
    quiet = [pcm16(*([i % 90] * 800)) for i in range(60)]  # 3 s below -50 dBFS, distinct
    assert vad.is_speech(loud)
    assert [vad.is_speech(f) for f in quiet] == [False] * 60
    # the model heard the first second of quiet (its trailing verdicts), then nothing
    assert bytes(model.fed) == loud + b"".join(quiet[:20])
    assert vad.skipped_frames == 40
    model.fed.clear()
    assert vad.is_speech(loud)
    # before the loud frame it is fed the last 300 ms of quiet, in order
    assert bytes(model.fed) == b"".join(quiet[-6:]) + loud
    model.fed.clear()
    assert not vad.is_speech(quiet[0])  # the hold starts again: the model runs
    assert bytes(model.fed) == quiet[0]


def test_speech_after_long_quiet_is_heard_at_the_same_frames(
    speech_fixtures: list[SpeechFixture],
) -> None:
    program = silence(3.0)
    for f in speech_fixtures:
        program += f.pcm + silence(5.0)
    always = MicroVadDetector(hold_ms=10**9)  # the model runs on every frame
    ref = [always.is_speech(f) for f in frames(program)]
    assert always.skipped_frames == 0
    skipping = MicroVadDetector()  # the default, -50 dBFS
    got = [skipping.is_speech(f) for f in frames(program)]
    # most of a quiet room's frames never reach the model
    assert skipping.skipped_frames > 0.5 * len(got)
    # every utterance is heard, its onset at most 100 ms later than with the model running
    # all along (the pre-roll allows 500 ms for the model's reaction), or a little earlier
    assert len(onsets(got)) == len(onsets(ref)) >= len(speech_fixtures)
    assert all(-4 <= g - r <= 2 for g, r in zip(onsets(got), onsets(ref), strict=True))


def test_speech_below_the_quiet_level_is_heard_only_with_a_lower_setting(
    speech_fixtures: list[SpeechFixture],
) -> None:
    faint = silence(2.0) + scaled(speech_fixtures[0].pcm, 90) + silence(1.0)  # -51 dBFS peak
    default = MicroVadDetector()
    assert not any(default.is_speech(f) for f in frames(faint))
    low = MicroVadDetector(quiet_dbfs=-60)
    assert any(low.is_speech(f) for f in frames(faint))


# -- the capture thread's quiet hand-off ----------------------------------------------
