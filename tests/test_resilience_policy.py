"""The sans-I/O parts of resilient streaming, with an injected clock and no sockets:
retry policy and breaker, rotation, replay bookkeeping, pacing, gaps, token renewal and
the classification table."""

from __future__ import annotations

import random

import pytest

from edgecap.audio.frame import Frame
from edgecap.auth.tokens import Token, renew_at
from edgecap.engine.buffer import AudioBuffer, CatchUpPacer, pad_message, plan_message
from edgecap.engine.gaps import GapTracker
from edgecap.engine.policy import RetryPolicy, RetrySettings
from edgecap.engine.rotation import RotationPlan
from edgecap.providers.assemblyai.errors import (
    classify_close,
    classify_http_status,
    classify_network,
    classify_token_error,
)
from edgecap.providers.failures import ErrorClass
from edgecap.sim.faults import DEFAULT_REASONS

pytestmark = pytest.mark.unit


def frame(seq: int, ms: int = 50) -> Frame:
    return Frame(seq, b"\x01\x00" * (16 * ms), 1000.0 + seq * ms / 1000, seq * ms / 1000, ms)


def policy(**kw: float) -> RetryPolicy:
    return RetryPolicy(RetrySettings(jitter=0.0, **kw), random.Random(1))  # type: ignore[arg-type]


# -- classification (issue 3 §1, protocol notes §4) --------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (1006, ErrorClass.TRANSIENT),
        (1011, ErrorClass.TRANSIENT),
        (1013, ErrorClass.TRANSIENT),
        (3005, ErrorClass.TRANSIENT),
        (3009, ErrorClass.THROTTLED),
        (3008, ErrorClass.SESSION_OVER),
        (1008, ErrorClass.AUTH),
        (3006, ErrorClass.CLIENT_BUG),
        (3007, ErrorClass.CLIENT_BUG),
        (1009, ErrorClass.CLIENT_BUG),
        (4001, ErrorClass.CONFIG),
    ],
)
def test_close_codes_with_the_servers_reasons(code: int, expected: ErrorClass) -> None:
    # the reason texts the simulator (current era) sends with each code
    assert classify_close(code, DEFAULT_REASONS.get(code, "")).error_class is expected


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        # before 2026-02-25 every in-session error was 3005 and the rate limit was 1008
        (
            3005,
            "Audio Transmission Rate Exceeded: Received 9.0 sec. audio in 5.0 sec",
            "client_bug",
        ),
        (3005, "Session Expired: Maximum session duration exceeded", "session_over"),
        (1008, "Unauthorized Connection: Too many concurrent sessions", "throttled"),
        (3006, "Inactivity Timeout: no audio for 30 s", "session_over"),
        (1008, "Unauthorized connection: Incorrect padding", "auth"),
        (1000, "", "transient"),  # a close we did not ask for
    ],
)
def test_reason_prefix_wins_over_the_code(code: int, reason: str, expected: str) -> None:
    assert classify_close(code, reason).error_class == expected


def test_one_line_names_http_statuses_and_close_codes_apart() -> None:
    assert classify_http_status(503).line().startswith("HTTP 503: ")
    assert classify_close(1011).line().startswith("close 1011: ")
    assert classify_network("timed out").line() == "error: timed out [transient]"


@pytest.mark.parametrize(
    ("status", "kind", "expected"),
    [
        (401, "http", ErrorClass.AUTH),
        (403, "http", ErrorClass.AUTH),
        (429, "http", ErrorClass.THROTTLED),
        (502, "http", ErrorClass.TRANSIENT),
        (503, "http", ErrorClass.TRANSIENT),
        (200, "malformed", ErrorClass.CONFIG),
        (None, "network", ErrorClass.TRANSIENT),
        (None, "timeout", ErrorClass.TRANSIENT),
    ],
)
def test_token_failures(status: int | None, kind: str, expected: ErrorClass) -> None:
    c = classify_token_error(status, kind, "token service answered ...")
    assert c.error_class is expected
    assert c.hint == "token service answered ..."  # the client's actionable line is kept


# -- retry policy ---------------------------------------------------------------------------


def test_transient_first_retry_is_immediate_then_exponential_to_the_cap() -> None:
    p = policy(max_seconds=4.0)
    transient = classify_close(1006)
    delays = [p.next(transient).delay for _ in range(6)]
    assert delays == [0.0, 0.5, 1.0, 2.0, 4.0, 4.0]


def test_budget_resets_only_after_a_stable_session() -> None:
    p = policy(stable_seconds=30.0, quick_seconds=5.0)
    transient = classify_close(1011)
    p.next(transient)
    p.next(transient)
    p.session_began(100.0)
    p.session_ended(120.0, failed=True)  # 20 s: not stable yet
    assert p.next(transient).delay == 1.0
    p.session_began(200.0)
    p.session_ended(231.0, failed=True)  # stable: the next drop is retried at once
    assert p.next(transient).delay == 0.0


