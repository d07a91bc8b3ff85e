"""The Sync pipeline against the Sync API simulator, without ALSA: synthetic frames through
the real segmenter, transport (a live chunked upload, a whole retry) and pending spool; an
upload cut mid-way and refusals lose nothing and publish each utterance once, in order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from edgecap.audio.frame import Frame
from edgecap.billing.gate import GateSettings
from edgecap.billing.ledger import Ledger
from edgecap.engine.controller import Counters
from edgecap.providers.assemblyai.sync import SyncParams, SyncProtocol, SyncRefused
from edgecap.providers.failures import Classified
from edgecap.sim.sync_api import SyncApiSimulator, parse_sync_fault
from edgecap.sim.sync_api.checks import LIVE_PATH, WHOLE_PATH
from edgecap.sync.pending import PendingBounds
from edgecap.sync.runner import SyncPipeline
from edgecap.sync.segmenter import SegmentSettings
from edgecap.sync.store import PENDING_DIR, PendingStore
from edgecap.sync.transport import SyncNetworkError, SyncTransport
from edgecap.sync.types import SyncSettings
from edgecap.turns.transcript import TranscriptTurn
from tests.sim_helpers import FRAME_BYTES, burst, frames

pytestmark = pytest.mark.integration

KEY = "k-sync"
TEAM = "nxkp-team"


class LevelDetector:
    """Speech when the frame is loud (the simulator's tones), as a VAD would say."""

    def is_speech(self, pcm: bytes) -> bool:
        samples = (int.from_bytes(pcm[i : i + 2], "little", signed=True) for i in (0, 2, 4, 100))
        return max(abs(s) for s in samples) > 3000

    def rest(self, pcm: bytes) -> None:
        pass


class Status:
    def __init__(self) -> None:
        self.counters = Counters()
        self.states: list[str] = []
        self.errors: list[Classified] = []
        self.conditions: dict[str, str] = {}
        self.failed = asyncio.Event()
        self.budget_out = asyncio.Event()

    def set_state(self, state: str, **kw: object) -> bool:
        self.states.append(state)
        if state == "budget_exhausted":
            self.budget_out.set()
        return True

    def set_condition(self, part: str, line: str | None) -> None:
        if line is None:
            self.conditions.pop(part, None)
        else:
            self.conditions[part] = line

    def record_error(self, classified: Classified) -> None:
        self.errors.append(classified)
        self.failed.set()


def transport(sim: SyncApiSimulator, *, service: bool = False) -> SyncTransport:
    url = sim.token_service_url + "/sync" if service else sim.url
    protocol = SyncProtocol(url, SyncParams(16000), way_in="bearer" if service else "api_key")
    return SyncTransport(protocol, lambda: TEAM if service else KEY, timeout=3.0)


def pipeline(sim: SyncApiSimulator, tmp_path: Path, status: Status) -> tuple[SyncPipeline, Turns]:
    turns = Turns()
    settings = SyncSettings(
        device_id="dev",
        model="universal-3-5-pro",
        sample_rate=16000,
        segments=SegmentSettings(gate=GateSettings(frame_ms=50, hangover_ms=300, preroll_ms=300)),
        bounds=PendingBounds(retry_min_seconds=0.2, retry_max_seconds=0.5),
    )
    p = SyncPipeline(
        settings,
        transport(sim),
        detector=LevelDetector(),
        store=PendingStore(tmp_path),
        on_turn=turns.publish,
        reporter=status,
        ledger=Ledger(),
    )
    return p, turns


async def play(p: SyncPipeline, pcm: bytes, seq: list[int]) -> None:
    """Frames at real-time pace (a live upload must overlap the speech)."""
    for chunk in frames(pcm):
        now = time.monotonic()
        p.on_frame(Frame(seq[0], chunk, time.time(), now, 50))
        seq[0] += 1
        await asyncio.sleep(0.05 if len(chunk) == FRAME_BYTES else 0)


class Turns(list[TranscriptTurn]):
    """The published turns; `wait(n)` until there are n."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def publish(self, turn: TranscriptTurn) -> None:
        self.append(turn)
        self.changed.set()

    async def wait(self, n: int) -> None:
        async with asyncio.timeout(10):
            while len(self) < n:
                self.changed.clear()
                await self.changed.wait()


async def test_the_transport_uploads_live_and_whole_through_either_way_in() -> None:
    async with SyncApiSimulator(["hello there", "second one"], api_key=KEY, credential=TEAM) as sim:

        async def live() -> AsyncIterator[bytes]:
            for chunk in frames(burst(0.5, 0.3)):
                yield chunk

        first = await transport(sim).send(live())
        second = await transport(sim, service=True).send(burst(0.5, 0.3))
        wrong = SyncTransport(transport(sim).protocol, lambda: "wrong", timeout=3)
        with pytest.raises(SyncRefused) as refused:
            await wrong.send(burst(0.5, 0.1))
    assert (first.text, second.text) == ("hello there", "second one")
    assert [w.text for w in first.words] == ["hello", "there"]
    assert first.words[0].start_ms >= 0
    assert [r.chunked for r in sim.requests[:2]] == [True, False]
    assert [r.way_in for r in sim.requests] == ["api_key", "service", "refused"]
    assert [r.model for r in sim.requests][:2] == ["universal-3-5-pro"] * 2
    assert refused.value.failure.classified.code == 401
    assert sim.billed_audio_seconds == pytest.approx(1.6, abs=0.01)


async def test_a_cut_upload_is_kept_and_sent_again_in_order(tmp_path: Path) -> None:
    status = Status()
    async with SyncApiSimulator(["one", "two", "three"], api_key=KEY) as sim:
        sim.schedule_fault(parse_sync_fault("drop"))  # the first upload is cut mid-way
        sim.schedule_fault(parse_sync_fault("503:0.2"))  # its first retry is refused
        p, turns = pipeline(sim, tmp_path, status)
        runner = asyncio.create_task(p.run())
        seq = [0]
        await play(
            p, bytes(FRAME_BYTES * 6) + burst(0.6, 0.8) + burst(0.6, 0.8) + burst(0.6, 0.8), seq
        )
        await turns.wait(3)
        p.stop(1.0)
        await asyncio.wait_for(runner, 5)
    assert [t.text for t in turns] == ["one", "two", "three"]  # in order, none twice
    assert len({t.id for t in turns}) == 3
    assert [r.fault for r in sim.requests[:2]] == ["drop", "status503"]
    assert [r.path for r in sim.requests[:3]] == [LIVE_PATH, WHOLE_PATH, WHOLE_PATH]
    assert {e.code for e in status.errors} == {None, 503}
    assert p.queue.count == 0
    assert not list((tmp_path / PENDING_DIR).iterdir())  # nothing left on disk
    assert p.billed_seconds == pytest.approx(sum(r.audio_ms for r in sim.transcribed) / 1000)
    assert all(t.provider == "assemblyai-sync" for t in turns)
    assert all(t.started_at and t.ended_at and t.started_at < t.ended_at for t in turns)


async def test_a_refused_utterance_is_dropped_and_the_next_goes_on(tmp_path: Path) -> None:
    status = Status()
    async with SyncApiSimulator(["kept"], api_key=KEY) as sim:
        sim.schedule_fault(parse_sync_fault("400"))
        p, turns = pipeline(sim, tmp_path, status)
        runner = asyncio.create_task(p.run())
        await play(p, bytes(FRAME_BYTES * 6) + burst(0.6, 0.8) + burst(0.6, 0.8), [0])
        await turns.wait(1)
        p.stop(1.0)
        await asyncio.wait_for(runner, 5)
    assert [t.text for t in turns] == ["kept"]
    assert p.queue.dropped["refused"] == 1
    assert status.errors[0].code == 400  # the status' last_error keeps it
    assert p.queue.summary()["dropped"] == {"full": 0, "age": 0, "refused": 1}  # in stats


async def test_pending_audio_of_a_previous_run_is_sent_first(tmp_path: Path) -> None:
    async with SyncApiSimulator(["from before"], api_key=KEY) as sim:
        sim.schedule_fault(parse_sync_fault("refuse*50"))
        status = Status()
        p, _ = pipeline(sim, tmp_path, status)
        runner = asyncio.create_task(p.run())
        await play(p, bytes(FRAME_BYTES * 6) + burst(0.6, 0.8), [0])
        async with asyncio.timeout(10):
            await status.failed.wait()
        assert p.queue.count == 1
        p.stop(0.5)
        await asyncio.wait_for(runner, 5)
        sim.clear_faults()
        again, turns = pipeline(sim, tmp_path, Status())
        runner = asyncio.create_task(again.run())
        await turns.wait(1)
        again.stop(0.5)
        await asyncio.wait_for(runner, 5)
    assert [t.text for t in turns] == ["from before"]
    assert turns[0].id.startswith(p.session_id)  # the id it was given when captured


async def test_while_muted_nothing_is_captured_or_sent_and_the_state_says_muted(
    tmp_path: Path,
) -> None:
    async with SyncApiSimulator(["said before the mute", "after"], api_key=KEY) as sim:
        sim.schedule_fault(parse_sync_fault("refuse*50"))
        first, _ = pipeline(sim, tmp_path, Status())  # a run that leaves one utterance pending
        runner = asyncio.create_task(first.run())
        await play(first, bytes(FRAME_BYTES * 6) + burst(0.6, 0.8), [0])
        first.stop(0.5)
        await asyncio.wait_for(runner, 5)
        sim.clear_faults()
        requests = len(sim.requests)
        status = Status()
        p, turns = pipeline(sim, tmp_path, status)
        p.set_muted(True)  # started muted (the saved state), before it runs
        runner = asyncio.create_task(p.run())
        await play(p, bytes(FRAME_BYTES * 6) + burst(0.6, 0.8) + bytes(FRAME_BYTES * 10), [0])
        assert len(sim.requests) == requests  # neither the pending one nor the new speech
        assert set(status.states) == {"muted"}
        p.set_muted(False)
        await turns.wait(1)  # the utterance from before the mute, once it is lifted
        p.stop(0.5)
        await asyncio.wait_for(runner, 5)
    assert [t.text for t in turns] == ["said before the mute"]
    assert status.states[-1] == "listening"


async def test_stop_mid_utterance_sends_what_was_spoken(tmp_path: Path) -> None:
    async with SyncApiSimulator(["cut short"], api_key=KEY) as sim:
        p, turns = pipeline(sim, tmp_path, Status())
        runner = asyncio.create_task(p.run())
        await play(p, bytes(FRAME_BYTES * 6) + burst(0.6, 0.0), [0])
        assert not p.only_listening  # still speaking when the daemon stops
        p.stop(2.0)
        await asyncio.wait_for(runner, 5)
    assert [t.text for t in turns] == ["cut short"]
    assert sim.requests[0].chunked  # it was being uploaded live
    assert p.queue.count == 0


async def test_billed_audio_counts_in_the_ledger_and_the_budget_stops_sending(
    tmp_path: Path,
) -> None:
    status = Status()
    async with SyncApiSimulator(["first", "second"], api_key=KEY) as sim:
        p, turns = pipeline(sim, tmp_path, status)
        p.ledger.budget_seconds = 1.0
        runner = asyncio.create_task(p.run())
        await play(p, bytes(FRAME_BYTES * 6) + burst(0.6, 0.8), [0])
        await turns.wait(1)
        async with asyncio.timeout(5):
            await status.budget_out.wait()  # the next upkeep tick sees the day's total
        await play(p, burst(0.6, 0.8), [100])
        p.stop(1.0)
        await asyncio.wait_for(runner, 5)
    today = p.ledger.today(datetime.now().astimezone())
    assert today.billed_seconds == pytest.approx(sim.transcribed[0].audio_ms / 1000)
    assert today.billed_seconds > 1.0
    assert [t.text for t in turns] == ["first"]
    assert len(sim.requests) == 1  # nothing cut or sent once the budget was used up


async def test_an_answer_that_never_comes_times_out_as_a_network_failure() -> None:
    async with SyncApiSimulator(api_key=KEY) as sim:
        sim.schedule_fault(parse_sync_fault("hang"))
        protocol = transport(sim).protocol
        slow = SyncTransport(protocol, lambda: KEY, timeout=0.5)
        with pytest.raises(SyncNetworkError, match="did not answer in time"):
            await slow.send(burst(0.5, 0.1))
        await slow.aclose()
