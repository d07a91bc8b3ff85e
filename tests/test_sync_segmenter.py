"""The Sync API's utterances from frames and verdicts: pre-roll + speech + hang-over, long
speech split at a pause, a clip that never pauses cut at the maximum (pure, no clock)."""

from __future__ import annotations

import pytest

from edgecap.billing.admission import DETECTOR_LAG_MS
from edgecap.billing.gate import GateSettings
from edgecap.sync.segmenter import (
    Appended,
    Closed,
    EndReason,
    Event,
    Opened,
    SegmentSettings,
    UtteranceSegmenter,
)

pytestmark = pytest.mark.unit

FRAME_MS = 50
WALL0 = 1_700_000_000.0


def settings(**kw: int) -> SegmentSettings:
    gate = GateSettings(frame_ms=FRAME_MS, hangover_ms=300, preroll_ms=500)
    return SegmentSettings(gate=gate, **kw)


class Feeder:
    def __init__(self, seg: UtteranceSegmenter) -> None:
        self.seg = seg
        self.n = 0
        self.events: list[Event] = []

    def play(self, verdicts: str) -> None:
        """'s' speech frame, '.' silence; each frame's pcm is its index (2 bytes)."""
        for v in verdicts:
            t = self.n * FRAME_MS / 1000
            pcm = self.n.to_bytes(2, "little")
            self.events += self.seg.feed(100.0 + t, WALL0 + t, pcm, v == "s")
            self.n += 1

    def utterances(self) -> list[tuple[Opened, bytes, Closed]]:
        found, current, audio = [], None, b""
        for e in self.events:
            if isinstance(e, Opened):
                current, audio = e, e.audio
            elif isinstance(e, Appended):
                audio += e.audio
            else:
                assert current is not None
                found.append((current, audio, e))
                current = None
        return found


def frames_of(audio: bytes) -> list[int]:
    return [int.from_bytes(audio[i : i + 2], "little") for i in range(0, len(audio), 2)]


def test_an_utterance_is_preroll_speech_and_hangover() -> None:
    f = Feeder(UtteranceSegmenter(settings()))
    f.play("." * 40 + "s" * 20 + "." * 20)
    [(opened, audio, closed)] = f.utterances()
    preroll_frames = (500 + DETECTOR_LAG_MS) // FRAME_MS
    got = frames_of(audio)
    assert got[0] == 40 - preroll_frames  # counted back from the first speech frame
    assert got == list(range(got[0], got[-1] + 1))  # contiguous, nothing twice
    # the hang-over (after the onset window stops counting speech), then the closing frame
    assert 59 + 300 // FRAME_MS < got[-1] <= 59 + (300 + 300) // FRAME_MS + 1
    assert closed.reason is EndReason.PAUSE
    assert closed.send
    assert opened.started_at == pytest.approx(WALL0 + got[0] * FRAME_MS / 1000)
    assert closed.ended_at == pytest.approx(WALL0 + (got[-1] + 1) * FRAME_MS / 1000)
    assert closed.duration_ms == len(got) * FRAME_MS


def test_a_click_opens_nothing_and_two_commands_are_two_utterances() -> None:
    f = Feeder(UtteranceSegmenter(settings()))
    f.play("." * 30 + "s" + "." * 30 + "s" * 10 + "." * 30 + "s" * 10 + "." * 30)
    utts = f.utterances()
    assert len(utts) == 2
    first, second = frames_of(utts[0][1]), frames_of(utts[1][1])
    assert first[-1] < second[0]  # no frame in both


def test_short_pauses_inside_speech_stay_in_one_utterance() -> None:
    f = Feeder(UtteranceSegmenter(settings()))
    f.play("." * 20 + ("s" * 10 + "." * 4) * 5 + "." * 20)
    assert len(f.utterances()) == 1


def test_long_speech_splits_at_the_next_pause_without_losing_a_frame() -> None:
    f = Feeder(UtteranceSegmenter(settings(split_after_ms=2000, max_ms=4000)))
    f.play("." * 20 + "s" * 50 + "." + "s" * 10 + "." * 20)
    utts = f.utterances()
    assert [u[2].reason for u in utts] == [EndReason.SPLIT, EndReason.PAUSE]
    first, second = frames_of(utts[0][1]), frames_of(utts[1][1])
    assert second[0] == first[-1] + 1  # the speech goes on in the next one
    assert utts[0][2].ended_at == pytest.approx(utts[1][0].started_at)


def test_speech_that_never_pauses_is_cut_at_the_maximum() -> None:
    f = Feeder(UtteranceSegmenter(settings(split_after_ms=1000, max_ms=2000)))
    f.play("." * 20 + "s" * 100 + "." * 20)
    utts = f.utterances()
    assert all(u[2].duration_ms <= 2000 for u in utts)
    assert [u[2].reason for u in utts][:2] == [EndReason.MAX, EndReason.MAX]
    joined = [n for u in utts for n in frames_of(u[1])]
    assert joined == list(range(joined[0], joined[-1] + 1))


def test_stop_closes_the_open_utterance_and_too_short_is_not_sent() -> None:
    seg = UtteranceSegmenter(settings(min_ms=5000))
    f = Feeder(seg)
    f.play("." * 20 + "s" * 10)
    assert seg.open
    [closed] = seg.stop()
    assert isinstance(closed, Closed)
    assert closed.reason is EndReason.STOP
    assert not closed.send  # below min_ms
    assert seg.stop() == []


def test_leading_room_silence_of_the_preroll_is_not_sent() -> None:
    seg = UtteranceSegmenter(settings(quiet_limit=100))
    events: list[Event] = []
    for n in range(60):
        loud = 30 <= n < 50  # the level rises a frame before the detector says speech
        pcm = (5000 if loud else 0).to_bytes(2, "little") * 4
        t = n * FRAME_MS / 1000
        events += seg.feed(100.0 + t, WALL0 + t, pcm, 31 <= n < 50)
    opened = next(e for e in events if isinstance(e, Opened))
    assert opened.started_at == pytest.approx(WALL0 + (30 - 2) * FRAME_MS / 1000)  # 100 ms kept


def test_the_hangover_beyond_the_tail_is_held_back_and_sent_only_if_speech_resumes() -> None:
    f = Feeder(UtteranceSegmenter(settings(tail_ms=100)))
    f.play("." * 20 + "s" * 10 + "." * 5 + "s" * 10 + "." * 20)
    [(_, audio, closed)] = f.utterances()
    got = frames_of(audio)
    assert got == list(range(got[0], got[-1] + 1))  # the inner pause was sent (resumed)
    assert got[-1] == 44 + 100 // FRAME_MS  # last speech frame 44, then 100 ms
    assert closed.duration_ms == len(got) * FRAME_MS
    assert closed.ended_at == pytest.approx(WALL0 + (got[-1] + 1) * FRAME_MS / 1000)
