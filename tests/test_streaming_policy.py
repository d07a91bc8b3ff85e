"""Buffer, pacing, timeline and error classification: no sockets, no sleeps."""

from __future__ import annotations

import itertools

import pytest

from edgecap.audio.frame import CaptureClock, Frame
from edgecap.engine.buffer import AudioBuffer, CatchUpPacer, plan_message
from edgecap.providers.assemblyai.errors import classify_close, classify_http_status
from edgecap.providers.assemblyai.messages import Turn, Word
from edgecap.providers.failures import ErrorClass
from edgecap.turns.timeline import AudioTimeline
from edgecap.turns.transcript import build_transcript_turn

pytestmark = pytest.mark.unit


def frame(seq: int, t: float = 0.0) -> Frame:
    return Frame(seq, b"\x00\x00" * 800, 1000.0 + t, t, 50)


def test_buffer_coalesces_up_to_one_second_and_keeps_unsent_frames() -> None:
    buf = AudioBuffer(max_ms=30_000, frame_ms=50)
    for i in range(25):
        buf.append(frame(i))
    first = buf.peek_message()
    assert [f.seq for f in first] == list(range(20))  # 20 x 50 ms = 1000 ms
    buf.mark_sent(len(first))
    assert [f.seq for f in buf.peek_message()] == [20, 21, 22, 23, 24]


def test_buffer_drops_oldest_when_full_and_counts() -> None:
    buf = AudioBuffer(max_ms=200, frame_ms=50)
    lost = [f.seq for i in range(6) for f in buf.append(frame(i))]
    assert lost == [0, 1]
    assert buf.dropped_frames == 2
    assert buf.dropped_ms == 100
    assert [f.seq for f in buf.peek_message()] == [2, 3, 4, 5]


def test_pacer_never_exceeds_rate_over_a_backlog() -> None:
    pacer = CatchUpPacer(rate=1.2, start=0.0, burst_s=0.05)
    now, backlog = 0.0, 20.0  # seconds of audio waiting
    while backlog > 0:
        chunk = min(1.0, backlog)
        now += pacer.delay(now, chunk)
        pacer.sent(chunk)
        backlog -= chunk
        assert pacer.sent_s <= now * 1.2 + 0.05 + 1e-9
    # 20 s of audio at 1.2x takes about 16.6 s
    assert 16.0 < now < 17.0


def test_a_voice_session_sends_its_preroll_at_once_and_paces_any_later_backlog() -> None:
    """The first message may carry `first_s` (the pre-roll); that excess is not owed
    later: the server sees at most rate x real time + first_s, and a burst later in the
    session is paced exactly as in a session without it."""
    buf = buf_of(19)  # 0.95 s waiting when the session begins
    pacer = CatchUpPacer(rate=1.2, burst_s=0.1, first_s=1.0)
    frames, wait = plan_message(buf, pacer, now=0.0)
    assert (len(frames), wait) == (19, 0.0)  # all of it in the first message
    buf.mark_sent(len(frames))
    pacer.sent(0.95, now=0.0)
    # live frames then go straight out
    assert pacer.delay(0.05, 0.05) == 0.0
    # a burst of 1 s arriving at t = 2 s is paced like after a plain 0.1 s first message
    plain = CatchUpPacer(rate=1.2, burst_s=0.1)
    plain.sent(0.1, now=0.0)
    for p in (pacer, plain):
        for k in range(1, 40):  # live frames until 2 s
            p.sent(0.05, now=k * 0.05)
    assert pacer.delay(2.0, 1.0) == pytest.approx(plain.delay(2.0, 1.0))
    assert pacer.delay(2.0, 1.0) > 0.4  # (1.0 - 0.45 allowed) / 1.2
    # without `first_s` the first message is only the burst
    assert plan_message(buf_of(19), CatchUpPacer(rate=1.2, burst_s=0.1), now=0.0)[0][-1].seq == 1


def buf_of(frames: int) -> AudioBuffer:
    buf = AudioBuffer(30_000, 50)
    for i in range(frames):
        buf.append(frame(i))
    return buf


def test_pacer_sends_live_frames_without_delay_once_caught_up() -> None:
    pacer = CatchUpPacer(rate=1.2, start=0.0)
    pacer.sent(0.05)
    assert pacer.delay(10.0, 0.05) == 0.0


def test_pacer_rejects_rates_below_real_time() -> None:
    with pytest.raises(ValueError, match=r"at least 1\.0"):
        CatchUpPacer(rate=0.9, start=0.0)