def test_auth_is_reminted_once_then_slow_and_reported() -> None:
    p = policy(auth_retry_seconds=60.0, cooldown_seconds=300.0)
    auth = classify_close(1008, "Unauthorized Connection: Invalid token")
    decisions = [p.next(auth) for _ in range(6)]
    assert [d.delay for d in decisions] == [0.0, 60.0, 120.0, 240.0, 300.0, 300.0]
    assert decisions[0].state == "reconnecting"
    assert {d.state for d in decisions[1:]} == {"auth_failed"}
    assert all(d.discard_spare for d in decisions)


def test_throttled_client_bug_and_config_waits() -> None:
    settings = {"throttled_initial_seconds": 5.0, "max_seconds": 30.0, "cooldown_seconds": 300.0}
    throttled = policy(**settings)
    assert [throttled.next(classify_close(3009)).delay for _ in range(4)] == [5, 10, 20, 30]
    bug = policy(**settings).next(classify_close(3007))
    assert (bug.delay, bug.state) == (5.0, "degraded")
    config = policy(**settings).next(classify_close(4001, "Not authorized"))
    assert (config.delay, config.state) == (300.0, "degraded")


def test_session_over_is_not_a_failure() -> None:
    p = policy()
    d = p.next(classify_close(3008))
    assert d.delay == 0.0
    assert p.failures == 0


def test_quick_failure_breaker_cools_down_until_a_session_survives() -> None:
    p = policy(quick_seconds=10.0, quick_count=3, cooldown_seconds=300.0)
    drop = classify_close(1011)
    delays = []
    for start in (0.0, 100.0, 200.0, 600.0):
        p.session_began(start)
        p.session_ended(start + 2.0, failed=True)  # died 2 s after Begin
        delays.append(p.next(drop))
    assert [d.delay for d in delays] == [0.0, 0.5, 300.0, 300.0]
    assert [d.state for d in delays][2:] == ["degraded", "degraded"]
    p.session_began(1000.0)
    p.session_ended(1015.0, failed=True)  # survived the quick window
    assert not p.breaker_open


def test_jitter_only_adds_at_most_its_fraction() -> None:
    p = RetryPolicy(RetrySettings(jitter=0.2), random.Random(3))
    drop = classify_close(1006)
    p.next(drop)
    for _ in range(20):
        base = min(30.0, 0.5 * 2.0 ** max(0, p.failures - 1))
        assert base <= p.next(drop).delay <= base * 1.2


# -- rotation ---------------------------------------------------------------------------


def test_rotation_waits_for_a_quiet_point_inside_the_window() -> None:
    plan = RotationPlan.for_session(0.0, 3600.0)
    assert plan.deadline == 3595.0
    assert plan.window_start == 3535.0

    def decide(now: float, **kw: object) -> str | None:
        args: dict[str, object] = {
            "turn_open": False,
            "last_final_at": None,
            "last_turn_message_at": now - 0.1,
            "token_ready": True,
            **kw,
        }
        return plan.decide(now, **args)  # type: ignore[arg-type]

    assert decide(3000.0, last_final_at=2999.9) is None  # before the window
    assert decide(3540.0, last_final_at=3539.9) == "quiet"  # right after an end of turn
    assert decide(3540.0, last_final_at=3539.9, turn_open=True) is None
    assert decide(3540.0, last_final_at=3539.9, token_ready=False) is None
    assert decide(3540.0, last_final_at=3539.0) is None  # talking resumed a second ago
    assert decide(3540.0, last_turn_message_at=3537.5) == "silence"
    assert decide(3595.0, turn_open=True, token_ready=False) == "deadline"


def test_rotation_respects_an_earlier_expiry_from_begin() -> None:
    plan = RotationPlan.for_session(10.0, 3600.0, expires_in_s=20.0)
    assert plan.cap_s == 20.0
    assert plan.deadline == pytest.approx(28.0)  # 10 + 20 - 10 % of 20
    assert plan.window_start == pytest.approx(18.0)
    longer = RotationPlan.for_session(10.0, 60.0, expires_in_s=3660.0)
    assert longer.cap_s == 60.0


# -- replay bookkeeping ------------------------------------------------------------------


def test_history_is_confirmed_by_final_turns_and_replayed_after_a_drop() -> None:
    buf = AudioBuffer(max_ms=30_000, frame_ms=50)
    for i in range(40):
        buf.append(frame(i))
    buf.mark_sent(30)  # 1.5 s sent, 0.5 s waiting
    assert (buf.history_ms, buf.backlog_ms) == (1500, 500)
    buf.confirm_until(620)  # a final turn whose last word ended at 620 ms
    assert buf.history_ms == 900  # frames ending at or before 600 ms are done
    assert buf.rewind() == 900  # the connection dropped: replay from 600 ms
    assert [f.seq for f in buf.peek_message()] == list(range(12, 32))
    assert buf.sent_offset_ms == 0  # the next session's offsets start at 0


def test_clean_end_confirms_everything_sent() -> None:
    buf = AudioBuffer(max_ms=30_000, frame_ms=50)
    for i in range(10):
        buf.append(frame(i))
    buf.mark_sent(6)
    buf.confirm_all()
    assert buf.history_ms == 0
    assert [f.seq for f in buf.peek_message()] == [6, 7, 8, 9]


