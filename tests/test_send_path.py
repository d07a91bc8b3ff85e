"""The per-frame send path: a captured frame goes out from the hand-off itself while the
session's sender is idle (no task wake-up), under the same rules as the sender task: the
catch-up pacer, the 50 ms minimum, one message per frame in capture order, nothing after
Terminate, and a send that must wait for the socket is finished by the sender task without
sending anything twice. Also the capture thread's hand-off to the loop (frames and events
in order, the wake-up pipe closed when the thread ends) and `start_eagerly` itself."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.protocol import State

import edgecap.engine.session as session_module
from edgecap.audio.frame import Frame
from edgecap.engine.buffer import AudioBuffer
from edgecap.engine.eager import start_eagerly
from edgecap.engine.session import SessionResult, SessionSettings, StreamingSession
from edgecap.providers.assemblyai.url import StreamParams
from edgecap.sim import StreamingSimulator
from tests.sim_helpers import run_until_stopped

pytestmark = pytest.mark.integration

PARAMS = StreamParams(16000, "universal-streaming-english", True, 0.4, 400, 1280)


def settings(url: str, **kwargs: Any) -> SessionSettings:
    return SessionSettings(url=url, params=PARAMS, device_id="send-path", **kwargs)


def frame(seq: int, ms: int = 50, start: float = 0.0) -> Frame:
    pcm = bytes([seq % 251]) * (32 * ms)  # 16 kHz mono PCM16, recognisable per frame
    return Frame(seq, pcm, start + seq * ms / 1000, start + seq * ms / 1000, ms)


class Feed:
    """Plays the supervisor's part: buffer the frame, offer it to the session, and wake
    the sender task when the session does not take it."""

    def __init__(self, buffer: AudioBuffer, ready: asyncio.Event) -> None:
        self.buffer = buffer
        self.ready = ready
        self.session: StreamingSession | None = None
        self.taken: list[bool] = []

    def __call__(self, f: Frame) -> bool:
        self.buffer.append(f)
        taken = self.session is not None and self.session.audio_arrived()
        if not taken:
            self.ready.set()
        self.taken.append(taken)
        return taken


async def start_session(
    sim: StreamingSimulator, buffer: AudioBuffer, ready: asyncio.Event, **kwargs: Any
) -> tuple[StreamingSession, asyncio.Event, asyncio.Task[SessionResult]]:
    session = StreamingSession(settings(sim.url, **kwargs), buffer, ready, lambda turn: None)
    await session.open(sim.mint_token(60))
    stop = asyncio.Event()
    return session, stop, asyncio.create_task(run_until_stopped(session, stop))


# -- start_eagerly ----------------------------------------------------------------------


async def test_a_coroutine_that_never_waits_runs_to_its_end_at_once() -> None:
    done: list[str] = []

    async def quick() -> None:
        done.append("sent")

    assert start_eagerly(quick()) is None
    assert done == ["sent"]


async def test_a_coroutine_that_waits_is_finished_by_the_task_that_awaits_it() -> None:
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    steps: list[str] = []

    async def slow() -> None:
        steps.append("written")
        steps.append(await gate)

    suspended = start_eagerly(slow())
    assert suspended is not None
    assert steps == ["written"]

    async def finish() -> None:
        await suspended

    task = asyncio.create_task(finish())
    await asyncio.sleep(0)
    assert not task.done()
    gate.set_result("drained")
    await task
    assert steps == ["written", "drained"]


async def test_cancelling_the_task_cancels_the_started_coroutine_where_it_waits() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cleaned: list[str] = []

    async def slow() -> None:
        try:
            await gate
        finally:
            cleaned.append("cleaned up")

    suspended = start_eagerly(slow())
    assert suspended is not None

    async def finish() -> None:
        await suspended

    task = asyncio.create_task(finish())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["cleaned up"]
    assert gate.cancelled()

    gate = asyncio.get_running_loop().create_future()
    other = start_eagerly(slow())
    assert other is not None
    other.close()  # abandoned without a task: its clean-up still runs
    assert cleaned == ["cleaned up", "cleaned up"]


# -- the session's fast path against the simulator (real WebSocket) ---------------------


async def test_an_idle_session_sends_each_frame_from_the_hand_off() -> None:
    buffer, ready = AudioBuffer(30_000, 50), asyncio.Event()
    feed = Feed(buffer, ready)
    async with StreamingSimulator() as sim:
        session, stop, run = await start_session(sim, buffer, ready)
        feed.session = session
        record = await sim.wait_for_begin()
        feed(frame(0))  # the sender task may still be starting: it sends this one
        await sim.wait_until(lambda: record.audio_ms >= 50, "the first frame")
        for seq in range(1, 21):
            assert feed(frame(seq)), f"frame {seq} waited for the sender task"
            assert buffer.backlog_ms == 0  # handed to the socket within the call
            await asyncio.sleep(0.05)  # real-time capture pace
        await sim.wait_until(lambda: record.audio_ms >= 21 * 50, "all frames")
        stop.set()
        result = await run
    assert record.frame_sizes == [1600] * 21  # one message per frame, none merged or padded
    assert record.terminate_received
    assert result.clean
    assert result.audio_sent_ms == 21 * 50


async def test_short_frames_are_gathered_into_messages_of_at_least_50_ms() -> None:
    buffer, ready = AudioBuffer(30_000, 20), asyncio.Event()
    feed = Feed(buffer, ready)
    async with StreamingSimulator() as sim:  # (it closes with 3007 on a short message)
        session, stop, run = await start_session(sim, buffer, ready)
        feed.session = session
        record = await sim.wait_for_begin()
        for seq in range(30):
            feed(frame(seq, ms=20))
            assert buffer.backlog_ms < 60  # never more than one message's worth waits
            await asyncio.sleep(0.02)
        await sim.wait_until(lambda: record.audio_ms >= 540, "the full messages")
        stop.set()
        result = await run
    assert record.close_code == 1000
    assert result.clean
    assert all(size >= 1600 for size in record.frame_sizes[:-1])  # the drained tail is padded
    assert record.frame_sizes[:3] == [1920, 1920, 1920]  # 3 x 20 ms as soon as it is 60 ms
    assert record.audio_ms >= 600


async def test_after_an_outage_the_backlog_is_paced_and_then_frames_go_directly() -> None:
    buffer, ready = AudioBuffer(30_000, 50), asyncio.Event()
    feed = Feed(buffer, ready)
    for seq in range(30):  # 1.5 s captured while no session was open
        buffer.append(frame(seq))
    # stricter than the default check: the pacer's 1.5x must really hold
    async with StreamingSimulator(max_rate=1.51, rate_slack_seconds=0.3) as sim:
        session, stop, run = await start_session(sim, buffer, ready, catchup_rate=1.5)
        feed.session = session
        record = await sim.wait_for_begin()
        seq = 30
        while buffer.backlog_ms > 0 or feed.taken.count(True) < 10:
            assert seq < 30 + 200, "the backlog never drained"
            feed(frame(seq))
            seq += 1
            await asyncio.sleep(0.05)
        stop.set()
        result = await run
    assert record.close_code == 1000  # never over the server's rate limit
    assert result.clean
    assert record.audio_ms == seq * 50  # all of it, the backlog included
    first_direct = feed.taken.index(True)
    assert first_direct >= 15  # catching up 1.5 s at +0.5x takes about 3 s of frames
    assert all(feed.taken[first_direct:])  # then every frame goes out from the hand-off


async def test_a_burst_of_frames_after_a_capture_hiccup_is_paced() -> None:
    buffer, ready = AudioBuffer(30_000, 50), asyncio.Event()
    feed = Feed(buffer, ready)
    async with StreamingSimulator(max_rate=1.21, rate_slack_seconds=0.3) as sim:
        session, stop, run = await start_session(sim, buffer, ready)
        feed.session = session
        record = await sim.wait_for_begin()
        for seq in range(20):  # 1 s in real time
            feed(frame(seq))
            await asyncio.sleep(0.05)
        burst = [feed(frame(seq)) for seq in range(20, 40)]  # 1 s delivered at once
        assert not all(burst)  # the pacer holds the rest back for the sender task
        for seq in range(40, 80):  # 2 s more in real time: the backlog drains at +0.2x
            feed(frame(seq))
            await asyncio.sleep(0.05)
        stop.set()
        result = await run
    assert record.close_code == 1000  # never over the server's rate limit
    assert result.clean
    assert record.audio_ms == 80 * 50


async def test_nothing_is_sent_from_the_hand_off_once_the_session_has_ended() -> None:
    buffer, ready = AudioBuffer(30_000, 50), asyncio.Event()
    feed = Feed(buffer, ready)
    async with StreamingSimulator() as sim:
        session, stop, run = await start_session(sim, buffer, ready)
        feed.session = session
        record = await sim.wait_for_begin()
        for seq in range(5):
            feed(frame(seq))
            await asyncio.sleep(0.05)
        stop.set()
        result = await run
        assert not feed(frame(5))  # after Terminate: kept for the next session
        assert buffer.backlog_ms == 50
    assert record.terminate_received
    assert result.audio_sent_ms == 250
    assert record.audio_ms == 250


# -- a send that has to wait for the socket ---------------------------------------------


class SlowConnection:
    """Stands in for a ClientConnection whose write buffer is full: while `gate` is set,
    `send` records the message, then waits (as websockets waits in `drain()`)."""

    def __init__(self) -> None:
        self.state = State.OPEN
        self.messages: list[bytes] = []
        self.gate: asyncio.Future[None] | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self._closed = asyncio.Event()
        self._sent = asyncio.Event()

    async def wait_messages(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.messages) < count:
                self._sent.clear()
                await self._sent.wait()

    async def recv(self) -> str:
        return json.dumps({"type": "Begin", "id": "slow-1", "expires_at": None})

    async def send(self, message: bytes | str) -> None:
        if isinstance(message, str):
            if json.loads(message)["type"] == "Terminate":
                self.close_code = 1000
                self._closed.set()
            return
        self.messages.append(message)
        self._sent.set()
        if self.gate is not None:
            await self.gate

    def __aiter__(self) -> AsyncIterator[str]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[str]:
        await self._closed.wait()
        yield json.dumps({"type": "Termination"})

    async def close(self) -> None:
        self.state = State.CLOSED
        self._closed.set()


async def test_a_send_that_must_wait_is_finished_by_the_sender_and_sent_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conn = SlowConnection()

    async def fake_connect(url: str, **kwargs: Any) -> SlowConnection:
        return conn

    monkeypatch.setattr(session_module, "connect", fake_connect)
    buffer, ready = AudioBuffer(30_000, 50), asyncio.Event()
    feed = Feed(buffer, ready)
    stop, run = await start_session_with(buffer, ready, feed)
    feed(frame(0))
    await conn.wait_messages(1)
    await asyncio.sleep(0.05)  # real-time capture pace (the pacer allows 1.2x)
    conn.gate = asyncio.get_running_loop().create_future()
    assert not feed(frame(1))  # written, then waiting: the sender task takes it over
    await asyncio.sleep(0.05)
    assert not feed(frame(2))  # while it waits, frames queue up behind it
    await asyncio.sleep(0.05)
    assert len(conn.messages) == 2
    gate, conn.gate = conn.gate, None
    gate.set_result(None)
    await conn.wait_messages(3)  # the sender finished frame 1, then sent frame 2
    assert buffer.backlog_ms == 0
    await asyncio.sleep(0.05)
    assert feed(frame(3))  # idle again: straight from the hand-off
    stop.set()
    await run
    sent = b"".join(conn.messages)
    assert sent == b"".join(frame(seq).pcm for seq in range(4))  # each frame once, in order


async def start_session_with(
    buffer: AudioBuffer, ready: asyncio.Event, feed: Feed
) -> tuple[asyncio.Event, asyncio.Task[SessionResult]]:
    session = StreamingSession(settings("ws://127.0.0.1:9"), buffer, ready, lambda turn: None)
    await session.open("token")
    feed.session = session
    stop = asyncio.Event()
    return stop, asyncio.create_task(run_until_stopped(session, stop))