def test_capture_clock_is_smooth_and_reanchors_after_a_gap() -> None:
    clock = CaptureClock(0.05)
    # reads return late by jittery amounts; stamps stay 50 ms apart
    stamps = [
        clock.stamp(i, 10.0 + 0.05 * (i + 1) + j, 1000.0 + 0.05 * (i + 1) + j)[0]
        for i, j in enumerate([0.0, 0.01, 0.0, 0.02, 0.001])
    ]
    assert [round(b - a, 6) for a, b in itertools.pairwise(stamps)] == [0.05] * 4
    mono, _ = clock.stamp(5, 20.0, 1010.0)  # a long stall: re-anchor on the observation
    assert mono == pytest.approx(19.95)
    assert clock.reanchors == 1


def test_timeline_maps_offsets_across_a_capture_gap() -> None:
    tl = AudioTimeline()
    for i in range(10):
        tl.append(50, 1000.0 + 0.05 * i)
    for i in range(10):  # 5 s later: frames after a gap
        tl.append(50, 1005.5 + 0.05 * i)
    assert tl.segments == 2
    assert tl.wall_at(0) == pytest.approx(1000.0)
    assert tl.wall_at(250) == pytest.approx(1000.25)
    assert tl.wall_at(500) == pytest.approx(1005.5)
    assert tl.wall_at(740) == pytest.approx(1005.74)


def test_transcript_turn_payload_has_contract_fields() -> None:
    tl = AudioTimeline()
    for i in range(40):
        tl.append(50, 1_700_000_000.0 + 0.05 * i)
    turn = Turn(
        turn_order=2,
        end_of_turn=True,
        turn_is_formatted=True,
        transcript="Hi there.",
        end_of_turn_confidence=0.8,
        words=(Word("Hi", 300, 500, 0.9, True), Word("there.", 600, 1000, 0.7, True)),
    )
    p = build_transcript_turn(
        turn,
        device_id="pi",
        session_id="s1",
        speech_model="universal-streaming-english",
        timeline=tl,
    ).payload()
    assert p["schema"] == "edgecap.turn/1"
    assert p["id"] == "s1:2"
    assert p["confidence"] == pytest.approx(0.8)
    assert p["language_code"] is None
    assert p["started_at"] == "2023-11-14T22:13:20.300Z"
    assert p["ended_at"] == "2023-11-14T22:13:21.000Z"
    assert p["words"][1] == {"text": "there.", "start_ms": 600, "end_ms": 1000, "confidence": 0.7}


@pytest.mark.parametrize(
    ("code", "reason", "after_terminate", "expected"),
    [
        (1000, "", True, ErrorClass.SESSION_OVER),
        (None, "", False, ErrorClass.TRANSIENT),
        (1006, "", False, ErrorClass.TRANSIENT),
        (1011, "", False, ErrorClass.TRANSIENT),
        (1013, "", False, ErrorClass.TRANSIENT),
        (3005, "Session Cancelled: An error occurred", False, ErrorClass.TRANSIENT),
        (1008, "Unauthorized Connection: Invalid token", False, ErrorClass.AUTH),
        (
            3009,
            "Unauthorized Connection: Too many concurrent sessions",
            False,
            ErrorClass.THROTTLED,
        ),
        # before 2026-02-25 the concurrency limit was 1008: the reason decides
        (
            1008,
            "Unauthorized Connection: Too many concurrent sessions",
            False,
            ErrorClass.THROTTLED,
        ),
        (
            3005,
            "Session Expired: Maximum session duration exceeded",
            False,
            ErrorClass.SESSION_OVER,
        ),
        (
            3008,
            "Session Expired: Maximum session duration exceeded",
            False,
            ErrorClass.SESSION_OVER,
        ),
        (3006, "Invalid Message Type: foo", False, ErrorClass.CLIENT_BUG),
        (
            3007,
            "Input duration violation: 40 ms. Expected between 50 and 1000 ms",
            False,
            ErrorClass.CLIENT_BUG,
        ),
        (1009, "", False, ErrorClass.CLIENT_BUG),
        (4001, "Not authorized", False, ErrorClass.CONFIG),
    ],
)
def test_close_classification(
    code: int | None, reason: str, after_terminate: bool, expected: ErrorClass
) -> None:
    c = classify_close(code, reason, after_terminate=after_terminate)
    assert c.error_class is expected
    assert c.hint
    assert "\n" not in c.line()


def test_4001_is_explained_as_a_v2_endpoint() -> None:
    assert "v3" in classify_close(4001, "Not authorized").hint


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, ErrorClass.AUTH),
        (403, ErrorClass.AUTH),
        (429, ErrorClass.THROTTLED),
        (502, ErrorClass.TRANSIENT),
        (503, ErrorClass.TRANSIENT),
    ],
)
def test_http_status_classification(status: int, expected: ErrorClass) -> None:
    assert classify_http_status(status).error_class is expected
