"""The privacy mute in the engine against the simulator: a backlog waiting at the moment of
the mute is never sent (not to the session that ends, not to the next one), the session
ends with Terminate at once, the microphone's audio is dropped while muted, and the next
session after the mute streams as usual."""

from __future__ import annotations

import asyncio

import pytest

from edgecap.audio.frame import Frame
from edgecap.sim import StreamingSimulator, TokenServiceSimulator
from tests.harness import tone
from tests.test_resilience import CRED, Rig

pytestmark = pytest.mark.integration


async def test_mute_sends_nothing_buffered_and_the_next_session_starts_clean() -> None:
    async with (
        StreamingSimulator() as sim,
        TokenServiceSimulator(sim, credential=CRED) as ts,
        Rig(sim, ts) as rig,
    ):
        first = await sim.wait_for_begin(0)
        await sim.wait_until(lambda: first.audio_ms > 0, "audio flowing")
        engine, buffer = rig.engine, rig.engine._buffer
        # a 3 s backlog arrives at once (capture catching up), and the mute right after it
        loop = asyncio.get_running_loop()
        pcm, t0, wall = tone(3.0, 300.0), loop.time(), 0.0
        sent_before = first.audio_ms
        for i in range(60):
            engine.on_frame(Frame(10_000 + i, pcm[i * 1600 : (i + 1) * 1600], wall, t0, 50))
        assert buffer.backlog_ms >= 2500
        engine.set_muted(True)
        await sim.wait_until(lambda: first.closed, "the session ended")
        assert first.terminate_received
        assert first.audio_ms - sent_before <= 200  # at most what was already in flight
        await rig.wait_status(lambda s: s["state"] == "muted")
        assert len(buffer) == 0

        # the microphone goes on: nothing of it is kept while muted
        counted = asyncio.Event()
        seen = 0
        feed = rig.feeder._on_frame

        def counting(frame: Frame) -> None:
            nonlocal seen
            feed(frame)
            seen += 1
            if seen >= 10:
                counted.set()

        rig.feeder._on_frame = counting
        async with asyncio.timeout(5):
            await counted.wait()
        assert len(buffer) == 0
        assert len(sim.sessions) == 1

        # mute off: a new session streams only what is captured from now on
        engine.set_muted(False)
        second = await sim.wait_for_begin(1)
        await sim.wait_until(lambda: second.audio_ms >= 500, "audio flowing again")
        assert second.audio_ms < 1500  # the 3 s backlog is not replayed
