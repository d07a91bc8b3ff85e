"""A broken or hostile streaming server, mid-session (the v3 simulator sends chosen raw
frames: `FaultPlan.inject`): a Turn with a NaN or 1e20 word time, or a lone surrogate in
its text, a flood of partials; and a bug downstream of the session.

What the user notices: the unusable turns are skipped with one WARNING line each, the
repaired one and the turns after them are delivered on the same connection (no reconnect),
partials come at most ten a second, every MQTT payload is strict JSON in UTF-8, and the
connection is closed whatever ended the session (AssemblyAI bills an open session)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from edgecap.app.daemon import Daemon
from edgecap.audio.frame import Frame
from edgecap.config import load_config
from edgecap.engine.buffer import AudioBuffer
from edgecap.engine.session import SessionResult, SessionSettings, StreamingSession
from edgecap.providers.assemblyai.messages import Turn
from edgecap.providers.assemblyai.url import StreamParams
from edgecap.sim import FaultPlan, StreamingSimulator, TokenServiceSimulator
from edgecap.turns.transcript import TranscriptTurn
from tests.daemon_proc import stack_config
from tests.harness import AlsaFifoSource, MosquittoBroker, MqttCollector
from tests.sim_helpers import run_until_stopped

pytestmark = pytest.mark.faults

PARAMS = StreamParams(16000, "universal-streaming-english", True, 0.4, 400, 1280)
INJECT_AFTER_MS = 1500  # the injected words lie at 200-1000 ms: audio the server has had
SKIPPED = "skipped a malformed message from the streaming server"
REPAIRED = "repaired and used"


def turn_frame(
    order: int,
    text: str,
    *,
    final: bool = True,
    start: str = "200",
    raw_text: str | None = None,
    words: int = 1,
) -> str:
    """A v3 Turn as raw JSON text. `start` is pasted as it is (NaN, 1e20); `raw_text` too
    (a JSON string literal with escapes)."""
    shown = raw_text if raw_text is not None else json.dumps(text)
    word_list = ",".join(
        f'{{"text":{shown},"start":{start if i == 0 else 200 + 10 * i},'
        f'"end":{210 + 10 * i},"confidence":0.9,"word_is_final":true}}'
        for i in range(words)
    )
    return (
        f'{{"type":"Turn","turn_order":{order},"turn_is_formatted":{json.dumps(final)},'
        f'"end_of_turn":{json.dumps(final)},"transcript":{shown},'
        f'"end_of_turn_confidence":0.8,"words":[{word_list}]}}'
    )


HOSTILE = [
    turn_frame(0, "nan start", start="NaN"),
    turn_frame(1, "", raw_text='"lone \\ud800 surrogate"'),
    turn_frame(2, "far start", start="1e20"),
    turn_frame(3, "The third turn."),
    turn_frame(4, "The fourth turn."),
]
REPAIRED_TEXT = "lone \ufffd surrogate"


def warnings_with(caplog: pytest.LogCaptureFixture, fragment: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and fragment in r.getMessage()
    ]


# -- one session against the simulator ------------------------------------------------------


class SessionRig:
    """A `StreamingSession` on the simulator, fed real-time silence (as capture would)."""

    def __init__(
        self,
        sim: StreamingSimulator,
        on_turn: Callable[[TranscriptTurn], None],
        on_partial: Callable[[str, Turn], None] | None = None,
    ) -> None:
        self.buffer = AudioBuffer(30_000, 50)
        self.ready = asyncio.Event()
        settings = SessionSettings(
            url=sim.url, params=PARAMS, device_id="hostile", terminate_timeout=3.0
        )
        self.session = StreamingSession(settings, self.buffer, self.ready, on_turn, on_partial)
        self.sim = sim
        self.stop = asyncio.Event()

    async def _feed(self) -> None:
        loop = asyncio.get_running_loop()
        t0, wall0, seq = loop.time(), time.time(), 0
        while True:
            at = seq * 0.05
            self.buffer.append(Frame(seq, bytes(1600), wall0 + at, t0 + at, 50))
            if not self.session.audio_arrived():
                self.ready.set()
            seq += 1
            await asyncio.sleep(max(0.0, t0 + seq * 0.05 - loop.time()))  # real-time pacing

    @asynccontextmanager
    async def running(self) -> AsyncIterator[asyncio.Task[SessionResult]]:
        await self.session.open(self.sim.mint_token(60))
        feeder = asyncio.create_task(self._feed())
        task = asyncio.create_task(run_until_stopped(self.session, self.stop))
        try:
            yield task
        finally:
            self.stop.set()
            feeder.cancel()
            if not task.done():
                await asyncio.wait_for(asyncio.shield(task), 10)


def counting(items: list[Any], count: int) -> tuple[Callable[[Any], None], asyncio.Event]:
    reached = asyncio.Event()

    def add(item: Any) -> None:
        items.append(item)
        if len(items) >= count:
            reached.set()

    return add, reached


async def test_malformed_turns_are_skipped_and_later_turns_arrive_on_the_same_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    turns: list[TranscriptTurn] = []
    on_turn, three = counting(turns, 3)
    async with StreamingSimulator() as sim:
        sim.schedule_fault(FaultPlan.inject(HOSTILE, after_audio_ms=INJECT_AFTER_MS))
        rig = SessionRig(sim, on_turn)
        async with rig.running() as run:
            await asyncio.wait_for(three.wait(), 10)
            assert not run.done()  # the session goes on
        result = run.result()
        record = await sim.wait_closed(sim.sessions[0])

    assert [t.text for t in turns] == [REPAIRED_TEXT, "The third turn.", "The fourth turn."]
    assert [t.turn_order for t in turns] == [1, 3, 4]
    for t in turns:  # what would go to MQTT: strict JSON in UTF-8
        assert json.loads(t.to_json().decode("utf-8"))["text"] == t.text
    skipped = warnings_with(caplog, SKIPPED)
    assert len(skipped) == 2
    assert "NaN" in skipped[0]
    assert "Turn.words[0].start should be within" in skipped[1]
    assert len(warnings_with(caplog, REPAIRED)) == 1
    # one connection, ended by edgecap's Terminate when asked to stop, and closed
    assert len(sim.sessions) == 1
    assert result.ended_by == "stop"
    assert record.terminate_received
    assert record.close_code == 1000


async def test_an_unexpected_exception_downstream_still_closes_the_connection() -> None:
    def buggy(turn: TranscriptTurn) -> None:
        raise RuntimeError("a bug in what handles the turn")

    async with StreamingSimulator() as sim:
        sim.schedule_fault(
            FaultPlan.inject([turn_frame(0, "Hello.")], after_audio_ms=INJECT_AFTER_MS)
        )
        rig = SessionRig(sim, buggy)
        async with rig.running() as run:
            with pytest.raises(RuntimeError, match="a bug"):
                await asyncio.wait_for(asyncio.shield(run), 10)
            record = sim.sessions[0]
            async with asyncio.timeout(5):  # the server sees the close
                await sim.wait_closed(record)
    assert record.closed_by == "client"
    assert record.close_code == 1000


async def test_cancelled_while_waiting_for_begin_the_connection_is_closed() -> None:
    connected, closed = asyncio.Event(), asyncio.Event()

    async def no_begin(ws: ServerConnection) -> None:  # accepts, never sends Begin
        connected.set()
        await ws.wait_closed()
        closed.set()

    async with serve(no_begin, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        settings = SessionSettings(url=f"ws://127.0.0.1:{port}/v3/ws", params=PARAMS, device_id="x")
        session = StreamingSession(settings, AudioBuffer(1000, 50), asyncio.Event(), print)
        opening = asyncio.create_task(session.open("tok"))
        await asyncio.wait_for(connected.wait(), 5)
        # until the client side has the connection and waits for Begin (no event tells it)
        async with asyncio.timeout(5):
            while session._ws is None:  # noqa: ASYNC110 - polled with a deadline
                await asyncio.sleep(0.01)
        opening.cancel()  # e.g. the daemon stops while the session waits for Begin
        with pytest.raises(asyncio.CancelledError):
            await opening
        await asyncio.wait_for(closed.wait(), 5)


async def test_a_flood_of_partials_is_rate_limited_and_keeps_memory_flat() -> None:
    n = 1000
    # 1000 partials of one growing turn (about 3 KB each, 3 MB in all), then its final
    flood = [turn_frame(0, f"p{i}", final=False, words=40) for i in range(n)]
    flood.append(turn_frame(0, "The final text."))
    partials: list[tuple[float, str]] = []
    turns: list[TranscriptTurn] = []
    on_turn, final = counting(turns, 1)

    def on_partial(session_id: str, turn: Turn) -> None:
        partials.append((time.monotonic(), turn.transcript))

    async with StreamingSimulator() as sim:
        sim.schedule_fault(FaultPlan.inject(flood, after_audio_ms=INJECT_AFTER_MS))
        rig = SessionRig(sim, on_turn, on_partial)
        tracemalloc.start()
        try:
            async with rig.running():
                await sim.wait_until(lambda: sim.sessions and sim.sessions[0].audio_ms > 500)
                before = tracemalloc.get_traced_memory()[0]
                await asyncio.wait_for(final.wait(), 20)
                grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()

    assert [t.text for t in turns] == ["The final text."]
    assert partials[-1][1] == f"p{n - 1}"  # the newest text, handed on before the final
    elapsed = partials[-1][0] - partials[0][0]
    assert len(partials) <= 10 * elapsed + 2, (len(partials), elapsed)
    assert grown < 1_000_000, grown  # nothing kept the 3 MB of partials


# -- the daemon on real parts -----------------------------------------------------------------

CRED = "team-cred-hostile-7d"
DEVICE = "hostile"


@asynccontextmanager
async def running_daemon(
    tmp_path: Path,
    alsa: AlsaFifoSource,
    broker: MosquittoBroker,
    sim: StreamingSimulator,
    tokens: TokenServiceSimulator,
) -> AsyncIterator[Daemon]:
    config = stack_config(
        tmp_path,
        device_id=DEVICE,
        alsa_device=alsa.device,
        token_service_url=tokens.base_url,
        streaming_url=sim.url,
        mqtt_port=broker.port,
        sections={"mqtt": {"partials": True, "hermes": True, "discovery": True}},
    )
    loaded = load_config(config, {**os.environ, "EDGECAP_TOKEN_SERVICE_CREDENTIAL": CRED})
    daemon = Daemon(loaded)
    task = asyncio.create_task(daemon.run())
    try:
        yield daemon
    finally:
        daemon.stop.set()
        assert await asyncio.wait_for(task, 20) == 0


async def test_daemon_skips_hostile_turns_and_publishes_only_strict_json(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    transcript = f"edgecap/{DEVICE}/transcript"
    frames = [
        *HOSTILE[:3],
        *(turn_frame(3, f"the third {i}", final=False) for i in range(50)),  # partials
        *HOSTILE[3:],
    ]
    async with (
        StreamingSimulator() as sim,
        TokenServiceSimulator(sim, credential=CRED) as tokens,
    ):
        sim.schedule_fault(FaultPlan.inject(frames, after_audio_ms=INJECT_AFTER_MS))
        topics = [f"edgecap/{DEVICE}/#", "hermes/#", "homeassistant/#"]
        with MqttCollector("127.0.0.1", mqtt_broker.port, topics) as sub:
            async with running_daemon(tmp_path, alsa_source, mqtt_broker, sim, tokens):
                await sub.await_for(lambda m: m.topic == transcript, timeout=30, count=3)
            messages = sub.messages  # including what the clean stop published

    # every payload a subscriber got is strict JSON in UTF-8 (availability and the mute's
    # state are plain text)
    for m in messages:
        if m.topic.endswith("/availability"):
            assert m.payload in (b"online", b"offline")
        elif m.topic.endswith("/mute"):
            assert m.payload in (b"ON", b"OFF")
        else:
            assert isinstance(m.json(), dict), m.topic
    turns = [m.json() for m in messages if m.topic == transcript]
    assert [t["text"] for t in turns] == [REPAIRED_TEXT, "The third turn.", "The fourth turn."]
    assert "\ufffd".encode() in next(m.payload for m in messages if m.topic == transcript)
    partials = [m.json() for m in messages if m.topic == f"edgecap/{DEVICE}/partial"]
    assert partials  # rate limited, not dropped altogether
    assert len(partials) <= 5  # 50 within a few ms: the first, the last before the final
    assert partials[-1]["text"] == "the third 49"
    hermes = [m.json() for m in messages if m.topic == "hermes/asr/textCaptured"]
    assert [h["text"] for h in hermes] == [t["text"] for t in turns]
    # exactly the two unusable turns skipped, one line each; no reconnect; closed at the end
    assert len(warnings_with(caplog, SKIPPED)) == 2
    assert len(warnings_with(caplog, REPAIRED)) == 1
    assert len(sim.sessions) == 1
    status = [m.json() for m in messages if m.topic == f"edgecap/{DEVICE}/status"]
    assert status[-1]["counters"]["reconnects"] == 0
    assert status[-1]["last_error"] is None
    record = sim.sessions[0]
    assert record.closed
    assert record.terminate_received
    assert record.close_code == 1000
