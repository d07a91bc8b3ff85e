"""One OpenAI Realtime transcription session through the engine's transport (real
WebSocket on loopback against the OpenAI simulator): session.update before any audio,
base64 audio events, finals from server VAD, the local gate's end of speech as the commit
for the realtime-only models, and a deliberate end without a termination handshake."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from edgecap.audio.frame import Frame
from edgecap.engine.buffer import AudioBuffer
from edgecap.engine.session import SessionFailed, SessionSettings, StreamingSession
from edgecap.engine.states import CloseReason
from edgecap.providers.assemblyai.url import StreamParams
from edgecap.providers.openai.params import OpenAIParams, ServerVad
from edgecap.providers.openai.protocol import OpenAIRealtimeProvider
from edgecap.sim.openai import OpenAIRealtimeSimulator
from edgecap.turns.transcript import TranscriptTurn
from tests.harness import silence, tone
from tests.sim_openai_helpers import quiet, speech

pytestmark = pytest.mark.integration

KEY = "sim-api-key"
FRAME_BYTES = 2400  # 50 ms of 24 kHz PCM16


def frames(pcm: bytes, first: int = 0, size: int = FRAME_BYTES) -> Iterator[Frame]:
    for i, offset in enumerate(range(0, len(pcm) - size + 1, size)):
        seq = first + i
        yield Frame(seq, pcm[offset : offset + size], seq * 0.05, seq * 0.05, 50)


def settings(sim: OpenAIRealtimeSimulator, params: OpenAIParams) -> SessionSettings:
    return SessionSettings(
        url=params.url,
        params=StreamParams(24000, params.model, None, None, None, None),
        device_id="openai-dev",
        connect_timeout=3.0,
        begin_timeout=3.0,
        terminate_timeout=3.0,
        provider=OpenAIRealtimeProvider(params),
    )


class Rig:
    def __init__(self, sim: OpenAIRealtimeSimulator, params: OpenAIParams) -> None:
        self.buffer = AudioBuffer(30_000, 50)
        self.ready = asyncio.Event()
        self.turns: list[TranscriptTurn] = []
        self.turned = asyncio.Event()
        self.session = StreamingSession(settings(sim, params), self.buffer, self.ready, self._turn)
        self.seq = 0

    def _turn(self, turn: TranscriptTurn) -> None:
        self.turns.append(turn)
        self.turned.set()

    def play(self, pcm: bytes, size: int = FRAME_BYTES) -> None:
        for f in frames(pcm, self.seq, size):
            self.buffer.append(f)
            self.seq = f.seq + 1
        if not self.session.audio_arrived():
            self.ready.set()

    async def wait_turns(self, count: int) -> None:
        async with asyncio.timeout(15):
            while len(self.turns) < count:
                self.turned.clear()
                await self.turned.wait()


async def test_server_vad_turns_arrive_with_the_script_text() -> None:
    async with OpenAIRealtimeSimulator(["Turn on the lights.", "Set a timer."]) as sim:
        params = OpenAIParams(url=sim.url, model="gpt-4o-transcribe", turn_detection=ServerVad())
        rig = Rig(sim, params)
        opened = await rig.session.open(KEY)
        record = await sim.wait_for_updated(0)
        assert record.audio_ms_before_ready == 0  # nothing sent before session.updated
        assert opened.model == "gpt-4o-transcribe"
        run = asyncio.create_task(rig.session.run())
        rig.play(quiet(0.3) + speech(1.0) + quiet(1.0) + speech(0.8, 400) + quiet(1.0))
        await rig.wait_turns(2)
        rig.session.request_close(CloseReason.STOP, drain=True)
        result = await asyncio.wait_for(run, 10)
    assert [t.text for t in rig.turns] == ["Turn on the lights.", "Set a timer."]
    assert [t.turn_order for t in rig.turns] == [0, 1]
    assert all(t.started_at is not None and t.ended_at is not None for t in rig.turns)
    assert result.clean  # no termination handshake: the end is clean once turns are final
    assert result.replay_ms == 0


async def test_the_end_of_local_speech_commits_for_a_model_without_server_vad() -> None:
    async with OpenAIRealtimeSimulator(["Open the garage door."]) as sim:
        params = OpenAIParams(url=sim.url, model="gpt-live-transcribe", turn_detection=None)
        rig = Rig(sim, params)
        await rig.session.open(KEY)
        run = asyncio.create_task(rig.session.run())
        rig.session.speech_edge(True)  # the gate hears speech
        rig.play(speech(1.2) + quiet(0.4))
        rig.session.speech_edge(False)  # its hang-over is over: commit after this audio
        await rig.wait_turns(1)
        record = sim.sessions[0]
        rig.session.request_close(CloseReason.STOP, drain=True)
        result = await asyncio.wait_for(run, 10)
    assert [t.text for t in rig.turns] == ["Open the garage door."]
    assert len(record.commits) == 1
    assert record.commits[0].buffered_ms >= 1500  # all the audio up to the edge
    assert result.clean


async def test_a_model_in_the_url_fails_at_once_with_its_reason() -> None:
    async with OpenAIRealtimeSimulator() as sim:
        url = sim.realtime_url + "?model=gpt-4o-transcribe"
        params = OpenAIParams(url=url, model="gpt-4o-transcribe", turn_detection=ServerVad())
        rig = Rig(sim, params)
        with pytest.raises(SessionFailed) as failed:
            await asyncio.wait_for(rig.session.open(KEY), 2.5)  # not the 3 s Begin wait
    assert "transcription model" in failed.value.classified.line()


async def test_16_khz_capture_is_resampled_to_the_24_khz_openai_takes() -> None:
    """The voice gate hears 16 kHz: that capture goes out resampled (libsoxr), its length
    kept, so turns and their times line up with the capture."""
    async with OpenAIRealtimeSimulator(["Turn on the lights."]) as sim:
        params = OpenAIParams(
            url=sim.url, model="gpt-4o-transcribe", turn_detection=ServerVad(), input_rate=16000
        )
        rig = Rig(sim, params)
        await rig.session.open(KEY)
        run = asyncio.create_task(rig.session.run())
        pcm16 = silence(0.3, 16000) + tone(1.0, 300, amplitude=0.3, rate=16000)
        rig.play(pcm16 + silence(1.0, 16000), size=1600)  # 50 ms frames at 16 kHz
        await rig.wait_turns(1)
        record = sim.sessions[0]
        rig.session.request_close(CloseReason.STOP, drain=True)
        await asyncio.wait_for(run, 10)
    assert [t.text for t in rig.turns] == ["Turn on the lights."]
    assert 2200 <= record.audio_ms <= 2300  # 2.3 s captured, 2.3 s sent (minus filter delay)
    item = record.items[0]
    assert item.audio_end_ms is not None
    # the tone ends 1.3 s in, as captured; server VAD ends the item 500 ms of silence later
    assert 1700 <= item.audio_end_ms <= 1900
