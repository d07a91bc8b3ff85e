"""The daemon (in-process, real wiring) on real parts: speech through ALSA (file plugin +
FIFO), the v3 streaming and token-service simulators, a test-owned mosquitto.

- a drop in the middle of a spoken turn loses no word and publishes no turn twice;
- an outage longer than the replay buffer is reported as a gap of the right length (status
  and the next turn) and the daemon recovers;
- sessions rotate before the cap at quiet points while someone keeps talking: no turn is
  split or lost and no session outlives the cap.

The simulator runs a stricter real-time check than its default (1.21x + 0.3 s), so any
burst in the replayed backlog would end the session with 3007."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from edgecap.app.daemon import Daemon
from edgecap.config import load_config
from edgecap.sim import FaultPlan, StreamingSimulator, TokenServiceSimulator
from tests.daemon_proc import stack_config
from tests.harness import (
    AlsaFifoSource,
    Message,
    MosquittoBroker,
    MqttCollector,
    PlayHandle,
    SpeechFixture,
)
from tests.harness.mqtt import read_retained

pytestmark = pytest.mark.integration

CRED = "team-cred-resilience-daemon-3c"
DEVICE = "resilient"
TRANSCRIPT = f"edgecap/{DEVICE}/transcript"
STATUS = f"edgecap/{DEVICE}/status"


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@asynccontextmanager
async def running_daemon(
    tmp_path: Path,
    alsa: AlsaFifoSource,
    broker: MosquittoBroker,
    sim: StreamingSimulator,
    tokens: TokenServiceSimulator,
    streaming: dict[str, Any] | None = None,
) -> AsyncIterator[Daemon]:
    config = stack_config(
        tmp_path,
        device_id=DEVICE,
        alsa_device=alsa.device,
        token_service_url=tokens.base_url,
        streaming_url=sim.url,
        mqtt_port=broker.port,
        sections={"streaming": streaming or {}},
    )
    loaded = load_config(config, {**os.environ, "EDGECAP_TOKEN_SERVICE_CREDENTIAL": CRED})
    daemon = Daemon(loaded)
    task = asyncio.create_task(daemon.run())
    try:
        yield daemon
    finally:
        daemon.stop.set()
        assert await asyncio.wait_for(task, 20) == 0


def statuses(sub: MqttCollector) -> list[dict[str, Any]]:
    return [m.json() for m in sub.on_topic(STATUS)]


def is_turn(m: Message) -> bool:
    return m.topic == TRANSCRIPT


async def test_drop_mid_turn_loses_no_word(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    speech_fixtures: list[SpeechFixture],
) -> None:
    f1, f2, f3 = speech_fixtures[:3]
    lead_ms = 1000
    # session-0 audio at which the connection is cut: the middle of the second utterance
    cut_ms = lead_ms + 500 + f1.duration_ms + 1000 + f2.duration_ms // 2
    async with (
        StreamingSimulator(
            script=[f.text for f in (f1, f2, f3)], max_rate=1.21, rate_slack_seconds=0.3
        ) as sim,
        TokenServiceSimulator(sim, credential=CRED) as tokens,
    ):
        sim.schedule_fault(FaultPlan.drop(after_audio_ms=cut_ms))
        with MqttCollector("127.0.0.1", mqtt_broker.port, [f"edgecap/{DEVICE}/#"]) as sub:
            async with running_daemon(tmp_path, alsa_source, mqtt_broker, sim, tokens):
                first = await sim.wait_for_begin(0)
                await sim.wait_until(lambda: first.audio_ms >= lead_ms, "live audio")
                handles: list[PlayHandle] = []
                for silence_s, f in ((0.5, f1), (1.0, f2), (1.0, f3)):
                    alsa_source.play_silence(silence_s)
                    handles.append(alsa_source.play_wav(f.path))
                alsa_source.play_silence(2.0)
                turns = await sub.await_for(is_turn, timeout=30, count=3)
            turns = sub.on_topic(TRANSCRIPT)  # a late duplicate would count too
            retained = read_retained("127.0.0.1", mqtt_broker.port, STATUS, 5)

        payloads = [t.json() for t in turns]
        assert [p["text"] for p in payloads] == [f1.text, f2.text, f3.text]
        assert len({p["id"] for p in payloads}) == 3
        second = sim.sessions[1]
        # the cut came mid-utterance: the first session saw part of f2 but never finished it
        assert first.close_code == 1006
        assert [t["transcript"] for t in first.final_turns if t["turn_is_formatted"]] == [f1.text]
        assert [p["session_id"] for p in payloads] == [
            first.session_id,
            second.session_id,
            second.session_id,
        ]
        # the replayed words keep their capture times
        h2 = handles[1]
        assert h2.started_wall is not None
        assert h2.finished_wall is not None
        assert h2.started_wall - 0.3 <= ts(payloads[1]["started_at"]) < h2.started_wall + 0.5
        assert ts(payloads[1]["ended_at"]) <= h2.finished_wall + 0.3
        # paced replay: no 3007 from the strict rate check; nothing lost
        assert second.error is None
        assert all("gap_before_ms" not in p for p in payloads)
        states = [s["state"] for s in statuses(sub)]
        assert "reconnecting" in states
        assert states[-1] == "stopping"
        final = statuses(sub)[-1]
        assert final["counters"]["frames_dropped"] == 0
        assert final["counters"]["reconnects"] == 1
        assert final["last_error"]["class"] == "transient"
        assert retained is not None
        assert retained == sub.on_topic(STATUS)[-1].payload


async def test_outage_longer_than_the_buffer_is_reported_as_a_gap(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    speech_fixtures: list[SpeechFixture],
) -> None:
    f1, f2 = speech_fixtures[3], speech_fixtures[4]
    lead_ms = 1000
    cut_ms = lead_ms + 500 + f1.duration_ms + 1500  # in the silence after the first turn
    async with (
        StreamingSimulator(script=[f1.text, f2.text], max_rate=1.21, rate_slack_seconds=0.3) as sim,
        TokenServiceSimulator(sim, credential=CRED) as tokens,
    ):
        sim.schedule_fault(FaultPlan.drop(after_audio_ms=cut_ms))
        sim.default_fault = FaultPlan.handshake(503)  # every later connect: the outage
        with MqttCollector("127.0.0.1", mqtt_broker.port, [f"edgecap/{DEVICE}/#"]) as sub:
            async with running_daemon(
                tmp_path,
                alsa_source,
                mqtt_broker,
                sim,
                tokens,
                {"replay_buffer_seconds": 2.0, "reconnect_max_seconds": 0.5},
            ) as daemon:
                first = await sim.wait_for_begin(0)
                await sim.wait_until(lambda: first.audio_ms >= lead_ms, "live audio")
                alsa_source.play_silence(0.5)
                alsa_source.play_wav(f1.path)
                await sim.wait_closed(first)
                # about 4 s without service (eight refused reconnects), then it is back
                await sim.wait_until(lambda: sim.handshake_rejections >= 8, "a long outage")
                sim.default_fault = None
                second = await sim.wait_for_begin(1)
                alsa_source.play_silence(0.5)
                alsa_source.play_wav(f2.path)
                alsa_source.play_silence(2.0)
                turns = await sub.await_for(is_turn, timeout=30, count=2)
                await sub.await_for(
                    lambda m: m.topic == STATUS and m.json()["last_gap"] is not None, 10
                )
                assert daemon.status.state == "streaming"

        p1, p2 = (t.json() for t in turns)
        assert [p1["text"], p2["text"]] == [f1.text, f2.text]
        assert "gap_before_ms" not in p1
        gap = next(s for s in statuses(sub) if s["last_gap"] is not None)
        dropped = gap["counters"]["frames_dropped"]
        assert dropped > 0
        assert statuses(sub)[-1]["counters"]["gaps"] == 1  # one outage, one gap
        assert p2["gap_before_ms"] == gap["last_gap"]["ms"] == dropped * 50
        assert first.closed_at is not None
        assert second.begin_at is not None
        outage_ms = (second.begin_at - first.closed_at) * 1000
        # the buffer (2 s) held what it could; the rest of the outage is the gap
        assert outage_ms - 2000 - 500 <= p2["gap_before_ms"] <= outage_ms + 500
        started, ended = ts(gap["last_gap"]["started_at"]), ts(gap["last_gap"]["ended_at"])
        assert abs((ended - started) * 1000 - gap["last_gap"]["ms"]) <= 100
        assert second.error is None  # the 2 s backlog went out paced


async def test_rotation_with_continuous_speech_splits_no_turn(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    speech_fixtures: list[SpeechFixture],
) -> None:
    fixtures = speech_fixtures[:5]
    cap_s = 8  # the server ends every session after 8 s (Begin.expires_at); edgecap rotates
    async with (
        StreamingSimulator(
            script=[f.text for f in fixtures],
            max_rate=1.21,
            rate_slack_seconds=0.3,
            max_session_seconds=cap_s,
        ) as sim,
        TokenServiceSimulator(sim, credential=CRED) as tokens,
    ):
        with MqttCollector("127.0.0.1", mqtt_broker.port, [TRANSCRIPT]) as sub:
            async with running_daemon(tmp_path, alsa_source, mqtt_broker, sim, tokens):
                await sim.wait_for_begin(0)
                for f in fixtures:
                    alsa_source.play_silence(0.8)
                    alsa_source.play_wav(f.path)
                alsa_source.play_silence(1.5)
                turns = await sub.await_for(is_turn, timeout=40, count=len(fixtures))
            turns = sub.on_topic(TRANSCRIPT)

        payloads = [t.json() for t in turns]
        assert [p["text"] for p in payloads] == [f.text for f in fixtures]  # none split
        assert len({p["id"] for p in payloads}) == len(fixtures)
        ended = [s for s in sim.sessions if s.closed]
        assert len(ended) >= 2  # rotated at least once while speech went on
        for s in ended:
            assert s.terminate_received, s.close_code  # ended by edgecap, not by 3008
            assert s.close_code == 1000
            assert s.error is None
            assert s.begin_at is not None
            assert s.closed_at is not None
            assert s.closed_at - s.begin_at <= cap_s
            assert s.session_duration_seconds is not None
            assert s.session_duration_seconds <= cap_s
        # every published turn is the whole utterance of one session
        by_session = {s.session_id: s for s in sim.sessions}
        for p in payloads:
            finals = by_session[p["session_id"]].final_turns
            assert p["text"] in [t["transcript"] for t in finals if t["turn_is_formatted"]]