def test_idle_history_is_trimmed_to_a_short_tail() -> None:
    buf = AudioBuffer(max_ms=30_000, frame_ms=50)
    for i in range(100):
        buf.append(frame(i))
    buf.mark_sent(100)
    buf.keep_recent_history(1000)
    assert buf.history_ms == 1000
    assert buf.rewind() == 1000


def test_full_buffer_trims_history_before_losing_unsent_audio() -> None:
    buf = AudioBuffer(max_ms=500, frame_ms=50)  # 10 frames
    for i in range(10):
        buf.append(frame(i))
    buf.mark_sent(4)
    lost = [f for i in range(10, 16) for f in buf.append(frame(i))]
    assert [f.seq for f in lost] == [4, 5]  # 4 history frames went first, not counted
    assert (buf.trimmed_frames, buf.dropped_frames) == (4, 2)


# -- pacing -----------------------------------------------------------------------------


def simulate_catch_up(backlog_s: float, rate: float, room_ms: int) -> tuple[float, list[float]]:
    """Drive plan_message on a virtual clock with live capture; returns (time to live,
    message sizes). Asserts the server's check (rate x elapsed since the first message)."""
    buf = AudioBuffer(max_ms=room_ms, frame_ms=50)
    pacer = CatchUpPacer(rate, burst_s=0.1)
    seq, now, next_capture = 0, 0.0, 0.0
    for _ in range(int(backlog_s * 20)):
        buf.append(frame(seq))
        seq += 1
    sizes: list[float] = []
    first_sent: float | None = None
    while now < 600:
        frames, wait = plan_message(buf, pacer, now)
        if frames:
            d = sum(f.duration_ms for f in frames) / 1000
            buf.mark_sent(len(frames))
            buf.confirm_all()
            pacer.sent(d, now)
            first_sent = now if first_sent is None else first_sent
            sizes.append(d)
            assert 0.05 <= d <= 1.0
            assert pacer.sent_s <= (now - first_sent) * rate + 0.1 + 1e-9
            if buf.backlog_ms <= 50:
                return now, sizes
            continue
        step = min(wait, next_capture - now) if wait > 0 else next_capture - now
        now += max(step, 0.0)
        while next_capture <= now + 1e-9:
            assert not buf.append(frame(seq)), "a frame was lost while catching up"
            seq += 1
            next_capture += 0.05
    raise AssertionError("never caught up")


@pytest.mark.parametrize("backlog_s", [5.0, 20.0])
def test_backlog_drains_at_the_catch_up_rate_in_large_messages(backlog_s: float) -> None:
    live_after, sizes = simulate_catch_up(backlog_s, 1.2, room_ms=30_000)
    assert live_after == pytest.approx(backlog_s / 0.2, rel=0.1)  # backlog / (rate - 1)
    assert max(sizes) == 1.0
    assert sizes[0] <= 0.1  # the server's clock starts with the first message


def test_full_buffer_drains_without_losing_more_audio() -> None:
    live_after, _ = simulate_catch_up(2.0, 1.2, room_ms=2000)  # the buffer is full
    assert live_after == pytest.approx(10.0, rel=0.15)


def test_short_tail_is_padded_never_sent_short() -> None:
    assert len(pad_message(b"\x00\x00" * 100, 16000)) == 1600  # 50 ms at 16 kHz
    assert len(pad_message(b"\x00\x00" * 1600, 16000)) == 3200
    buf = AudioBuffer(max_ms=1000, frame_ms=20)
    buf.append(frame(0, ms=20))
    pacer = CatchUpPacer(1.2, burst_s=0.1)
    assert plan_message(buf, pacer, 0.0) == ([], 0.0)  # 20 ms: wait for more audio
    frames, _ = plan_message(buf, pacer, 0.0, draining=True)
    assert len(frames) == 1  # before Terminate: sent, padded by the caller


# -- gaps and token renewal ---------------------------------------------------------------


def test_gap_is_closed_by_the_next_kept_frame_and_attached_once() -> None:
    gaps = GapTracker()
    assert gaps.dropped([frame(0), frame(1)])
    assert not gaps.dropped([frame(2)])
    gap = gaps.kept()
    assert gap is not None
    assert (gap.ms, gap.frames) == (150, 3)
    assert gap.started_at == 1000.0
    assert gap.ended_at == pytest.approx(1000.15)
    assert gaps.attach(999.0) is None  # a turn that ended before the gap
    assert gaps.attach(1005.0) == 150
    assert gaps.attach(1010.0) is None


def test_spare_token_is_renewed_well_before_it_expires() -> None:
    assert renew_at(Token("t", expires_at=160.0, obtained_at=100.0)) == 145.0
    assert renew_at(Token("t", expires_at=106.0, obtained_at=100.0)) == 103.0
    assert renew_at(Token("t", expires_at=700.0, obtained_at=100.0)) == 550.0
