"""Measure edgecap's reconnect behaviour against the local simulators (issue 3 figures).

    PYTHONPATH=. python scripts/measure_reconnect.py [--drops 20] [--skip-catchup]

1. Reconnect gap: the time from an abrupt server drop (TCP cut, close 1006) to audio
   flowing in the new session, over N drops, with and without a prefetched token, with the
   token service on loopback and behind 150 ms of latency (a service across the internet).
   Each drop comes after a session that counts as stable, so the first retry is immediate.
2. Catch-up: after an outage of 5 s and of 20 s (the drop, then every connect refused with
   HTTP 503), the time until the stream is live again (the backlog is <= 100 ms), measured
   from when the service came back and from the drop; the simulator's rate check is
   stricter than its default (1.21x + 0.3 s), and must never fire.
3. Repeated auth failure: attempts in the worst minute and in the first hour (policy only).

Audio is synthetic silence at real time (the simulator needs no speech for this); the
supervisor, session, buffer, pacer and token client are the daemon's own.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import statistics
import time
from collections.abc import Awaitable, Callable

from edgecap.audio.frame import Frame
from edgecap.auth.tokens import TokenClient
from edgecap.engine.buffer import AudioBuffer
from edgecap.engine.policy import RetryPolicy, RetrySettings
from edgecap.engine.runner import Engine
from edgecap.engine.session import SessionSettings
from edgecap.providers.assemblyai.errors import classify_http_status
from edgecap.providers.assemblyai.url import StreamParams
from edgecap.sim import FaultPlan, StreamingSimulator, TokenServiceSimulator

CRED = "measure-credential"


async def microphone(on_frame: Callable[[Frame], None]) -> None:
    """50 ms frames of silence at real time."""
    loop = asyncio.get_running_loop()
    t0, wall0 = loop.time(), time.time()
    for seq in itertools.count():
        on_frame(Frame(seq, bytes(1600), wall0 + seq * 0.05, t0 + seq * 0.05, 50))
        await asyncio.sleep(max(0.0, t0 + (seq + 1) * 0.05 - loop.time()))


async def with_supervisor(
    sim: StreamingSimulator,
    ts: TokenServiceSimulator,
    *,
    prefetch: bool,
    retry: RetrySettings,
    body: Callable[[Engine, AudioBuffer], Awaitable[None]],
) -> None:
    client = TokenClient(
        ts.token_url,
        f"Bearer {CRED}",
        source="token service",
        expires_in_seconds=60,
        max_session_seconds=3600,
        timeout=5.0,
    )
    settings = SessionSettings(
        url=sim.url,
        params=StreamParams(16000, "universal-streaming-english", True, 0.4, 400, 1280),
        device_id="measure",
    )
    buffer = AudioBuffer(30_000, 50)
    supervisor = Engine(
        lambda: settings,
        client,
        buffer=buffer,
        on_turn=lambda turn: None,
        retry=retry,
        prefetch=prefetch,
        rng=random.Random(1),  # noqa: S311 - jitter, not cryptography
    )
    supervisor.audio_available(True)
    mic = asyncio.create_task(microphone(supervisor.on_frame))
    task = asyncio.create_task(supervisor.run())
    try:
        await body(supervisor, buffer)
    finally:
        supervisor.stop()
        await asyncio.wait_for(task, 15)
        mic.cancel()
        await client.aclose()


async def first_audio_at(sim: StreamingSimulator, index: int) -> float:
    await sim.wait_for_session(index)
    await sim.wait_until(lambda: sim.sessions[index].audio_ms > 0, f"audio in #{index}")
    return time.time()


async def reconnect_gaps(drops: int, *, prefetch: bool, token_latency: float) -> list[float]:
    sim = StreamingSimulator(max_rate=1.21, rate_slack_seconds=0.3)
    sim.wait_timeout = 30
    async with sim, TokenServiceSimulator(sim, credential=CRED) as ts:
        if token_latency:
            ts.mode, ts.slow_delay_seconds = "slow", token_latency
        sim.schedule_fault(FaultPlan.drop(after_seconds=2.0), drops)
        gaps: list[float] = []
        # a 2 s session counts as stable here, so every drop is retried at once
        retry = RetrySettings(stable_seconds=1.5, quick_seconds=1.0)

        async def body(sup: Engine, buffer: AudioBuffer) -> None:
            for i in range(drops):
                await sim.wait_for_session(i)
                await sim.wait_closed(sim.sessions[i])
                dropped_at = sim.sessions[i].closed_at
                assert dropped_at is not None
                gaps.append(await first_audio_at(sim, i + 1) - dropped_at)

        await with_supervisor(sim, ts, prefetch=prefetch, retry=retry, body=body)
        assert all(s.error is None for s in sim.sessions), "a session hit a server error"
        return gaps


async def catch_up(outage_s: float) -> tuple[float, float, float]:
    """(live after the service is back, live after the drop, backlog when it came back)."""
    sim = StreamingSimulator(max_rate=1.21, rate_slack_seconds=0.3)
    sim.wait_timeout = 300
    async with sim, TokenServiceSimulator(sim, credential=CRED) as ts:
        sim.schedule_fault(FaultPlan.drop(after_seconds=3.0))
        sim.default_fault = FaultPlan.handshake(503)
        result: list[float] = []
        retry = RetrySettings(max_seconds=0.5)

        async def body(sup: Engine, buffer: AudioBuffer) -> None:
            first = await sim.wait_for_begin(0)
            await sim.wait_closed(first)
            assert first.closed_at is not None
            await asyncio.sleep(max(0.0, first.closed_at + outage_s - time.time()))  # outage
            sim.default_fault = None
            back = time.time()
            backlog_at_back = buffer.backlog_ms / 1000
            n = len(sim.sessions)
            await sim.wait_until(
                lambda: len(sim.sessions) > n and sim.sessions[-1].begin is not None, "Begin"
            )
            while buffer.backlog_ms > 100:  # noqa: ASYNC110 - a probe, 20 ms resolution
                await asyncio.sleep(0.02)
            live = time.time()
            result.extend([live - back, live - first.closed_at, backlog_at_back])

        await with_supervisor(sim, ts, prefetch=True, retry=retry, body=body)
        errors = [s.error for s in sim.sessions if s.error is not None]
        assert not errors, f"the rate check fired: {errors}"
        return result[0], result[1], result[2]


def auth_attempts() -> tuple[int, int]:
    """(attempts in the worst minute, attempts in the first hour) under repeated 401s."""
    policy = RetryPolicy(RetrySettings(), random.Random(1))  # noqa: S311
    refused = classify_http_status(401)
    t, attempts = 0.0, [0.0]
    while t < 3600:
        t += policy.next(refused).delay
        attempts.append(t)
    first_hour = [a for a in attempts if a < 3600]
    worst = max(sum(1 for b in first_hour if a <= b < a + 60) for a in first_hour)
    return worst, len(first_hour)


def describe(values: list[float]) -> str:
    q = statistics.quantiles(values, n=20, method="inclusive")
    return (
        f"p50 {statistics.median(values) * 1000:6.1f} ms   p95 {q[18] * 1000:6.1f} ms   "
        f"max {max(values) * 1000:6.1f} ms   (n={len(values)})"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drops", type=int, default=20)
    parser.add_argument("--skip-catchup", action="store_true")
    args = parser.parse_args()

    print("Reconnect gap: abrupt drop (1006) -> audio flowing in the new session")
    for latency in (0.0, 0.15):
        where = "loopback" if not latency else f"+{latency * 1000:.0f} ms"
        for prefetch in (True, False):
            gaps = await reconnect_gaps(args.drops, prefetch=prefetch, token_latency=latency)
            label = "prefetched token" if prefetch else "token per connect"
            print(f"  token service {where:9} {label:18} {describe(gaps)}")

    if not args.skip_catchup:
        print("Catch-up at 1.2x real time (replay buffer 30 s)")
        for outage in (5.0, 20.0):
            after_back, after_drop, backlog = await catch_up(outage)
            print(
                f"  {outage:4.0f} s outage: backlog {backlog:4.1f} s when the service came "
                f"back; live again {after_back:5.1f} s later ({after_drop:5.1f} s after the drop)"
            )

    worst, hour = auth_attempts()
    print(
        f"Repeated auth failure: at most {worst} connection attempts in any minute, "
        f"{hour} in the first hour"
    )


if __name__ == "__main__":
    asyncio.run(main())
